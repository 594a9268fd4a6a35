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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from llmkit.config import (
    EvalConfig,
    MethodConfig,
    ModelConfig,
    OutputConfig,
    TrainConfig,
    opt,
    to_dict,
)
from llmkit.data.sft import (
    SFTDataConfig,
    generation_prompt,
    prepare,
    tokenize,
)
from llmkit.divergence import guard_callback
from llmkit.errors import ConfigError
from llmkit.eval.heldout import completion_loss, exact_match, generate
from llmkit.methods import (
    count_params,
    get_method,
    gradient_checkpointing_allowed,
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
from llmkit.recipes import Recipe, sft_report
from llmkit.tracking import History, PeakMemory, last_checkpoint, prepare_output_dir, write_json


@dataclass
class SFTModelConfig(ModelConfig):
    name: str = opt("smollm2", "Causal LM: short name (smollm2: the embedded SmolLM2-135M-Instruct; pico-llama, tiny-llama for tests), local directory or hub id.")
    max_length: int = opt(256, "Truncate training sequences to this many tokens.")
    chat_template: str | None = opt(None, "Jinja chat template (text, or a path to a .jinja file); default: the tokenizer's, else llmkit's plain one.")
    pad_token: str | None = opt(None, "Pad token; default: the tokenizer's, even when it is the EOS (labels, not pad ids, mark the tokens that train, so the EOS still trains).")


@dataclass
class SFTTrainConfig(TrainConfig):
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
    before: bool = opt(True, "Also measure the base model before training (the 'before' of before/after).")

    def validate(self) -> None:
        super().validate()
        if self.max_new_tokens < 1 or self.num_generate < 0:
            raise ConfigError("eval.max_new_tokens must be >= 1 and eval.num_generate >= 0")


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
    loss = completion_loss(model, test_tok, tokenizer.pad_token_id, cfg.eval.batch_size)
    preds = generate(model, tokenizer, prompts, cfg.eval.max_new_tokens, cfg.eval.batch_size, desc) if prompts else []
    return {"eval_loss": loss["loss"], "eval_perplexity": loss["perplexity"],
            "eval_exact_match": exact_match(preds, refs) if prompts else None}, preds


def history_callback(history: History, clock: list):
    """Trainer logs -> history.jsonl (one object per logging step); `clock` gets (time, tokens seen)
    at each optimizer step's end, for the steady-state throughput."""
    from transformers import TrainerCallback

    class HistoryCallback(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            _log(history, state, logs)

        def on_step_end(self, args, state, control, **kwargs):
            clock.append((time.perf_counter(), int(state.num_input_tokens_seen or 0)))

    return HistoryCallback()


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


def steady_tokens_per_second(clock: list, skip: int = 5) -> float | None:
    """Tokens/s between the end of step `skip` and the last step: the training step's own speed,
    without start-up (optimizer creation, first-step allocation) or the final checkpoint."""
    if len(clock) <= skip + 1:
        return None
    (t0, n0), (t1, n1) = clock[skip], clock[-1]
    return round((n1 - n0) / (t1 - t0), 1) if t1 > t0 else None


def _log(history: History, state, logs) -> None:
    if logs and "loss" in logs and state.is_world_process_zero:
        history.log(step=state.global_step, epoch=round(state.epoch or 0, 3), loss=logs["loss"],
                    lr=logs.get("learning_rate"), grad_norm=logs.get("grad_norm"),
                    **{k: logs[k] for k in ("mean_token_accuracy", "entropy") if k in logs})


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
    if state.is_main_process:
        prepare_output_dir(out, to_dict(cfg), overwrite=cfg.output.overwrite)
    state.wait_for_everyone()
    ckpt_dir = out / "checkpoints"
    resume, resume_step = last_checkpoint(ckpt_dir) if cfg.train.resume else (None, None)
    if resume:
        state.print(f"resuming from {resume} (step {resume_step})")
    history = History(out / "history.jsonl", resume_step=resume_step)

    method = get_method(cfg.method.name)
    extra = load_kwargs(cfg.method.name, cfg.method, model_path)
    def build():
        m = load_causal_lm(cfg.model, model_path, **extra)
        return m if "device_map" in extra else m.to(state.device)

    model = build()
    train_tok = [tokenize(r, tokenizer, cfg.model.max_length, cfg.train.loss_on) for r in data.train]
    test_tok = [tokenize(r, tokenizer, cfg.model.max_length, cfg.train.loss_on) for r in data.test]
    gen = [g for g in (generation_prompt(r, tokenizer) for r in data.test[:cfg.eval.num_generate]) if g is not None]
    prompts, refs = [p for p, _ in gen], [r for _, r in gen]

    before, before_preds = (measure(model, tokenizer, test_tok, prompts, refs, cfg, "base generate")
                            if cfg.eval.before and state.is_main_process else ({}, []))
    model = method.apply(model, cfg.method)
    trainable, total = count_params(model)
    state.print(f"{cfg.method.name}: {trainable:,} of {total:,} parameters train ({100 * trainable / total:.3f}%); "
                f"{len(train_tok)} train / {len(test_tok)} held-out examples ({data.format})")

    t = cfg.train
    micro, accum = t.batch_plan(state.num_processes)
    args = TRLConfig(
        output_dir=str(ckpt_dir), per_device_train_batch_size=micro, gradient_accumulation_steps=accum,
        learning_rate=t.learning_rate, num_train_epochs=t.epochs, max_steps=t.max_steps,
        lr_scheduler_type={"constant": "constant_with_warmup"}.get(t.lr_scheduler, t.lr_scheduler),
        warmup_steps=t.warmup_ratio, weight_decay=t.weight_decay, max_grad_norm=t.max_grad_norm or 1e9,
        seed=t.seed, data_seed=t.seed, logging_steps=t.logging_steps,
        save_strategy="steps" if t.save_steps else "epoch", save_steps=t.save_steps or 500, save_total_limit=1,
        report_to="none", max_length=cfg.model.max_length, packing=t.packing, padding_free=t.packing,
        activation_checkpointing=gradient_checkpointing_allowed(cfg.method.name, t.gradient_checkpointing), gradient_checkpointing=False, bf16=t.mixed_precision == "bf16",
        fp16=t.mixed_precision == "fp16", **distributed.trainer_args(),
        include_num_input_tokens_seen="non_padding", logging_nan_inf_filter=False, dataloader_num_workers=0, disable_tqdm=not state.is_main_process,
    )
    clock: list = []
    trainer = trainer_class(t.token_metrics)(model=model, args=args, processing_class=tokenizer,
                         train_dataset=Dataset.from_list(train_tok), callbacks=[history_callback(history, clock), guard_callback()])
    with PeakMemory() as mem:
        start = time.perf_counter()
        result = trainer.train(resume_from_checkpoint=resume)
        train_seconds = time.perf_counter() - start
    distributed.check_world_size(trainer.accelerator.num_processes)
    model = distributed.gathered_model(trainer, lambda: method.apply(build(), cfg.method))
    tokens_seen = int(trainer.state.num_input_tokens_seen or 0)

    metrics: dict = {}
    if state.is_main_process:
        after, after_preds = measure(model, tokenizer, test_tok, prompts, refs, cfg, "finetuned generate")
        metrics = {
            "train_loss": result.training_loss, **after,
            **{f"base_{k}": v for k, v in before.items()},
            "trainable_params": trainable, "total_params": total,
            "tokens_per_second": round(tokens_seen / train_seconds, 1) if train_seconds else None,
            "steady_tokens_per_second": steady_tokens_per_second(clock),
            "train_tokens": tokens_seen, "train_seconds": round(train_seconds, 2),
            "peak_memory_mb": mem.mb, "peak_memory_kind": mem.kind, "optimizer_steps": trainer.state.global_step,
            "num_train": len(train_tok), "num_test": len(test_tok), "format": data.format,
            "method": cfg.method.name, "model": cfg.model.name, **pad,
            **distributed.describe(trainer.accelerator.num_processes),
        }
        if cfg.output.save_model:
            save_trained(cfg.method.name, model, out / "model", base_model=cfg.model.name)
            tokenizer.save_pretrained(out / "model")
        samples = [{"prompt": tokenizer.decode(p), "reference": r, "base": b, "finetuned": a}
                   for p, r, b, a in zip(prompts, refs, before_preds or [None] * len(refs), after_preds)]
        with open(out / "generations.jsonl", "w") as fh:
            fh.writelines(json.dumps(s) + "\n" for s in samples)
        sft_report.write_report(out, cfg, metrics, samples[:8])
        write_json(out / "metrics.json", metrics)  # last: its presence marks a finished run
        shutil.rmtree(ckpt_dir, ignore_errors=True)
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
                headline=sft_report.headline, count_memory=count_memory)
