"""The reward recipe: a Bradley-Terry reward model on ranked or pairwise preferences, on TRL's RewardTrainer.

    llmkit train recipes/rlhf/reward.yaml [key=value ...]

Flow: validate preferences (llmkit/rlhf/reward_data.py) and the calibration demonstrations ->
load the start model as a one-output sequence classifier with a fresh head (usually the SFT run's
model/: model.name=runs/sft-lora/model) -> held-out pairwise accuracy before training (a fresh
head: about 0.5) -> method.apply, and the head always trains -> RewardTrainer.train on the pairs,
resumable from its checkpoints -> held-out accuracy after -> calibrate (offset = mean raw reward of
SFT demonstrations) -> save model/ (full weights or a SEQ_CLS PEFT adapter, the tokenizer and
reward_calibration.json) -> metrics.json, history.jsonl, report.md.

Loss: -log sigmoid(r(x, y+) - r(x, y-) - m) + c * mean((r+ + r-)^2), TRL's RewardTrainer with the
optional Llama 2 margin m (train.margin x the pair's strength) and Eisenstein et al.'s centring
term c (train.center_rewards_coefficient, arXiv:2312.09244). A ranking of K responses is trained
as its K-choose-2 pairs: stock RewardTrainer takes pairs, not ranked groups, so instead of
InstructGPT's one-group-per-batch-element loss a sampler keeps each prompt's pairs next to each
other (a batch of whole groups when batch_size is a multiple of the pairs per prompt). That costs
2 x C(K, 2) forward passes per prompt instead of K, and weighs every prompt equally when all
prompts have the same K. The held-out figures come from llmkit's exact evaluator
(reward_model.evaluate_comparisons), one score per response, not from the trainer's batch means.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path

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
from llmkit.divergence import guard_callback
from llmkit.errors import ConfigError, DataError
from llmkit.methods import (
    count_params,
    get_method,
    load_kwargs,
    save_trained,
)
from llmkit.recipes import Compared, Recipe, reward_report
from llmkit.recipes import trainer as trainer_glue
from llmkit.rlhf.reward_data import RewardDataConfig, check_special_tokens, prepare, tokenize_pairs
from llmkit.tracking import write_json


@dataclass
class RewardModelConfig(ModelConfig):
    name: str = opt("smollm2", "Start model: the SFT run's model/ (full or LoRA), a causal LM (short name, directory, hub id) or a reward model to continue.")
    max_length: int = opt(256, "Pairs whose longer sequence (prompt + response + EOS) has more tokens are dropped and counted.")
    chat_template: str | None = opt(None, "Jinja chat template (text, or a path to a .jinja file); default: the tokenizer's, else llmkit's plain one.")
    pad_token: str | None = opt(None, "Pad token when the tokenizer's is its EOS (the reward is read at the EOS); default: its unk token, or a pad-named token of the vocabulary.")


@dataclass
class RewardTrainConfig(TrainerLoopConfig):
    learning_rate: float = opt(1e-3, "Peak learning rate (AdamW).")
    epochs: float = opt(1.0, "Passes over the pairs (one is usual: reward models overfit fast, InstructGPT section 3.5).")
    batch_size: int = opt(24, "Global batch size in pairs; a multiple of a prompt's pair count (6 for 4 ranked responses) keeps a prompt's pairs in one batch.")
    micro_batch_size: int | None = opt(12, "Most pairs per process per forward pass (a multiple of a prompt's pair count keeps its pairs together, and each distinct response runs once); accumulation is derived.")
    warmup_ratio: float = opt(0.03, "Fraction of steps with linear warm-up.")
    save_steps: int = opt(100, "Checkpoint every N optimizer steps for resuming (0: at each epoch end; runs are often one epoch).")
    margin: float = opt(0.0, "Llama 2 margin loss: m = margin x the pair's strength (its `margin` column, or the rank gap); 0: plain Bradley-Terry.")
    center_rewards_coefficient: float | None = opt(0.01, "Weight c of c * mean((r+ + r-)^2), which keeps rewards near 0 (TRL; Eisenstein et al. 2023); null: off.")

    def validate(self) -> None:
        super().validate()
        if self.margin < 0:
            raise ConfigError(f"train.margin must be >= 0, got {self.margin}")
        if self.center_rewards_coefficient is not None and self.center_rewards_coefficient < 0:
            raise ConfigError(f"train.center_rewards_coefficient must be >= 0 or null, got {self.center_rewards_coefficient}")


@dataclass
class RewardEvalConfig(EvalConfig):
    batch_size: int = opt(64, "Sequences per forward pass when scoring held-out responses and demonstrations.")
    before: bool = opt(True, "Also measure the start model with its fresh head (the 'before' of before/after).")
    num_examples: int = opt(6, "Held-out prompts shown in report.md with their responses' calibrated rewards.")

    def validate(self) -> None:
        super().validate()
        if self.num_examples < 0:
            raise ConfigError(f"eval.num_examples must be >= 0, got {self.num_examples}")


@dataclass
class CalibrationConfig:
    data: str = opt("instructions", "SFT demonstrations (train split) whose mean raw reward becomes the offset, so they score ~0.")
    num_samples: int = opt(256, "Demonstrations to score.")

    def validate(self) -> None:
        if self.num_samples < 1:
            raise ConfigError(f"calibration.num_samples must be >= 1, got {self.num_samples}")


@dataclass
class RewardConfig:
    kind: str = opt("reward", "Recipe kind.")
    model: RewardModelConfig = opt(factory=RewardModelConfig)
    data: RewardDataConfig = opt(factory=RewardDataConfig)
    method: MethodConfig = opt(factory=MethodConfig)
    train: RewardTrainConfig = opt(factory=RewardTrainConfig)
    eval: RewardEvalConfig = opt(factory=RewardEvalConfig)
    calibration: CalibrationConfig = opt(factory=CalibrationConfig)
    output: OutputConfig = opt(factory=OutputConfig)


# ----------------------------------------------------------------------------- pieces


def demonstrations(cfg: CalibrationConfig) -> tuple[list, list[str]]:
    """(prompts, replies) of the first `num_samples` SFT records: the prompt is everything before the
    last assistant turn, the reply that turn."""
    from llmkit.data.sft import SFTDataConfig
    from llmkit.data.sft import prepare as prepare_sft

    data = prepare_sft(SFTDataConfig(path=cfg.data, max_train_samples=cfg.num_samples))
    prompts, replies = [], []
    for r in data.train:
        if "messages" in r:
            last = max(i for i, m in enumerate(r["messages"]) if m["role"] == "assistant")
            prompts.append(r["messages"][:last])
            replies.append(r["messages"][last]["content"])
        elif "prompt" in r:
            prompts.append(r["prompt"])
            replies.append(r["completion"] if isinstance(r["completion"], str) else r["completion"][-1]["content"])
        else:
            raise DataError(f"calibration.data={cfg.data}: plain-text records have no prompt and reply; use "
                            f"messages or prompt/completion demonstrations")
    return prompts, replies


def load_reward_tokenizer(cfg: RewardModelConfig):
    """-> (the start model's tokenizer (an SFT adapter directory carries its own) with a pad token
    distinct from EOS and a chat template, the pad-token choice for metrics.json)."""
    from llmkit.models.loading import distinct_pad_token, load_tokenizer, set_chat_template
    from llmkit.rlhf.reward_model import resolve_start

    source, adapter = resolve_start(cfg)
    tokenizer = load_tokenizer(cfg, str(adapter) if adapter and (adapter / "tokenizer_config.json").is_file() else source)
    pad = distinct_pad_token(tokenizer, cfg.pad_token)
    check_special_tokens(tokenizer)
    set_chat_template(tokenizer, cfg.chat_template)
    return tokenizer, pad


class GroupedSampler:
    """Row order for one epoch: prompts (groups) shuffled, a prompt's rows kept next to each other
    and shuffled among themselves. Seeded by (seed, epoch), so a resumed run replays its epoch."""

    def __init__(self, groups: list[int], seed: int):
        self.by_group: dict[int, list[int]] = {}
        for row, g in enumerate(groups):
            self.by_group.setdefault(g, []).append(row)
        self.seed, self.epoch, self.n = seed, 0, len(groups)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        import torch

        gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        keys = list(self.by_group)
        for k in torch.randperm(len(keys), generator=gen).tolist():
            rows = self.by_group[keys[k]]
            yield from (rows[i] for i in torch.randperm(len(rows), generator=gen).tolist())

    def __len__(self) -> int:
        return self.n


def trainer_class(groups: list[int]):
    """TRL's RewardTrainer with the grouped sampler in place of its random one, and one forward pass
    per distinct sequence of a batch.

    A prompt's K ranked responses make C(K, 2) pairs, so each response sits in K - 1 of them: with
    the grouped sampler a micro batch of 12 pairs holds 2 prompts x 4 responses = 8 distinct
    sequences, which stock RewardTrainer runs 24 times (chosen and rejected of every pair). Here the model
    runs once per distinct row of the padded batch and the pairs' rewards are gathered from it;
    dropout is off, so the rewards, the loss and its gradient are the ones TRL computes (tested),
    at a third of the cost for K = 4.
    """
    import torch
    from trl import RewardTrainer

    class GroupedRewardTrainer(RewardTrainer):
        def _get_train_sampler(self, train_dataset=None):
            return GroupedSampler(groups, self.args.seed)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            ids, mask = inputs["input_ids"], inputs["attention_mask"]  # (2B, T): B chosen rows, then B rejected
            rows = torch.cat([ids * mask, mask], dim=1)  # equal rows: the same tokens, the same length
            unique, inverse = torch.unique(rows, dim=0, return_inverse=True)
            first = torch.full((len(unique),), len(ids), dtype=torch.long, device=ids.device)
            first.scatter_reduce_(0, inverse, torch.arange(len(ids), device=ids.device), reduce="amin")
            forward, patched = model.forward, model.__dict__.get("forward")  # Accelerate may wrap forward itself

            def dedup_forward(input_ids=None, attention_mask=None, **kw):
                out = forward(input_ids=input_ids[first], attention_mask=attention_mask[first], **kw)
                out.logits = out.logits[inverse]  # (2B, 1): every pair's rewards, from U forward rows
                return out

            model.forward = dedup_forward
            try:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            finally:
                if patched is None:
                    del model.forward
                else:
                    model.forward = patched

    return GroupedRewardTrainer


def examples(records, scores, offset: float, n: int) -> list[dict]:
    """Held-out prompts with their responses (best first) and calibrated rewards, for the report."""
    out = []
    for c, s in zip(records, scores):
        if s is None:
            continue
        if len(out) == n:
            break
        prompt = c.prompt if isinstance(c.prompt, str) else c.prompt[-1]["content"]
        out.append({"prompt": prompt, "task": c.task, "responses": c.responses, "rewards": [r - offset for r in s],
                    "ranked": all(better < worse for better, worse, _ in c.pairs)})
    return out


def mean_by_rank(scores: list[list[float] | None], offset: float) -> list[float]:
    """Mean calibrated reward of the k-th response (best first) over held-out records."""
    sums: dict[int, list[float]] = {}
    for s in scores:
        for k, r in enumerate(s or []):
            sums.setdefault(k, []).append(r - offset)
    return [sum(v) / len(v) for _, v in sorted(sums.items())]


# ----------------------------------------------------------------------------- run


def run(cfg: RewardConfig, out: Path) -> dict:
    from accelerate.utils import set_seed

    from llmkit import distributed
    from llmkit.rlhf.reward_model import (
        calibrate,
        evaluate_comparisons,
        load_sequence_classifier,
        resolve_start,
        train_head,
    )

    state = distributed.state()
    set_seed(cfg.train.seed)  # before the fresh head and the method's parameters are initialised
    method = get_method(cfg.method.name)
    if hasattr(method, "save"):
        raise ConfigError(f"method {cfg.method.name} saves only its own modules, not the reward head; "
                          f"use method=full or method=lora")
    data = prepare(cfg.data, seed=cfg.train.seed)  # data errors stop here, before any model loads
    demo_prompts, demo_replies = demonstrations(cfg.calibration)
    tokenizer, pad = load_reward_tokenizer(cfg.model)
    cfg.model.pad_token = pad["pad_token"]  # config.yaml records the choice
    train_pairs = tokenize_pairs(data.train, tokenizer, cfg.model.max_length, cfg.train.margin)
    if not train_pairs.rows:
        raise DataError(f"{data.train_source}: no training pair fits in model.max_length={cfg.model.max_length} "
                        f"({train_pairs.dropped} dropped)")

    extra = load_kwargs(cfg.method.name, cfg.method, resolve_start(cfg.model)[0])
    def build():
        m = load_sequence_classifier(cfg.model, **extra)
        m.config.pad_token_id = tokenizer.pad_token_id  # HF pooling and TRL's collator pad with it
        return m if "device_map" in extra else m.to(state.device)

    def with_method(m):
        m = method.apply(m, cfg.method)
        train_head(m)
        return m

    model = build()  # the model loads before the run directory exists: a bad start model leaves nothing behind
    run_dir = trainer_glue.open_run(out, to_dict(cfg), cfg.train, cfg.output.overwrite, state)
    ev = cfg.eval
    before = (evaluate_comparisons(model, tokenizer, data.test, cfg.model.max_length, ev.batch_size)[0]
              if ev.before and state.is_main_process else {})
    model = with_method(model)
    trainable, total = count_params(model)
    state.print(f"{cfg.method.name}: {trainable:,} of {total:,} parameters train ({100 * trainable / total:.3f}%); "
                f"{len(data.train)} prompts -> {len(train_pairs.rows)} pairs ({train_pairs.dropped} over "
                f"max_length dropped); {len(data.test)} held-out prompts ({data.format})")
    eval_pairs = (tokenize_pairs(data.test, tokenizer, cfg.model.max_length, cfg.train.margin)
                  if cfg.train.eval_steps else None)  # the held-out pairs, for train.eval_steps
    trainer, progress = _trainer(cfg, run_dir, model, tokenizer, train_pairs, state, eval_pairs)
    counters = trainer_glue.train(trainer, run_dir, progress)
    model = distributed.gathered_model(trainer, lambda: with_method(build()))

    metrics: dict = {}
    if state.is_main_process:
        after, scores = evaluate_comparisons(model, tokenizer, data.test, cfg.model.max_length, ev.batch_size)
        calib = calibrate(model, tokenizer, demo_prompts, demo_replies, ev.batch_size)
        metrics = {**_metrics(cfg, data, train_pairs, before, after, calib, scores, counters), "trainable_params": trainable,
                   "total_params": total, "method": cfg.method.name, "model": cfg.model.name, **pad,
                   **distributed.describe(trainer.accelerator.num_processes)}
        if cfg.output.save_model:
            _save_model(cfg, out / "model", model, tokenizer, calib, after["pairwise_accuracy"])
            faults.point("model")
        reward_report.write_report(out, cfg, metrics, examples(data.test, scores, calib["offset"], ev.num_examples))
        write_json(out / "metrics.json", metrics)  # last: its presence marks a finished run
        shutil.rmtree(run_dir.checkpoints, ignore_errors=True)
    state.wait_for_everyone()
    return metrics


def _trainer(cfg: RewardConfig, run_dir, model, tokenizer, pairs, state, eval_pairs=None):
    """-> (the grouped reward trainer on `pairs`, evaluating on `eval_pairs` if given, its Progress callback)."""
    from datasets import Dataset
    from trl import RewardConfig as TRLConfig

    t = cfg.train
    args = trainer_glue.training_args(
        TRLConfig, t, run_dir, state, cfg.method.name, eval_batch_size=cfg.eval.batch_size, max_length=None, center_rewards_coefficient=t.center_rewards_coefficient,
        disable_dropout=True)  # dropout makes rewards noisy and PPO's value init irreproducible (brief P7)
    progress = trainer_glue.progress_callback()
    trainer = trainer_glue.counted(trainer_class(pairs.groups), progress)(
        model=model, args=args, processing_class=tokenizer, train_dataset=Dataset.from_list(pairs.rows),
        eval_dataset=Dataset.from_list(eval_pairs.rows) if eval_pairs else None,
        callbacks=[trainer_glue.history_callback(run_dir.history, ("accuracy", "margin")), progress, guard_callback(),
                   *trainer_glue.early_stopping(t)])
    return trainer, progress


def _metrics(cfg: RewardConfig, data, pairs, before: dict, after: dict, calib: dict, scores, counters: dict) -> dict:
    """metrics.json's figures: held-out accuracy after (and before), calibration, training counters, data."""
    t = cfg.train
    pairs_seen = counters["optimizer_steps"] * t.batch_size
    if t.max_steps == -1:
        pairs_seen = min(pairs_seen, math.ceil(t.epochs * len(pairs.rows)))
    seconds, offset = counters["train_seconds"], calib["offset"]
    return {
        **{k: after[k] for k in ("pairwise_accuracy", "mean_margin", "log_loss")},
        **{f"base_{k}": before[k] for k in ("pairwise_accuracy", "mean_margin", "log_loss", "accuracy_by_rank_pair")
           if k in before},
        "train_loss": counters["train_loss"], "calibration_offset": offset, "calibration_scale": calib["scale"],
        "calibration_samples": calib["num_demonstrations"], "mean_reward_by_rank": mean_by_rank(scores, offset),
        "accuracy_by_rank_pair": after.get("accuracy_by_rank_pair"), "accuracy_by_task": after.get("accuracy_by_task"),
        "ties": after["ties"], "train_seconds": seconds,
        "pairs_per_second": round(pairs_seen / seconds, 1) if seconds else None,
        **{k: counters[k] for k in ("tokens_per_second", "steady_tokens_per_second", "train_tokens",
                                    "peak_memory_mb", "peak_memory_kind", "optimizer_steps")},
        **{k: counters[k] for k in ("best_step", "best_eval_loss", "stopped_early") if k in counters},  # keep_best
        "num_train_prompts": len(data.train), "num_train_pairs": len(pairs.rows),
        "dropped_train_pairs": pairs.dropped, "num_test_prompts": len(data.test),
        "num_test_pairs": after["num_pairs"], "skipped_test_prompts": after["skipped_records"],
        "test_prompts_in_train": data.test_prompts_in_train, "format": data.format,
    }


