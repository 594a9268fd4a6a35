"""The sft recipe: supervised finetuning of a causal LM with any method, on TRL's SFTTrainer.

    llmkit train recipes/sft/lora.yaml [key=value ...]

Flow: validate data -> load model and tokenizer -> tokenise with loss masks (llmkit/data/sft.py)
-> measure the base model on the held-out set -> method.apply -> SFTTrainer.train (resumable from
its checkpoints) -> measure again -> save what trained -> metrics.json, history.jsonl, report.md.
The held-out loss and exact match use the same tokens before and after, so the gain is the
method's, not the measurement's.
"""

from __future__ import annotations

import inspect
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from llmkit import faults
from llmkit.config import (
    EvalConfig,
    MethodConfig,
    ModelConfig,
    OutputConfig,
    TrainerLoopConfig,
    opt,
    to_dict,
)
from llmkit.data.sft import (
    SFTDataConfig,
    generation_prompt,
    prepare,
    shown_prompt,
    tokenize,
)
from llmkit.divergence import guard_callback
from llmkit.errors import ConfigError
from llmkit.methods import (
    count_params,
    get_method,
    load_kwargs,
    save_trained,
)
from llmkit.models.loading import (
    load_causal_lm,
    load_tokenizer,
    resolve_model,
    set_chat_template,
    set_pad_token,
)
from llmkit.recipes import Compared, Recipe, sft_report
from llmkit.recipes import trainer as trainer_glue
from llmkit.tracking import write_json


@dataclass
class SFTModelConfig(ModelConfig):
    name: str = opt("smollm2", "Causal LM: short name (smollm2: the embedded SmolLM2-135M-Instruct; pico-llama, tiny-llama for tests), local directory or hub id.")
    max_length: int = opt(256, "Truncate training sequences to this many tokens.")
    chat_template: str | None = opt(None, "Jinja chat template (text, or a path to a .jinja file); default: the tokenizer's, else llmkit's plain one.")
    pad_token: str | None = opt(None, "Pad token; default: the tokenizer's, even when it is the EOS (labels, not pad ids, mark the tokens that train, so the EOS still trains).")


@dataclass
class SFTTrainConfig(TrainerLoopConfig):
    learning_rate: float = opt(2e-4, "Peak learning rate (AdamW).")
    batch_size: int = opt(16, "Global batch size (all processes, all accumulation steps together).")
    micro_batch_size: int | None = opt(4, "Most examples per process per forward pass; accumulation is derived. 4 keeps activations small (SmolLM2, fp32: ~2.2 MB per token position) and was faster than 16 on CPU; raise it on a GPU with memory to spare.")
    loss_on: Literal["completion", "all"] = opt("completion", "Loss on assistant turns / completions only, or on every token.")
    packing: bool = opt(False, "Pack several examples per row, padding-free (position ids keep them apart).")
    token_metrics: bool = opt(False, "Also log TRL's per-token entropy and top-1 accuracy (costs ~15% of a step on small models).")


@dataclass
class SFTEvalConfig(EvalConfig):
    batch_size: int = opt(32, "Batch size for held-out loss and generation.")
    max_new_tokens: int = opt(32, "Tokens to generate per held-out prompt.")
    num_generate: int = opt(200, "Held-out prompts to generate for exact match (0: none).")
    num_generate_in_training: int = opt(8, "Of those, how many to generate at each train.eval_steps evaluation for a held-out exact-match curve (0: none; skipped under ZeRO-3 and FSDP, where no one rank holds the weights).")
    before: bool = opt(True, "Also measure the base model before training (the 'before' of before/after).")

    def validate(self) -> None:
        super().validate()
        if self.max_new_tokens < 1 or self.num_generate < 0 or self.num_generate_in_training < 0:
            raise ConfigError("eval.max_new_tokens must be >= 1, eval.num_generate and eval.num_generate_in_training >= 0")


@dataclass
class SFTConfig:
    kind: str = opt("sft", "Recipe kind.")
    model: SFTModelConfig = opt(factory=SFTModelConfig)
    data: SFTDataConfig = opt(factory=SFTDataConfig)
    method: MethodConfig = opt(factory=MethodConfig)
    train: SFTTrainConfig = opt(factory=SFTTrainConfig)
    eval: SFTEvalConfig = opt(factory=SFTEvalConfig)
    output: OutputConfig = opt(factory=OutputConfig)


def measure(model, tokenizer, test_tok: list[dict], prompts, refs, cfg: SFTConfig, desc: str):
    """Held-out loss and exact match; generations returned for the report."""
    from llmkit.eval.heldout import completion_loss, exact_match, generate

    loss = completion_loss(model, test_tok, tokenizer.pad_token_id, cfg.eval.batch_size)
    preds = generate(model, tokenizer, prompts, cfg.eval.max_new_tokens, cfg.eval.batch_size, desc) if prompts else []
    return {"eval_loss": loss["loss"], "eval_perplexity": loss["perplexity"],
            "eval_exact_match": exact_match(preds, refs) if prompts else None}, preds


