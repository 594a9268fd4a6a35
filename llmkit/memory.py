"""Estimate the GPU memory a training recipe needs, before launching it: `llmkit estimate-memory`.

    llmkit estimate-memory recipes/sft/lora.yaml [--num-gpus 8] [--gpu-memory 80] [key=value ...]

The recipe is resolved exactly as `llmkit train` resolves it (defaults < YAML < overrides). Its
models are built from their configs on the meta device (no weights are allocated or read), the
recipe's method is applied there, and the parameters are counted: trainable (Ψt) and frozen (Ψf).
Then, per GPU and per strategy (DDP, ZeRO-1/2/3, offload), the figures below. All sizes are in
bytes; GiB = 2**30 bytes, the unit nvidia-smi uses (an "80 GB" card has 81,920 MiB).

Model states: Rajbhandari et al. 2020, "ZeRO: Memory Optimizations Toward Training Trillion
Parameter Models", https://arxiv.org/abs/1910.02054, sections 3.1 and 5.
    mixed-precision Adam (bf16/fp16): 2 (16-bit weights) + 2 (16-bit gradients)
                                      + 12 (fp32 master weights, momentum, variance) bytes per Ψt
    fp32 training:                    4 + 4 + 8 bytes per Ψt
    frozen parameters:                storage only: 2 bytes (bf16/fp16), 4 (fp32), ~0.52 (4-bit, below)
    per GPU with N GPUs:   stage 0 (DDP)  2Ψt + 2Ψt + 12Ψt
                           stage 1        2Ψt + 2Ψt + 12Ψt/N
                           stage 2        2Ψt + (2 + 12)Ψt/N
                           stage 3        (2 + 2 + 12)Ψt/N, frozen weights also /N, plus the gathered
                                          working set: 2 x the largest module's 16-bit weights (the one
                                          computing and the one prefetched), when N > 1 or offloaded
    offload (ZeRO-Offload, Ren et al. 2021, https://arxiv.org/abs/2101.06840): stage 2 and 3 move
    the optimizer states (12Ψt/N) to CPU memory, where CPU Adam also keeps an fp32 copy of the
    gradient shard (4Ψt/N); stage 3 also the weights' shards. The GPU still counts its 16-bit
    gradient shard (DeepSpeed streams it out in buckets: a safe upper bound). The CPU column adds
    up all N processes (one machine).

4-bit frozen base (QLoRA, Dettmers et al. 2023, https://arxiv.org/abs/2305.14314, section 2):
NF4 is 4 bits per weight plus one fp32 constant per 64-weight block (0.5 bit); double quantisation
stores those constants in 8 bits with one fp32 constant per 256 of them: 4 + 8/64 + 32/(64*256) =
4.127 bits = 0.516 byte/parameter (0.5625 without). Only linear layers are quantised (not the
output head, embeddings or norms), and peft's `prepare_model_for_kbit_training` casts the rest to
fp32 (4 bytes each).

Activations: Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer
Models", https://arxiv.org/abs/2205.05198, section 4.1, eq. (1): one transformer layer stores
s*b*h*(34 + 5*a*s/h) bytes with 16-bit activations (s sequence length, b micro batch, h hidden
size, a heads). The 34 is 11 (attention) + 19 (MLP of width 4h) + 4 (two layer norms); the
5*a*s^2*b term is the softmax and dropout over the s x s score matrix. Here the MLP term follows the
model's intermediate size I:
    per layer = s*b*h*(15 + m) + 5*a*s^2*b
    m = 3 + 4*I/h    plain MLP (input 2sbh, two I-wide tensors 2sbI each, dropout mask sbh: 19 at I = 4h)
    m = 3 + 8*I/h    gated MLP (SwiGLU: gate, up, activation and product outputs, 2sbI each)
The 5*a*s^2*b term is dropped when attention is SDPA or FlashAttention (the model config's
attention implementation), which never store the score matrix. Grouped-query attention's smaller K
and V are not taken off (a slight overestimate). fp32 activations count twice.
    gradient checkpointing: 2*s*b*h per layer (each layer's input) + one layer's full activations
                            (recomputed during its backward)
    layers that store activations: only those from the first block with a trainable parameter to
                            the last (all of them when anything before the blocks trains: embeddings,
                            soft prompts, prefixes); with none, one layer's worth, transiently
    logits (causal LMs):    s*b*V*4 bytes (fp32 logits for the loss) x 2 (their gradient)
    PPO: policy and value model both hold activations in one backward; the rollout phase (no
    gradients, rollout_batch_size sequences) needs the larger of the generation KV cache
    (2*L*B*s*kv_heads*head_dim*2) and the log-prob pass's logits (B*s*V*2 + 2*B*R*V*4), plus one
    layer's activations; the activation figure is the larger of the two phases.
How close the per-layer formula is, checked against the bytes autograd actually saves per layer
(torch saved-tensor hooks; bf16, SDPA, CPU, transformers 5.23; in units of s*b*h): BERT 36.1 vs
the formula's 34.0; Llama 45.6 vs 39.5 (its RMSNorm computes in fp32 and saves fp32 copies); GPT-2
60.1 vs 34.0 (its tanh GELU is built from elementwise ops that each save an I-wide tensor). The
activation line can thus be ~15% low for Llama-family models and ~40% low for GPT-2.

Overhead: a fixed OVERHEAD_BYTES = 1 GiB line per GPU for the CUDA context (~0.5 GiB with
CUDA 12's lazy module loading), cuBLAS/cuDNN workspaces, NCCL buffers and allocator fragmentation.

Strategies map to the launcher profiles in accelerate_configs/: single_gpu (one GPU) and multi_gpu
(DDP) are stage 0, zero1/zero2/zero3, zero3_offload (stage 3 + offload), fsdp (full shard: counted
as stage 3). The recommendation is the profile with the least communication that fits: stage 0,
then 1 and 2 (the same volume as DDP, ZeRO section 7), then 3 (1.5x), then the offloaded ones (PCIe
traffic and a CPU optimizer step).

The first half of this file is the formulas, pure functions on numbers; the second builds the
recipe's models on the meta device and counts them.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import shlex
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from llmkit.errors import ConfigError, LlmkitError

GIB = 2**30
MIB = 2**20
OVERHEAD_BYTES = 1 * GIB  # CUDA context + workspaces + NCCL + fragmentation (see the module docstring)


# ============================================================================= formulas (pure)


@dataclass(frozen=True)
class Precision:
    """Bytes per parameter: trainable (weights, gradients, optimizer states), frozen, and the
    activation multiplier relative to 16-bit activations."""

    name: str
    weight: int
    grad: int
    optim: int
    frozen: int
    activation_factor: int


PRECISIONS = {
    "bf16": Precision("bf16", 2, 2, 12, 2, 1),  # ZeRO section 3.1: 2 + 2 + (4 + 4 + 4)
    "fp16": Precision("fp16", 2, 2, 12, 2, 1),
    "fp32": Precision("fp32", 4, 4, 8, 4, 2),  # fp32 weights and grads, Adam's m and v
}


def nf4_bytes_per_param(double_quant: bool = True) -> float:
    """4-bit NormalFloat storage with its block constants (QLoRA section 2): 0.516 or 0.5625."""
    bits = 4 + 8 / 64 + 32 / (64 * 256) if double_quant else 4 + 32 / 64
    return bits / 8


@dataclass(frozen=True)
class Held:
    """One model held in GPU memory while training (a recipe may hold several: PPO holds four).

    `frozen` parameters are stored at the training precision; `frozen_4bit_bytes` is the storage of
    4-bit quantised weights (already in bytes) and `frozen_fp32` counts parameters kept in fp32
    whatever the precision (QLoRA's norms, embeddings and head). `largest_module` is the biggest
    single module's parameter count (ZeRO-3 gathers one module at a time)."""

    role: str
    trainable: int
    frozen: int
    frozen_4bit: int = 0
    frozen_4bit_bytes: float = 0.0
    frozen_fp32: int = 0
    largest_module: int = 0
    note: str = ""

    @property
    def total(self) -> int:
        return self.trainable + self.frozen + self.frozen_4bit + self.frozen_fp32

    def frozen_bytes(self, precision: Precision) -> float:
        return self.frozen * precision.frozen + self.frozen_4bit_bytes + self.frozen_fp32 * 4


@dataclass(frozen=True)
class Strategy:
    stage: int  # ZeRO stage; 0 is plain data parallel (or one GPU)
    offload: bool = False  # optimizer states (and at stage 3 the weights) in CPU memory

    def label(self, num_gpus: int = 1) -> str:
        base = ("one GPU" if num_gpus == 1 else "DDP") if self.stage == 0 else f"ZeRO-{self.stage}"
        return base + (" + offload" if self.offload else "")

    def profiles(self, num_gpus: int) -> list[str]:
        """Launcher profiles (accelerate_configs/NAME.yaml) that run this strategy."""
        if self.stage == 0:
            return ["single_gpu"] if num_gpus == 1 else ["multi_gpu"]
        if self.offload:
            return ["zero3_offload"] if self.stage == 3 else [f"zero{self.stage} + offload_optimizer_device: cpu"]
        return ["zero3", "fsdp"] if self.stage == 3 else [f"zero{self.stage}"]

    def comm_rank(self) -> int:
        """Order of communication cost: DDP = ZeRO-1 = ZeRO-2 volume < ZeRO-3 (1.5x) < offload."""
        return self.stage + (10 if self.offload else 0)


def strategies(zero_stage: int | None = None, offload: bool = False) -> list[Strategy]:
    """The rows to show: every stage (plus zero3_offload, and zero2 + offload with `offload`), or one."""
    if zero_stage is not None:
        if offload and zero_stage < 2:
            raise ConfigError(f"--offload needs --zero-stage 2 or 3 (offloading optimizer states is ZeRO-Offload, "
                              f"built on stage 2), got --zero-stage {zero_stage}")
        return [Strategy(zero_stage, offload)]
    rows = [Strategy(0), Strategy(1), Strategy(2), Strategy(3)]
    return rows + ([Strategy(2, True)] if offload else []) + [Strategy(3, True)]


def model_state_bytes(helds: list[Held], precision: Precision, strategy: Strategy, num_gpus: int) -> dict:
    """Per-GPU weights, gradients and optimizer states, and per-GPU CPU memory (ZeRO section 5)."""
    n, st = num_gpus, strategy.stage
    psi_t = sum(h.trainable for h in helds)
    frozen = sum(h.frozen_bytes(precision) for h in helds)
    weights = precision.weight * psi_t + frozen
    grads = precision.grad * psi_t
    optim = precision.optim * psi_t
    gathered = 0.0
    if st >= 1:
        optim /= n
    if st >= 2:
        grads /= n
    if st >= 3:
        full = weights
        weights /= n
        if n > 1 or strategy.offload:  # modules are gathered to full size one (+ one prefetched) at a time
            gathered = 2 * precision.weight * max((h.largest_module for h in helds), default=0)
            gathered = min(gathered, full - (0 if strategy.offload else weights))  # never more than the whole model
    cpu = 0.0
    if strategy.offload and st >= 2:
        # CPU Adam keeps the fp32 master weights and moments, and an fp32 copy of the gradient shard
        cpu += optim + 4 * psi_t / n
        optim = 0.0
        if st == 3:
            cpu += weights
            weights = 0.0
    return {"weights": weights + gathered, "gradients": grads, "optimizer": optim, "cpu": cpu}


@dataclass(frozen=True)
class Shape:
    """What the activation formula needs from a model config."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab: int
    kv_heads: int
    head_dim: int
    gated_mlp: bool = False
    flash: bool = True  # SDPA / FlashAttention: no s x s score matrix stored

    def mlp_term(self) -> float:
        ratio = self.intermediate / self.hidden
        return 3 + (8 if self.gated_mlp else 4) * ratio


def layer_activation_bytes(shape: Shape, b: int, s: int) -> float:
    """One layer's stored activations, 16-bit: s*b*h*(15 + m) + 5*a*s^2*b (Korthikanti eq. 1)."""
    out = s * b * shape.hidden * (15 + shape.mlp_term())
    if not shape.flash:
        out += 5 * shape.heads * s * s * b
    return out


def activation_bytes(shape: Shape, b: int, s: int, *, layers_with_grad: int, checkpointing: bool,
                     lm_logits: bool, factor: int = 1) -> dict:
    """Activations of one forward + backward: {"layers": ..., "logits": ...} in bytes."""
    full = layer_activation_bytes(shape, b, s)
    if layers_with_grad == 0:  # nothing to backpropagate through the blocks: transient, one layer
        layers = full
    elif checkpointing:
        layers = layers_with_grad * 2 * s * b * shape.hidden + full
    else:
        layers = layers_with_grad * full
    logits = s * b * shape.vocab * 4 * 2 if lm_logits else 0
    return {"layers": layers * factor, "logits": logits}


def kv_cache_bytes(shape: Shape, b: int, s: int, factor: int = 1) -> float:
    """Generation's KV cache: K and V for every layer, 16-bit."""
    return 2 * shape.layers * b * s * shape.kv_heads * shape.head_dim * 2 * factor


def rollout_bytes(shape: Shape, b: int, query: int, response: int, factor: int = 1) -> float:
    """PPO's rollout phase, no gradients (llmkit/rlhf/rollout.py): the larger of the KV cache while
    sampling and the log-prob pass's logits (model-dtype logits for every position, then an fp32
    response slice and its tempered copy), plus one layer's transient activations."""
    s = query + response
    logits = b * s * shape.vocab * 2 * factor + 2 * b * response * shape.vocab * 4
    return max(kv_cache_bytes(shape, b, s, factor), logits) + layer_activation_bytes(shape, b, s) * factor


@dataclass
class Row:
    strategy: Strategy
    profiles: list[str]
    weights: float
    gradients: float
    optimizer: float
    activations: float
    overhead: float
    cpu_total: float  # all processes on one machine
    total: float = 0.0
    fits: bool | None = None

    def __post_init__(self):
        self.total = self.weights + self.gradients + self.optimizer + self.activations + self.overhead


def estimate_rows(helds: list[Held], activations: float, precision: Precision, num_gpus: int,
                  rows: list[Strategy], *, overhead: float = OVERHEAD_BYTES, gpu_memory: float | None = None) -> list[Row]:
    """One Row per strategy: model states + activations + overhead per GPU, and whether it fits
    in `gpu_memory` bytes."""
    out = []
    for st in rows:
        ms = model_state_bytes(helds, precision, st, num_gpus)
        row = Row(st, st.profiles(num_gpus), ms["weights"], ms["gradients"], ms["optimizer"], activations,
                  overhead, ms["cpu"] * num_gpus)
        row.fits = None if gpu_memory is None else row.total <= gpu_memory
        out.append(row)
    return out


def recommend(rows: list[Row]) -> Row | None:
    """The fitting row with the least communication (None when none fits or fit is unknown)."""
    fitting = [r for r in rows if r.fits]
    return min(fitting, key=lambda r: r.strategy.comm_rank()) if fitting else None


def human(n: float) -> str:
    """Bytes in the largest binary unit that keeps the number >= 1."""
    for unit, size in (("GiB", GIB), ("MiB", MIB), ("KiB", 1024)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n:.0f} B"


# ============================================================================= counting a recipe's models


@dataclass
class Stream:
    """A model whose activations are held for one backward."""

    role: str
    shape: Shape
    batch: int  # sequences per forward per GPU
    seq_len: int
    layers_with_grad: int
    lm_logits: bool


@dataclass
class Estimate:
    recipe: str
    kind: str
    method: str
    model: str
    num_gpus: int
    precision: Precision
    gradient_checkpointing: bool
    helds: list[Held]
    streams: list[Stream]
    micro_batch: int
    accumulation: int
    seq_len: int
    activations: dict  # {"train": bytes, "rollout": bytes (ppo only), "total": the larger}
    rows: list[Row]
    gpu_memory: float | None
    notes: list[str] = field(default_factory=list)
    batch_size: int | None = None  # the global batch the micro batch is derived from (None: not adjustable)
    sharded: bool = True  # the recipe runs under DeepSpeed/FSDP profiles (else one process or data parallel only)
    overrides: list[str] = field(default_factory=list)  # for the recommended `llmkit train` command

    def smaller_micro_batch(self) -> tuple[int, Row] | None:
        """The largest micro batch below the current one that fits, with the cheapest-communication
        strategy it fits with (activations grow linearly with the micro batch)."""
        if self.batch_size is None or self.gpu_memory is None or self.micro_batch < 2:
            return None
        per_seq = self.activations["total"] / self.micro_batch
        for row in sorted(self.rows, key=lambda r: r.strategy.comm_rank()):
            room = self.gpu_memory - (row.total - row.activations)
            fits = int(room // per_seq) if per_seq else self.micro_batch - 1
            for k in range(min(fits, self.micro_batch - 1), 0, -1):
                if self.batch_size % (k * self.num_gpus) == 0:
                    return k, row
        return None

    def recommendation(self) -> str:
        """One line: the cheapest-communication profile that fits, or what to try."""
        if self.gpu_memory is None:
            best = min(self.rows, key=lambda r: r.total)
            return (f"smallest per-GPU total: {best.profiles[0]} ({human(best.total)}); pass --gpu-memory GB "
                    f"to see which strategies fit")
        row = recommend(self.rows)
        cap = f"{self.gpu_memory / GIB:g} GiB"
        if row is None:
            smaller = self.smaller_micro_batch()
            tips = ["more GPUs (--num-gpus)"]
            if smaller:
                k, with_row = smaller
                tips.insert(0, f"train.micro_batch_size={k} ({self.batch_size // (k * self.num_gpus)} accumulation "
                               f"steps), which fits with {with_row.profiles[0]}")
            if not self.gradient_checkpointing and any(s.layers_with_grad for s in self.streams):
                tips.insert(0, "gradient checkpointing (--gradient-checkpointing, train.gradient_checkpointing=true)")
            if self.method in ("full", "last_layers"):
                tips.append("method=lora or method=qlora")
            return f"nothing fits in {cap} per GPU; try {', '.join(tips)}"
        profile = row.profiles[0]
        if profile.startswith("zero2 +"):
            profile, edit = "zero2", " (a copy with offload_optimizer_device: cpu)"
        else:
            edit = ""
        procs = "" if profile == "single_gpu" else f" --num_processes {self.num_gpus}"
        args = " ".join(shlex.quote(a) for a in [self.recipe, *self.overrides])
        how = f"accelerate launch --config_file accelerate_configs/{profile}.yaml{edit}{procs} -m llmkit train {args}"
        if not self.sharded:  # one process or data parallel: no DeepSpeed/FSDP profile
            how = (f"llmkit train {args}" if self.num_gpus == 1 else
                   f"accelerate launch --config_file accelerate_configs/multi_gpu.yaml --num_processes {self.num_gpus} -m llmkit train {args}")
        line = f"{row.profiles[0]}: {human(row.total)} of {cap} per GPU; {how}"
        if not self.sharded and row.profiles[0] not in ("single_gpu", "multi_gpu"):
            line += (f" (but the {self.kind} recipe runs only in one process or data parallel: sharded rows show "
                     f"what it would take)")
        return line

    def table(self) -> str:
        p = self.precision
        lines = [f"recipe       {self.recipe} (kind {self.kind}, method {self.method})",
                 f"model        {self.model}"]
        for h in self.helds:
            parts = [f"trainable {h.trainable:,}", f"frozen {h.frozen:,}"]
            if h.frozen_4bit:
                parts.append(f"4-bit {h.frozen_4bit:,}")
            if h.frozen_fp32:
                parts.append(f"fp32 {h.frozen_fp32:,}")
            lines.append(f"  {h.role:<12} " + ", ".join(parts) + (f"  ({h.note})" if h.note else ""))
        psi_t = sum(h.trainable for h in self.helds)
        psi_f = sum(h.total - h.trainable for h in self.helds)
        lines.append(f"parameters   Ψt = {psi_t:,} trainable, Ψf = {psi_f:,} frozen")
        lines.append(f"batch        micro batch b = {self.micro_batch} per GPU x {self.accumulation} accumulation "
                     f"x {self.num_gpus} GPU(s); sequence length s = {self.seq_len}")
        lines.append(f"precision    {p.name}: {p.weight} + {p.grad} + {p.optim} bytes per trainable parameter, "
                     f"{p.frozen} per frozen one")
        act = self.activations
        detail = f"train step {human(act['train'])}"
        if "rollout" in act:
            detail += f", rollout {human(act['rollout'])} (the larger counts)"
        lines.append(f"activations  gradient checkpointing {'on' if self.gradient_checkpointing else 'off'}; {detail}")
        for s in self.streams:
            kept = "layer inputs only" if self.gradient_checkpointing and s.layers_with_grad else "activations"
            lines.append(f"  {s.role:<12} b={s.batch} s={s.seq_len}, {s.layers_with_grad} of {s.shape.layers} layers "
                         f"store {kept}, h={s.shape.hidden} a={s.shape.heads} I={s.shape.intermediate} "
                         f"V={s.shape.vocab}{' (gated MLP)' if s.shape.gated_mlp else ''}"
                         f"{'' if s.shape.flash else ' (eager attention: s x s scores stored)'}"
                         f"{', logits' if s.lm_logits else ''}")
        lines.append("")
        fit_col = f"fits {self.gpu_memory / GIB:g} GiB" if self.gpu_memory is not None else ""
        header = ["strategy", "profile", "weights", "gradients", "optimizer", "activations", "overhead",
                  "total/GPU", "CPU (all)"] + ([fit_col] if fit_col else [])
        body = []
        for r in self.rows:
            cells = [r.strategy.label(self.num_gpus), ", ".join(r.profiles), human(r.weights), human(r.gradients),
                     human(r.optimizer), human(r.activations), human(r.overhead), human(r.total),
                     human(r.cpu_total) if r.cpu_total else "-"]
            if fit_col:
                cells.append("yes" if r.fits else "no")
            body.append(cells)
        widths = [max(len(c[i]) for c in [header] + body) for i in range(len(header))]
        for cells in [header] + body:
            lines.append("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip())
        lines.append("")
        lines += [f"note: {n}" for n in self.notes]
        lines.append(f"recommendation: {self.recommendation()}")
        return "\n".join(lines)

    def to_json(self) -> dict:
        rec = recommend(self.rows) if self.gpu_memory is not None else None
        return {
            "recipe": self.recipe, "kind": self.kind, "method": self.method, "model": self.model,
            "num_gpus": self.num_gpus, "precision": self.precision.name,
            "gradient_checkpointing": self.gradient_checkpointing,
            "micro_batch": self.micro_batch, "accumulation": self.accumulation, "seq_len": self.seq_len,
            "trainable_params": sum(h.trainable for h in self.helds),
            "frozen_params": sum(h.total - h.trainable for h in self.helds),
            "models": [dataclasses.asdict(h) for h in self.helds],
            "streams": [{**{k: v for k, v in dataclasses.asdict(s).items() if k != "shape"},
                         "shape": dataclasses.asdict(s.shape)} for s in self.streams],
            "activations": {k: round(v) for k, v in self.activations.items()},
            "gpu_memory_bytes": None if self.gpu_memory is None else round(self.gpu_memory),
            "strategies": [{"strategy": r.strategy.label(self.num_gpus), "stage": r.strategy.stage, "offload": r.strategy.offload,
                            "profiles": r.profiles,
                            **{k: round(getattr(r, k)) for k in ("weights", "gradients", "optimizer", "activations",
                                                                 "overhead", "total", "cpu_total")},
                            "fits": r.fits} for r in self.rows],
            "units": "bytes per GPU (cpu_total: all processes on one machine)",
            "recommendation": rec.profiles[0] if rec else None,
            "recommendation_text": self.recommendation(),
            "notes": self.notes,
        }


# ----------------------------------------------------------------------------- model configs, no weights


def model_config(name: str, *, revision: str | None = None, trust_remote_code: bool = False, key: str = "model.name"):
    """-> (transformers config, description) for a model name, without loading any weights.

    pico-llama not yet pretrained: its shape from llmkit/models/pretrain.py (no pretraining here);
    smollm2 not yet converted: its config from the GGUF's header (no weights are read).
    An adapter directory: its base model's config (the adapter's own few parameters are not counted;
    the reward and ppo recipes merge it into the base). tiny-* names are built (in a second) on first
    use, like `llmkit train` does; nothing else is written."""
    from transformers import AutoConfig

    from llmkit.models.loading import local_only, resolve_model
    from llmkit.models.trained import _base_name, adapter_info

    if name == "smollm2":
        from llmkit.models.smollm2 import config as smollm2_config

        return smollm2_config()
    if name == "pico-llama":
        from llmkit.hub import cache_dir
        from llmkit.models.pretrain import PRETRAINED

        cached = cache_dir() / "models" / name
        if not (cached / "config.json").is_file():
            from transformers import LlamaConfig

            sp = PRETRAINED[name]
            return LlamaConfig(vocab_size=sp.vocab_size, hidden_size=sp.hidden_size, intermediate_size=sp.intermediate_size,
                               num_hidden_layers=sp.num_hidden_layers, num_attention_heads=sp.num_attention_heads,
                               num_key_value_heads=sp.num_key_value_heads, max_position_embeddings=sp.context,
                               tie_word_embeddings=False), f"{name} (shape from llmkit/models/pretrain.py; not pretrained yet)"
    path = Path(name)
    if path.is_dir() and (info := adapter_info(path)) is not None:
        base = _base_name(info, path)
        config, desc = model_config(base, key=key)
        return config, f"{desc} + adapter {name}"
    if path.is_dir() and (path / "classifier.json").is_file():
        base = json.loads((path / "classifier.json").read_text())["base_model"]
        config, desc = model_config(base, key=key)
        return config, f"{desc} (classifier {name})"
    try:
        resolved = resolve_model(name, revision)
        config = AutoConfig.from_pretrained(resolved, trust_remote_code=trust_remote_code,
                                            revision=revision if resolved == name else None,
                                            local_files_only=local_only(resolved))
    except LlmkitError as e:
        raise ConfigError(f"{key}={name}: {e}") from None
    except (OSError, ValueError) as e:
        raise ConfigError(f"{key}={name}: cannot read its config: {e}") from None
    return config, name


def shape_of(model) -> Shape:
    """The activation formula's inputs, from a (meta) model and its config (which records the
    attention implementation transformers picked: sdpa unless flash-attn or eager is asked for)."""
    from llmkit.models.blocks import find_blocks, num_layers

    config = model.config
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    h = getattr(text, "hidden_size", None) or text.n_embd
    heads = getattr(text, "num_attention_heads", None) or text.n_head
    inter = getattr(text, "intermediate_size", None) or getattr(text, "n_inner", None) or 4 * h
    kv = getattr(text, "num_key_value_heads", None) or heads
    head_dim = getattr(text, "head_dim", None) or h // heads
    _, blocks = find_blocks(model)
    gated = any(n.rsplit(".", 1)[-1] in ("gate_proj", "gate_up_proj", "w1", "wi_0") for n, _ in blocks[0].named_modules())
    impl = getattr(config, "_attn_implementation", None) or "eager"
    return Shape(hidden=h, layers=num_layers(text) or len(blocks), heads=heads, intermediate=inter,
                 vocab=text.vocab_size, kv_heads=kv, head_dim=head_dim, gated_mlp=gated, flash=impl != "eager")


def layers_with_grad(model) -> int:
    """How many blocks store activations for backward: from the first block holding a trainable
    parameter to the last; all of them when a parameter used before the blocks trains (embeddings,
    PEFT's prompt encoder, which feeds soft prompts or every layer's prefixes)."""
    from llmkit.models.blocks import find_blocks

    _, blocks = find_blocks(model)
    index = {id(p): i for i, b in enumerate(blocks) for p in b.parameters()}
    seen_blocks, first = False, None
    for name, p in model.named_parameters():
        if id(p) in index:
            seen_blocks = True
            if p.requires_grad:
                first = index[id(p)] if first is None else min(first, index[id(p)])
        elif p.requires_grad and (not seen_blocks or "prompt_encoder" in name):
            return len(blocks)
    return 0 if first is None else len(blocks) - first


def largest_module(model) -> int:
    return max((sum(p.numel() for p in m.parameters(recurse=False)) for m in model.modules()), default=0)


def count_model(model) -> tuple[int, int]:
    from llmkit.methods import count_params

    trainable, total = count_params(model)
    return trainable, total - trainable


def _quantised_linears(model) -> int:
    """Parameters of the linear weights bitsandbytes would store in 4 bits: every nn.Linear except
    the heads llmkit keeps in full precision (lm_head, pooler, score) and LoRA's own matrices."""
    from torch import nn

    seen, n = set(), 0
    for name, m in model.named_modules():
        parts = name.split(".")
        if not isinstance(m, nn.Linear) or any(k in parts for k in ("lm_head", "pooler", "score", "lora_A", "lora_B",
                                                                     "modules_to_save", "original_module")):
            continue
        if id(m.weight) not in seen and not m.weight.requires_grad:
            seen.add(id(m.weight))
            n += m.weight.numel()
    return n


def analytic_count(model, method_name: str, method_cfg) -> tuple[int, list]:
    """A method's trainable parameters from the base model's structure, for when the method cannot
    be applied on the meta device: (parameters it adds, base parameters it leaves trainable). Each
    formula is the one in the method's docstring (llmkit/methods/)."""
    from torch import nn

    from llmkit.methods.adapter import adapter_param_count
    from llmkit.models.blocks import find_blocks, modules_after_blocks

    params = list({id(p): p for p in model.parameters()}.values())
    _, blocks = find_blocks(model)
    cfg = model.config
    h = getattr(cfg, "hidden_size", None) or cfg.n_embd
    if method_name == "full":
        return 0, params
    if method_name == "feature_based":
        return 0, []
    if method_name == "last_layers":
        k = method_cfg.trainable_layers
        keep = list(blocks)[len(blocks) - k:] + modules_after_blocks(model) if k else []
        out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        keep += [out] if out is not None else []
        return 0, list({id(p): p for m in keep for p in m.parameters()}.values())
    if method_name in ("lora", "qlora"):
        # r * (d_in + d_out) per adapted matrix (+ d_out for DoRA's magnitude); all-linear skips the heads
        targets, n = method_cfg.target_modules, 0
        for name, m in model.named_modules():
            if not isinstance(m, nn.Linear):
                continue
            if targets == ["all-linear"]:
                if name.rsplit(".", 1)[-1] in ("lm_head", "score") or "pooler" in name:
                    continue
            elif not any(name == t or name.endswith("." + t) for t in targets):
                continue
            n += method_cfg.r * (m.in_features + m.out_features) + (m.out_features if method_cfg.use_dora else 0)
        return n, []
    if method_name == "adapter":
        norms = [p for m in model.modules() if isinstance(m, nn.LayerNorm) or type(m).__name__.endswith("Norm")
                 for p in m.parameters(recurse=False)] if method_cfg.train_layer_norms else []
        return adapter_param_count(h, method_cfg.bottleneck, len(blocks)), norms
    if method_name == "prefix":
        n, L = method_cfg.num_virtual_tokens, len(blocks)
        heads = getattr(cfg, "num_attention_heads", None) or cfg.n_head
        kv_width = (getattr(cfg, "num_key_value_heads", None) or heads) * (getattr(cfg, "head_dim", None) or h // heads)
        if method_cfg.projection:
            P = method_cfg.projection_hidden
            return n * h + h * P + P + P * L * 2 * h + L * 2 * h, []
        return n * L * 2 * kv_width, []
    if method_name == "prompt":
        return method_cfg.num_virtual_tokens * h, []
    raise ConfigError(f"no analytic count for method {method_name!r}")


def apply_method(model, method_name: str, method_cfg, notes: list[str]):
    """Apply the method on the meta device -> (model, 0). If it cannot run there, freeze the base as
    the method would and count what it adds analytically -> (model, parameters added)."""
    from llmkit.methods import get_method

    method = get_method(method_name)
    if hasattr(method_cfg, "init_text") and method_cfg.init_text:
        # the text only chooses initial values (it needs the tokenizer); the count is the same
        method_cfg = dataclasses.replace(method_cfg, init_text=None)
    try:
        with warnings.catch_warnings():  # deprecation chatter from peft/transformers internals
            warnings.simplefilter("ignore", FutureWarning)
            return on_meta(lambda: method.apply(model, method_cfg)), 0
    except LlmkitError:
        raise
    except Exception as e:  # noqa: BLE001 - any library failure on meta tensors
        added, unfrozen = analytic_count(model, method_name, method_cfg)
        model.requires_grad_(False)
        for p in unfrozen:
            p.requires_grad_(True)
        n = added + sum(p.numel() for p in unfrozen)
        notes.append(f"method {method_name} could not be applied on the meta device ({type(e).__name__}: {e}); "
                     f"its {n:,} trainable parameters are counted analytically (llmkit/memory.py analytic_count)")
        return model, added


def held(role: str, model, method_cfg=None, added: int = 0, note: str = "") -> Held:
    """Count a (meta) model, plus `added` trainable parameters counted analytically; for a 4-bit
    method, the frozen base split into quantised linear weights and the rest."""
    trainable, frozen = count_model(model)
    trainable += added
    largest = largest_module(model)
    quant = getattr(method_cfg, "quant_type", None)  # QLoRA's config: the frozen base loads in 4 bits
    if quant:
        q = _quantised_linears(model)
        return Held(role, trainable, 0, frozen_4bit=q, frozen_4bit_bytes=q * nf4_bytes_per_param(method_cfg.double_quant),
                    frozen_fp32=frozen - q, largest_module=largest, note=note or f"{quant}, linear weights in 4 bits")
    return Held(role, trainable, frozen, largest_module=largest, note=note)


def stored_layers(model, added: int, shape: Shape) -> int:
    """Blocks that store activations; a method counted analytically adds parameters inside every
    block or before them (LoRA, adapters, prefixes, prompts), so all blocks do."""
    return shape.layers if added else layers_with_grad(model)


def on_meta(build):
    import torch

    with torch.device("meta"):
        return build()


def meta_causal_lm(config):
    from transformers import AutoModelForCausalLM

    return on_meta(lambda: AutoModelForCausalLM.from_config(config))


def meta_seq_cls(config):
    from transformers import AutoModelForSequenceClassification

    config = copy.deepcopy(config)
    config.num_labels = 1
    return on_meta(lambda: AutoModelForSequenceClassification.from_config(config))


def meta_backbone(config):
    from transformers import AutoModel

    return on_meta(lambda: AutoModel.from_config(config))


def checkpointing(requested: bool | None, recipe_value: bool, method_name: str, notes: list[str]) -> bool:
    from llmkit.methods import get_method

    on = recipe_value if requested is None else requested
    if on and not getattr(get_method(method_name), "gradient_checkpointing_ok", True):
        notes.append(f"gradient checkpointing is off: method {method_name} cannot train with it "
                     f"(llmkit/methods/{method_name}.py), as `llmkit train` would do")
        return False
    return on


def estimate_recipe(path: str | Path, overrides: list[str] = (), *, num_gpus: int = 1, zero_stage: int | None = None,
                    offload: bool = False, gpu_memory_gib: float | None = None,
                    gradient_checkpointing: bool | None = None, precision: str = "bf16",
                    overhead: float = OVERHEAD_BYTES) -> Estimate:
    """Resolve the recipe as `llmkit train` does, count its models on the meta device, and
    estimate per-GPU memory for each strategy. Raises ConfigError on bad input."""
    from llmkit.recipes import load_config

    if num_gpus < 1:
        raise ConfigError(f"--num-gpus must be >= 1, got {num_gpus}")
    if precision not in PRECISIONS:
        raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if gpu_memory_gib is not None and gpu_memory_gib <= 0:
        raise ConfigError(f"--gpu-memory must be > 0 (GiB), got {gpu_memory_gib}")
    rows = strategies(zero_stage, offload)
    recipe, cfg = load_config(path, overrides)
    if recipe.count_memory is None:
        raise ConfigError(f"{path}: no memory estimate for recipes of kind {recipe.kind!r}")
    notes: list[str] = []
    desc, helds, streams, micro, accum, ckpt, extra = recipe.count_memory(cfg, num_gpus, gradient_checkpointing, notes)
    prec = PRECISIONS[precision]
    train = sum(sum(activation_bytes(s.shape, s.batch, s.seq_len, layers_with_grad=s.layers_with_grad,
                                     checkpointing=ckpt, lm_logits=s.lm_logits, factor=prec.activation_factor).values())
                for s in streams)
    acts = {"train": train}
    if "rollout" in extra:
        b, q, r = extra["rollout"]
        acts["rollout"] = rollout_bytes(streams[0].shape, b, q, r, prec.activation_factor)
    acts["total"] = max(acts.values())
    model_dtype = getattr(cfg.model, "dtype", None)
    if not recipe.autocast and precision != "fp32":
        notes.append(f"the {recipe.kind} recipe loads its models in fp32 and does not autocast today: --precision fp32 "
                     "estimates what it does now")
    elif model_dtype == "float32" and precision != "fp32" and any(h.frozen for h in helds):
        notes.append(f"the recipe loads weights in model.dtype=float32: without DeepSpeed (which casts to "
                     f"{precision}) frozen weights then take 4 bytes each, not {prec.frozen}; set "
                     f"model.dtype=bfloat16 to match this estimate")
    gpu_bytes = gpu_memory_gib * GIB if gpu_memory_gib is not None else None
    adjustable = recipe.trainer_batching and any(s.layers_with_grad for s in streams)  # trains through the blocks
    command = list(overrides)
    if recipe.trainer_batching and ckpt != cfg.train.gradient_checkpointing:  # the run must do what was estimated
        command.append(f"train.gradient_checkpointing={str(ckpt).lower()}")
    return Estimate(recipe=str(path), kind=recipe.kind, method=cfg.method.name, model=desc, num_gpus=num_gpus,
                    precision=prec, gradient_checkpointing=ckpt, helds=helds, streams=streams, micro_batch=micro,
                    accumulation=accum, seq_len=streams[0].seq_len, activations=acts,
                    rows=estimate_rows(helds, acts["total"], prec, num_gpus, rows, overhead=overhead, gpu_memory=gpu_bytes),
                    gpu_memory=gpu_bytes, notes=notes, batch_size=cfg.train.batch_size if adjustable else None,
                    sharded=recipe.sharded,
                    overrides=command)