def _save_model(cfg: RewardConfig, path: Path, model, tokenizer, calib: dict, accuracy: float) -> None:
    """model/: the weights (full or a SEQ_CLS adapter), the tokenizer and reward_calibration.json."""
    from llmkit.rlhf.reward_model import save_calibration

    save_trained(cfg.method.name, model, path, base_model=cfg.model.name)
    tokenizer.save_pretrained(path)
    base = cfg.model.name
    save_calibration(path, {
        **calib, "demonstrations": cfg.calibration.data,
        "base_model": str(Path(base).resolve()) if Path(base).is_dir() else base,
        "method": cfg.method.name, "pairwise_accuracy": accuracy,
        "sequence": "prompt ids (chat template with generation prompt) + response ids + EOS; reward at the EOS",
    })


# ----------------------------------------------------------------------------- estimate-memory


def count_memory(cfg, n: int, ckpt_request, notes):
    from llmkit.memory import (
        Stream,
        apply_method,
        checkpointing,
        held,
        meta_seq_cls,
        model_config,
        on_meta,
        shape_of,
        stored_layers,
    )
    from llmkit.rlhf.reward_model import train_head

    if hasattr(get_method(cfg.method.name), "save"):
        raise ConfigError(f"method {cfg.method.name} saves only its own modules, not the reward head; "
                          f"use method=full or method=lora")
    config, desc = model_config(cfg.model.name, revision=cfg.model.revision, trust_remote_code=cfg.model.trust_remote_code)
    model = meta_seq_cls(config)
    shape = shape_of(model)
    model, added = apply_method(model, cfg.method.name, cfg.method, notes)
    on_meta(lambda: train_head(model))
    counted = held("model", model, cfg.method, added)
    stored = stored_layers(model, added, shape)
    micro, accum = cfg.train.batch_plan(n)
    ckpt = checkpointing(ckpt_request, cfg.train.gradient_checkpointing, cfg.method.name, notes)
    notes.append(f"a micro batch of {micro} pairs is {2 * micro} sequences (chosen and rejected in one forward)")
    return desc, [counted], [Stream("model", shape, 2 * micro, cfg.model.max_length, stored, False)], micro, accum, ckpt, {}


RECIPE = Recipe(kind="reward", verb="train", config_cls=RewardConfig, run=run, default_method="full",
                summary_line=reward_report.summary_line, section=reward_report.pipeline_section,
                headline=reward_report.headline, count_memory=count_memory,
                compare=Compared(("pairwise_accuracy",), True, (("mean_margin", "mean margin"), ("log_loss", "log loss"),
                                                        ("base_pairwise_accuracy", "start model's accuracy"))))