def _exact_match_probe(tokenizer, prompts, refs, cfg: SFTConfig):
    """For evaluations while training: greedy answers to a few held-out prompts -> eval_exact_match."""
    from llmkit.eval.heldout import exact_match, generate

    def probe(model) -> dict:
        was_training = model.training
        preds = generate(model, tokenizer, prompts, cfg.eval.max_new_tokens, cfg.eval.batch_size, progress=False)
        model.train(was_training)
        return {"eval_exact_match": exact_match(preds, refs)}

    return probe


def trainer_class(token_metrics: bool):
    """TRL's SFTTrainer, or (default) one whose loss is the model's own, as a plain loop computes it,
    with logits only where a label is.

    SFTTrainer.compute_loss runs a fused LM head that also yields per-token entropy and top-1
    accuracy, gathered and synced to the host for its logs on every step. The loss is the same
    (checked in tests), but on small models the extra work is ~15-20% of a step, which is why
    llmkit's step fell to 0.82x a hand-written loop (benchmarks/results/sft_cpu.md). Turn the
    metrics back on with train.token_metrics=true.

    The LM head is a large share of a small model's work (SmolLM2: 49,152 x 576, a fifth of the
    forward pass), and with the loss on answers only most positions carry no label. The lean trainer
    asks the model for the logits of labelled positions only (transformers' boolean `logits_to_keep`
    and `shift_labels`), which gives the same loss and gradients (tested) without the (B, T, V) logits.
    """
    import torch
    from transformers import Trainer
    from trl import SFTTrainer

    if token_metrics:
        return SFTTrainer

    class LeanSFTTrainer(SFTTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            inputs["use_cache"] = False
            if "labels" in inputs and sparse_logits_ok(self.accelerator.unwrap_model(model)):  # DDP/ZeRO wrap it
                labels = inputs["labels"]
                keep = torch.zeros_like(labels, dtype=torch.bool)  # (B, T): the logit at t predicts t + 1
                keep[:, :-1] = labels[:, 1:] != -100
                inputs = {**inputs, "logits_to_keep": keep, "shift_labels": labels[:, 1:][keep[:, :-1]]}
            return Trainer.compute_loss(self, model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)

    return LeanSFTTrainer


def sparse_logits_ok(model) -> bool:
    """Whether the model returns one position per input position and takes `logits_to_keep`: not so
    for PEFT's prompt learning other than prefix tuning, which prepends virtual tokens to the input."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if "logits_to_keep" not in inspect.signature(base.forward).parameters:
        return False
    peft = getattr(model, "active_peft_config", None)
    return not (peft is not None and peft.is_prompt_learning and peft.peft_type != "PREFIX_TUNING")


def run(cfg: SFTConfig, out: Path) -> dict:
    from accelerate.utils import set_seed
    from datasets import Dataset
    from trl import SFTConfig as TRLConfig

    from llmkit import distributed

    state = distributed.state()
    set_seed(cfg.train.seed)  # before the method initialises its parameters (LoRA's A, prefixes, ...)
    data = prepare(cfg.data, seed=cfg.train.seed)  # data errors stop here, before any model loads
    model_path = resolve_model(cfg.model.name, cfg.model.revision)
    tokenizer = load_tokenizer(cfg.model, model_path)
    pad = set_pad_token(tokenizer, cfg.model.pad_token)
    cfg.model.pad_token = pad["pad_token"]  # config.yaml records the choice
    set_chat_template(tokenizer, cfg.model.chat_template)
    method = get_method(cfg.method.name)
    extra = load_kwargs(cfg.method.name, cfg.method, model_path)
    def build():
        m = load_causal_lm(cfg.model, model_path, **extra)
        return m if "device_map" in extra else m.to(state.device)

    model = build()  # the model loads before the run directory exists: a bad model leaves nothing behind
    run_dir = trainer_glue.open_run(out, to_dict(cfg), cfg.train, cfg.output.overwrite, state)
    train_tok = [tokenize(r, tokenizer, cfg.model.max_length, cfg.train.loss_on) for r in data.train]
    test_tok = [tokenize(r, tokenizer, cfg.model.max_length, cfg.train.loss_on) for r in data.test]
    gen = [(r, g) for r in data.test[:cfg.eval.num_generate] if (g := generation_prompt(r, tokenizer)) is not None]
    prompts, refs, shown = [g[0] for _, g in gen], [g[1] for _, g in gen], [shown_prompt(r) for r, _ in gen]

    before, before_preds = (measure(model, tokenizer, test_tok, prompts, refs, cfg, "base generate")
                            if cfg.eval.before and state.is_main_process else ({}, []))
    model = method.apply(model, cfg.method)
    trainable, total = count_params(model)
    state.print(f"{cfg.method.name}: {trainable:,} of {total:,} parameters train ({100 * trainable / total:.3f}%); "
                f"{len(train_tok)} train / {len(test_tok)} held-out examples ({data.format})")

    t = cfg.train
    args = trainer_glue.training_args(
        TRLConfig, t, run_dir, state, cfg.method.name, eval_batch_size=cfg.eval.batch_size,
        max_length=cfg.model.max_length, packing=t.packing, padding_free=t.packing)
    progress = trainer_glue.progress_callback()
    k = cfg.eval.num_generate_in_training
    on_eval = (_exact_match_probe(tokenizer, prompts[:k], refs[:k], cfg)
               if k and prompts and not (distributed.is_zero3() or distributed.uses_fsdp()) else None)
    trainer = trainer_glue.counted(trainer_class(t.token_metrics), progress)(
        model=model, args=args, processing_class=tokenizer, train_dataset=Dataset.from_list(train_tok),
        eval_dataset=Dataset.from_list(test_tok) if t.eval_steps else None,
        callbacks=[trainer_glue.history_callback(run_dir.history, ("mean_token_accuracy", "entropy"), on_eval), progress,
                   guard_callback(), *trainer_glue.early_stopping(t)])
    counters = trainer_glue.train(trainer, run_dir, progress)
    model = distributed.gathered_model(trainer, lambda: method.apply(build(), cfg.method))

    metrics: dict = {}
    if state.is_main_process:
        after, after_preds = measure(model, tokenizer, test_tok, prompts, refs, cfg, "finetuned generate")
        metrics = {
            "train_loss": counters["train_loss"], **after,
            **{f"base_{k}": v for k, v in before.items()},
            "trainable_params": trainable, "total_params": total,
            **{k: v for k, v in counters.items() if k != "train_loss"},
            "num_train": len(train_tok), "num_test": len(test_tok), "format": data.format,
            "train_source": data.train_source, "test_source": data.test_source, **({"data_mix": data.mix} if data.mix else {}),
            "method": cfg.method.name, "model": cfg.model.name, **pad,
            **distributed.describe(trainer.accelerator.num_processes),
        }
        if cfg.output.save_model:
            save_trained(cfg.method.name, model, out / "model", base_model=cfg.model.name)
            tokenizer.save_pretrained(out / "model")
            faults.point("model")
        samples = [{"prompt": p, "reference": r, "base": b, "finetuned": a}
                   for p, r, b, a in zip(shown, refs, before_preds or [None] * len(refs), after_preds)]
        with open(out / "generations.jsonl", "w") as fh:
            fh.writelines(json.dumps(s) + "\n" for s in samples)
        sft_report.write_report(out, cfg, metrics, samples[:8])
        write_json(out / "metrics.json", metrics)  # last: its presence marks a finished run
        shutil.rmtree(run_dir.checkpoints, ignore_errors=True)
    state.wait_for_everyone()
    return metrics


# ----------------------------------------------------------------------------- estimate-memory


def count_memory(cfg, n: int, ckpt_request, notes):
    from llmkit.memory import (
        Stream,
        apply_method,
        checkpointing,
        held,
        meta_causal_lm,
        model_config,
        shape_of,
        stored_layers,
    )

    config, desc = model_config(cfg.model.name, revision=cfg.model.revision, trust_remote_code=cfg.model.trust_remote_code)
    model = meta_causal_lm(config)
    shape = shape_of(model)
    model, added = apply_method(model, cfg.method.name, cfg.method, notes)
    stored = stored_layers(model, added, shape)
    micro, accum = cfg.train.batch_plan(n)
    ckpt = checkpointing(ckpt_request, cfg.train.gradient_checkpointing, cfg.method.name, notes)
    return desc, [held("model", model, cfg.method, added)], \
        [Stream("model", shape, micro, cfg.model.max_length, stored, True)], micro, accum, ckpt, {}


RECIPE = Recipe(kind="sft", verb="train", config_cls=SFTConfig, run=run, default_method="lora",
                summary_line=sft_report.summary_line, section=sft_report.pipeline_section,
                headline=sft_report.headline, count_memory=count_memory,
                compare=Compared(("eval_loss",), False, (("eval_perplexity", "held-out perplexity"), ("eval_exact_match", "exact match"),
                                                ("base_eval_loss", "base model's held-out loss"), ("tokens_per_second", "tokens / s"))))
