"""The classify recipe: text classification with any method on any encoder or decoder.

    llmkit train recipes/classify/finetune_all.yaml [key=value ...]

Flow: validate data -> load model -> method.apply (decides what trains) -> train -> test -> save.
Two paths, chosen by what trains, never by the method's name:
  * backbone frozen (feature-based, finetune I with 0 blocks): embeddings are computed once and
    cached, then the head is fit on them (the method's closed-form `fit_head`, else AdamW).
  * backbone (partly) trainable: the training loop in `train_loop`, on Accelerate, with global
    batch size, derived gradient accumulation, checkpoints and resume.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from llmkit.config import (
    EvalConfig,
    EvalLoopConfig,
    MethodConfig,
    ModelConfig,
    OutputConfig,
    opt,
)
from llmkit.data.classification import ClassifyDataConfig
from llmkit.errors import ConfigError
from llmkit.recipes import Compared, Recipe, classify_report


@dataclass
class ClassifyModelConfig(ModelConfig):
    pooling: Literal["mean", "cls", "last", "pooler"] = opt(
        "mean", "How token states become one vector: mean, cls, pooler (the encoder's own [CLS] dense + tanh), or last "
        "(decoders; the head then has no bias). pooler and last save the model as transformers' "
        "*ForSequenceClassification (or a PEFT adapter on one).")
    head_dropout: float = opt(0.1, "Dropout before the linear head while training.")

    def validate(self) -> None:
        super().validate()
        if not 0 <= self.head_dropout < 1:
            raise ConfigError(f"model.head_dropout must be in [0, 1), got {self.head_dropout}")


@dataclass
class ClassifyConfig:
    kind: str = opt("classify", "Recipe kind.")
    model: ClassifyModelConfig = opt(factory=ClassifyModelConfig)
    data: ClassifyDataConfig = opt(factory=ClassifyDataConfig)
    method: MethodConfig = opt(factory=MethodConfig)
    train: EvalLoopConfig = opt(factory=EvalLoopConfig)
    eval: EvalConfig = opt(factory=EvalConfig)
    output: OutputConfig = opt(factory=OutputConfig)


def run(cfg: ClassifyConfig, out: Path) -> dict:
    from llmkit.recipes.classify_train import run as train_and_test

    return train_and_test(cfg, out)


# ----------------------------------------------------------------------------- estimate-memory


def count_memory(cfg, n: int, ckpt_request, notes):
    from llmkit.memory import (
        Stream,
        apply_method,
        checkpointing,
        held,
        meta_backbone,
        model_config,
        on_meta,
        shape_of,
        stored_layers,
    )

    config, desc = model_config(cfg.model.name, revision=cfg.model.revision, trust_remote_code=cfg.model.trust_remote_code)
    backbone = meta_backbone(config)
    shape = shape_of(backbone)
    from llmkit.models.classifier import SequenceClassifier

    model = on_meta(lambda: SequenceClassifier(backbone, 2, cfg.model.pooling))
    model.backbone, added = apply_method(backbone, cfg.method.name, cfg.method, notes)
    notes.append("the classifier head is counted for 2 labels (the data decides; it is h*C + C parameters)")
    counted = held("model", model, cfg.method, added)
    stored = stored_layers(model.backbone, added, shape)
    if any(p.requires_grad for p in model.backbone.parameters()) or added:
        micro, accum = cfg.train.batch_plan(n)
        ckpt = checkpointing(ckpt_request, cfg.train.gradient_checkpointing, cfg.method.name, notes)
        return desc, [counted], [Stream("model", shape, micro, cfg.model.max_length, stored, False)], micro, accum, ckpt, {}
    notes.append(f"backbone frozen: the recipe embeds the texts once (eval.batch_size={cfg.eval.batch_size}, no "
                 f"gradients) and fits the head on the cached features")
    return desc, [counted], [Stream("model", shape, cfg.eval.batch_size, cfg.model.max_length, 0, False)], \
        cfg.eval.batch_size, 1, False, {}


RECIPE = Recipe(kind="classify", verb="train", config_cls=ClassifyConfig, run=run, default_method="full",
                summary_line=classify_report.summary_line, section=classify_report.pipeline_section, grouped=True,
                headline=classify_report.headline, count_memory=count_memory,
                compare=Compared(("accuracy",), True, (("macro_f1", "macro F1"),)))
