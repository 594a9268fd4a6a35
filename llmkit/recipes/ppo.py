"""The ppo recipe: InstructGPT step 3, PPO against a reward model with a KL penalty to the SFT model.

TRL 1.x no longer ships PPO, so the loop is llmkit's own, on Accelerate, following the PPOv2 /
"N+ implementation details" recipe (../shared/briefs/ppo-rlhf.md). One update:

    rollout   sample a response per prompt from the policy (temperature T, no top-k)
    score     reward model on query + response up to EOS (or a Python reward function), minus the
              calibration offset; `reward.missing_eos_penalty` added when a response never ends
    old/ref   log-probs of the policy and the reference from a plain forward at temperature T;
              values from the value model
    rewards   per token: -kl_coef * (logp - ref_logp) on every response token, plus the score on
              the last valid token (EOS, or the last token of a cut response): one mask throughout
    GAE       advantages and returns (gamma, lambda), advantages whitened over valid tokens
    epochs    `ppo_epochs` passes over shuffled minibatches: clipped policy loss + vf_coef x
              clipped value loss, gradient clipping, separate AdamW for policy and value model
    KL coef   fixed, or adaptive towards `kl_target` (Ziegler et al. 2019)

Several processes (`accelerate launch --config_file accelerate_configs/cpu.yaml|multi_gpu.yaml`):
each rank samples and scores rollout_batch_size / world of the update's prompts, the advantages
are whitened with the mean and variance of every rank's tokens, and each minibatch step averages
the gradients of all ranks (one all-reduce per model) before clipping, so the update follows the
global batch; statistics are means over all ranks. The reward model and, for a LoRA policy, the
one base model are the only other weights each rank holds (the reference is the adapter switched
off). DeepSpeed and FSDP profiles are refused: PPO trains two models (policy, value) with their
own optimizers and samples with `generate`, which under ZeRO-3 needs every weight gathered per
token; llmkit does not do that yet.

Dropout is off in every model throughout (eval mode while training, as the N+ details do).
Checkpoints (policy and value weights, both optimizers, KL controller, the update
index) every `train.save_every` updates; a killed run started again continues from the last one.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from llmkit import faults, trackers
from llmkit.config import MethodConfig, ModelConfig, opt, to_dict
from llmkit.data.sft import prompt_text
from llmkit.divergence import check_finite
from llmkit.errors import ConfigError, DataError, LlmkitError
from llmkit.recipes import Compared, Recipe, ppo_report
from llmkit.trackers import open_trackers
from llmkit.tracking import History, PeakMemory, prepare_output_dir, write_json


@dataclass
class PPOModelConfig(ModelConfig):
    name: str = opt("runs/sft-lora/model", "The SFT model to start from (and the KL reference): a run's model/ (adapter or full), a model directory or a short name.")
    chat_template: str | None = opt(None, "Jinja chat template; default: the tokenizer's, else llmkit's plain one.")
    pad_token: str | None = opt(None, "Pad token when the tokenizer's is its EOS (responses end at the EOS); default: its unk token, or a pad-named token of the vocabulary.")


@dataclass
class PPODataConfig:
    path: str = opt("instructions", "Prompts: bundled name (instructions), JSONL/CSV/Parquet file or directory of splits; `messages` rows (the last assistant turn is dropped) or `prompt` rows.")
    train_split: str = opt("train", "Split the rollout prompts come from.")
    test_split: str = opt("test", "Split for the before/after evaluation (greedy).")
    max_prompts: int | None = opt(None, "Use only the first N training prompts.")


@dataclass
class RewardConfig:
    model: str | None = opt("runs/reward-lora/model", "Reward model directory (`llmkit train recipes/rlhf/reward.yaml` writes runs/reward-lora/model).")
    function: str | None = opt(None, "A Python reward `module:function(prompts, responses, rows) -> floats` instead of a reward model (e.g. llmkit.rlhf.rewards:instruction_exact_match).")
    missing_eos_penalty: float | None = opt(1.0, "Subtracted from the score of a response that never emits EOS (None: no penalty).")
    batch_size: int = opt(32, "Sequences per reward-model forward.")


@dataclass
class PPOAlgoConfig:
    rollout_batch_size: int = opt(32, "Prompts per update (one response each).")
    mini_batch_size: int = opt(8, "Responses per optimizer step.")
    ppo_epochs: int = opt(4, "Passes over each rollout batch.")
    max_new_tokens: int = opt(16, "Response length limit.")
    temperature: float = opt(0.7, "Sampling temperature, also applied wherever log-probs are computed.")
    top_p: float = opt(1.0, "Nucleus sampling for rollouts (1: off).")
    kl_coef: float = opt(0.05, "Initial KL penalty coefficient beta.")
    kl_kind: Literal["k1", "k2", "k3"] = opt("k1", "Per-token KL estimator in the reward.")
    adaptive_kl: bool = opt(False, "Adapt beta towards kl_target (Ziegler et al. 2019).")
    kl_target: float = opt(6.0, "Target KL per response for the adaptive controller (nats).")
    kl_horizon: int = opt(10000, "Horizon of the adaptive controller, in responses.")
    gamma: float = opt(1.0, "Discount.")
    lam: float = opt(0.95, "GAE lambda.")
    clip_range: float = opt(0.2, "Policy ratio clip.")
    clip_range_value: float = opt(0.2, "Value clip around the rollout's values.")
    vf_coef: float = opt(0.1, "Weight of the value loss.")
    whiten_advantages: bool = opt(True, "Whiten advantages over the valid tokens of the batch.")


@dataclass
class PPOTrainConfig:
    learning_rate: float = opt(1e-5, "Policy learning rate (AdamW).")
    value_learning_rate: float | None = opt(None, "Value model learning rate (default: learning_rate).")
    num_updates: int = opt(20, "PPO updates (each: one rollout batch, ppo_epochs passes).")
    max_grad_norm: float = opt(1.0, "Clip each model's gradient norm (0: off).")
    seed: int = opt(42, "Seed for prompt order, sampling and minibatch shuffling.")
    save_every: int = opt(5, "Checkpoint every N updates (0: only at the end).")
    resume: bool = opt(True, "Continue from output_dir/checkpoint when a killed run left one.")
    sample_every: int = opt(5, "Log sample generations every N updates (0: never).")
    eval_every: int = opt(0, "Score the held-out prompts greedily every N updates too (0: only before and after PPO); each adds eval_reward (and eval_exact_match) to that update's history row and the report's reward curve.")
    report_to: list[str] = opt(factory=list, help="Experiment trackers that get every history.jsonl row: tensorboard, wandb (offline unless WANDB_MODE is set); [] for none.")


@dataclass
class PPOEvalConfig:
    num_prompts: int = opt(64, "Held-out prompts scored greedily before and after PPO (0: skip).")
    max_new_tokens: int = opt(16, "Tokens per held-out answer.")
    batch_size: int = opt(32, "Prompts per generation batch.")


@dataclass
class PPOOutputConfig:
    dir: str = opt("runs/ppo-{method}", "Output directory; {kind} and {method} are filled in.")
    save_model: bool = opt(True, "Save the trained policy in output_dir/model as a standalone model (a LoRA policy merged).")
    overwrite: bool = opt(False, "Allow writing over a finished run in the same directory.")


@dataclass
class PPOConfig:
    kind: str = opt("ppo", "Recipe kind.")
    model: PPOModelConfig = opt(factory=PPOModelConfig)
    data: PPODataConfig = opt(factory=PPODataConfig)
    method: MethodConfig = opt(factory=MethodConfig)
    reward: RewardConfig = opt(factory=RewardConfig)
    ppo: PPOAlgoConfig = opt(factory=PPOAlgoConfig)
    train: PPOTrainConfig = opt(factory=PPOTrainConfig)
    eval: PPOEvalConfig = opt(factory=PPOEvalConfig)
    output: PPOOutputConfig = opt(factory=PPOOutputConfig)

    def validate(self) -> None:
        p = self.ppo
        if p.rollout_batch_size < 1 or p.mini_batch_size < 1 or p.rollout_batch_size % p.mini_batch_size:
            raise ConfigError(f"ppo.rollout_batch_size ({p.rollout_batch_size}) must be a positive multiple of "
                              f"ppo.mini_batch_size ({p.mini_batch_size})")
        if p.temperature <= 0:
            raise ConfigError(f"ppo.temperature must be > 0 (log-probs are taken at it), got {p.temperature}")
        if self.reward.model is None and self.reward.function is None:
            raise ConfigError("set reward.model (a reward model directory) or reward.function (module:function)")
        if self.train.eval_every < 0:
            raise ConfigError(f"train.eval_every must be >= 0, got {self.train.eval_every}")
        if self.train.eval_every and not self.eval.num_prompts:
            raise ConfigError("train.eval_every needs held-out prompts to score: set eval.num_prompts > 0")
        trackers.check(self.train.report_to)


# ----------------------------------------------------------------------------- data


def _prompts(path: str, split: str, limit: int | None) -> list[dict]:
    """-> [{"prompt": messages or string, "row": the data row}] for a split (a single file: its only split)."""
    from llmkit.data.loading import load_splits

    splits = load_splits(path)
    if len(splits) > 1 and split not in splits:
        raise DataError(f"{path}: no split `{split}`; it has: {', '.join(splits)}")
    table = splits[split] if split in splits else next(iter(splits.values()))
    out = []
    for i, row in enumerate(table):
        if limit is not None and len(out) >= limit:
            break
        if isinstance(row.get("messages"), list):
            msgs = row["messages"]
            last = max((j for j, m in enumerate(msgs) if m.get("role") == "assistant"), default=len(msgs))
            prompt = msgs[:last]
        elif "prompt" in row:
            prompt = row["prompt"]
        else:
            raise DataError(f"{path} [{split}]: row {i + 1}: needs `messages` or `prompt`")
        if not prompt:
            raise DataError(f"{path} [{split}]: row {i + 1}: empty prompt")
        out.append({"prompt": prompt, "row": row})
    if not out:
        raise DataError(f"{path} [{split}]: no prompts")
    return out


def _query_ids(prompt, tok, max_length: int) -> list[int]:
    """The prompt's tokens (chat template for `messages` rows), its last `max_length` if longer: the end
    holds the question and the generation prompt (TRL truncates prompts on the left too)."""
    if isinstance(prompt, list):
        ids = list(tok.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"])
    else:
        ids = tok(prompt)["input_ids"]
    return ids[-max_length:]


# ----------------------------------------------------------------------------- reward


class Scorer:
    """Scores decoded rollouts: a reward model (calibrated) or a Python function."""

    def __init__(self, cfg: RewardConfig, policy_tok):
        self.cfg, self.fn, self.rm, self.pad_id = cfg, None, None, policy_tok.pad_token_id
        if cfg.function:
            from llmkit.rlhf.models import load_reward_function

            self.fn = load_reward_function(cfg.function)
            self.name = cfg.function
        else:
            from llmkit.rlhf.models import freeze
            from llmkit.rlhf.reward_model import load_reward_model

            if not Path(cfg.model).exists():
                raise LlmkitError(f"reward model not found: {cfg.model} (train one with `llmkit train recipes/rlhf/reward.yaml`, "
                                  f"or set reward.function)")
            self.rm, rm_tok, self.offset = load_reward_model(cfg.model)
            freeze(self.rm)
            if rm_tok.get_vocab() != policy_tok.get_vocab():
                raise LlmkitError(f"the reward model {cfg.model} and the policy use different tokenizers; the reward model "
                                  f"must score the policy's token ids as it was trained (start both from the same base)")
            self.name = cfg.model

    def __call__(self, rollout, prompts, rows, texts) -> torch.Tensor:  # noqa: F821
        import torch

        from llmkit.rlhf.core import apply_missing_eos_penalty

        if self.fn is not None:
            score = torch.tensor(self.fn(prompts, texts, rows), dtype=torch.float32)
        else:
            from llmkit.rlhf.reward_model import score as rm_score
            from llmkit.rlhf.rollout import scored_sequences

            ids, mask = scored_sequences(rollout, self.pad_id)
            dev = next(self.rm.parameters()).device
            parts = [rm_score(self.rm, ids[i:i + self.cfg.batch_size].to(dev), mask[i:i + self.cfg.batch_size].to(dev)).cpu()
                     for i in range(0, len(ids), self.cfg.batch_size)]
            score = torch.cat(parts).float() - self.offset
        if self.cfg.missing_eos_penalty is not None:
            score = apply_missing_eos_penalty(score, rollout.has_eos, self.cfg.missing_eos_penalty)
        return score


# ----------------------------------------------------------------------------- one update

# Where an update's time goes, in history.jsonl per update and in metrics.json as the mean over updates:
# sampling, the reward, the no-grad forwards (old and reference log-probs, values), the PPO epochs.
TIME_SPLIT = ("generate_seconds", "score_seconds", "forward_seconds", "optimize_seconds")


class Ranks:
    """The few collective operations PPO needs, as no-ops in a single process."""

    def __init__(self, world: int = 1, rank: int = 0):
        self.world, self.rank = world, rank

    def sum(self, x):
        import torch.distributed as dist

        if self.world > 1:
            dist.all_reduce(x)
        return x

    def whiten(self, x, mask, eps: float = 1e-8):
        """core.masked_whiten with the mean and unbiased variance of every rank's valid positions."""
        import torch

        from llmkit.rlhf import core

        if self.world == 1:
            return core.masked_whiten(x, mask, eps=eps)
        m = mask.bool()
        n_sum = self.sum(torch.stack([m.sum().to(x.dtype), core.masked_sum(x, m)]))
        n, mean = n_sum[0], n_sum[1] / n_sum[0]
        var = self.sum(core.masked_sum((x - mean) ** 2, m).reshape(1))[0] / (n - 1)
        return torch.where(m, (x - mean) * torch.rsqrt(var + eps), torch.zeros((), dtype=x.dtype, device=x.device))

    def average_gradients(self, params) -> None:
        """Mean of every rank's gradients, in one all-reduce (what DDP does, bucket by bucket)."""
        import torch

        if self.world == 1:
            return
        params = [q for q in params if q.grad is not None]
        flat = self.sum(torch.cat([q.grad.reshape(-1) for q in params])) / self.world
        for q, g in zip(params, flat.split([q.numel() for q in params])):
            q.grad.copy_(g.view_as(q.grad))

    def mean(self, values: dict[str, float], device) -> dict[str, float]:
        import torch

        if self.world == 1:
            return values
        t = self.sum(torch.tensor(list(values.values()), dtype=torch.float64, device=device)) / self.world
        return dict(zip(values, t.tolist()))


def ppo_update(cfg: PPOConfig, policy, value_model, reference, scorer, batch, tok, optimizers, kl_ctl, rng: random.Random,
               ranks: Ranks = Ranks(), update: int = 1):
    """One rollout + `ppo_epochs` passes over this rank's share `batch` of the update's prompts.
    Returns the update's statistics (means over all ranks) and this rank's samples."""
    import torch

    from llmkit.rlhf import core
    from llmkit.rlhf.rollout import forward_logprobs, forward_values, sample

    p = cfg.ppo
    pad, eos = tok.pad_token_id, tok.eos_token_id
    clock = [time.perf_counter()]
    with torch.no_grad():
        r = sample(policy, [b["query"] for b in batch], pad_id=pad, eos_id=eos, max_new_tokens=p.max_new_tokens,
                   temperature=p.temperature, top_p=p.top_p)
        clock.append(time.perf_counter())
        texts = tok.batch_decode(r.response * r.response_mask, skip_special_tokens=True)
        score = scorer(r, [b["prompt"] for b in batch], [b["row"] for b in batch], texts)
        clock.append(time.perf_counter())
        old_logp = forward_logprobs(policy, r, p.temperature)
        with reference() as ref:
            ref_logp = forward_logprobs(ref, r, p.temperature)
        old_values = forward_values(value_model, r)
        mask = r.response_mask.to(old_logp.device).float()
        rewards, kl = core.shape_rewards(score.to(old_logp.device), old_logp, ref_logp, mask, kl_ctl.value, kl_kind=p.kl_kind)
        adv, returns = core.gae(rewards, old_values, mask, gamma=p.gamma, lam=p.lam)
        if p.whiten_advantages:
            adv = ranks.whiten(adv, mask)
    clock.append(time.perf_counter())

    pol_opt, val_opt = optimizers
    stats: dict[str, list] = {k: [] for k in ("policy_loss", "value_loss", "clipfrac", "approx_kl", "entropy", "vf_clipfrac", "ratio")}
    n, mini = len(r), p.mini_batch_size // ranks.world
    for _ in range(p.ppo_epochs):
        order = list(range(n))
        rng.shuffle(order)
        for i in range(0, n, mini):
            idx = torch.tensor(order[i:i + mini])
            mb = r.select(idx)
            m = mask[idx]
            logp, ent = forward_logprobs(policy, mb, p.temperature, with_entropy=True)
            pl, ps = core.policy_loss(logp, old_logp[idx], adv[idx], m, clip_range=p.clip_range)
            values = forward_values(value_model, mb)
            vl, vs = core.value_loss(values, old_values[idx], returns[idx], m, clip_range_value=p.clip_range_value)
            check_finite(update, cfg.train.learning_rate, policy_loss=pl, value_loss=vl)
            pol_opt.zero_grad()
            val_opt.zero_grad()
            (pl + p.vf_coef * vl).backward()
            ranks.average_gradients(q for m_ in (policy, value_model) for q in m_.parameters() if q.requires_grad)
            if cfg.train.max_grad_norm:
                norms = [torch.nn.utils.clip_grad_norm_([q for q in m_.parameters() if q.requires_grad], cfg.train.max_grad_norm)
                         for m_ in (policy, value_model)]
                check_finite(update, cfg.train.learning_rate, policy_gradient_norm=norms[0], value_gradient_norm=norms[1])
            pol_opt.step()
            val_opt.step()
            stats["policy_loss"].append(pl.item())
            stats["value_loss"].append(vl.item())
            stats["entropy"].append(float(ent.detach()))
            for k, key in (("clipfrac", "clipfrac"), ("approx_kl", "approx_kl"), ("ratio", "ratio_mean")):
                stats[k].append(float(ps[key]))
            stats["vf_clipfrac"].append(float(vs["vf_clipfrac"]))
    clock.append(time.perf_counter())
    out = {k: sum(v) / len(v) for k, v in stats.items()}
    out["first_ratio"] = stats["ratio"][0]
    # where the update's time went: sampling, reward, the no-grad forwards (old/ref log-probs, values), PPO epochs
    for k, (a, b) in zip(TIME_SPLIT, zip(clock, clock[1:])):
        out[k] = b - a
    s = score.double()
    out.update(kl=float((kl * mask).sum(1).mean()), reward_mean=float(s.mean()), reward_sq=float((s ** 2).mean()),
               response_length=float(r.response_mask.sum(1).float().mean()), eos_share=float(r.has_eos.float().mean()))
    out = ranks.mean(out, mask.device)  # every rank holds the same number of rollouts: means of means
    n_all = n * ranks.world
    out["reward_std"] = max(0.0, (out.pop("reward_sq") - out["reward_mean"] ** 2) * n_all / (n_all - 1)) ** 0.5 if n_all > 1 else 0.0
    kl_ctl.update(out["kl"], n_all)
    out.update(kl_coef=kl_ctl.value, optimizer_steps=len(stats["policy_loss"]))
    samples = [{"prompt": prompt_text(b["prompt"]), "response": t, "score": float(s)} for b, t, s in zip(batch, texts, score)]
    return out, samples


# ----------------------------------------------------------------------------- evaluation


def evaluate(policy, tok, scorer, items: list[dict], cfg: PPOConfig) -> tuple[dict, list[dict]]:
    """Greedy answers to held-out prompts: mean reward, and exact match where rows carry answers."""
    import torch

    from llmkit.eval.heldout import generate
    from llmkit.rlhf.reward_model import pad_batch
    from llmkit.rlhf.rollout import Rollout, response_mask

    if not items:
        return {}, []
    answers = generate(policy, tok, [b["query"] for b in items], cfg.eval.max_new_tokens, cfg.eval.batch_size, "eval generate")
    scores, hits = [], []
    for i in range(0, len(items), cfg.eval.batch_size):
        chunk, texts = items[i:i + cfg.eval.batch_size], answers[i:i + cfg.eval.batch_size]
        q, qm = pad_batch([b["query"] for b in chunk], tok.pad_token_id, side="left")
        resp, _ = pad_batch([tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for t in texts], tok.pad_token_id)
        rm, has_eos = response_mask(resp, tok.eos_token_id)
        with torch.no_grad():
            scores += scorer(Rollout(q, qm, resp, rm, has_eos), [b["prompt"] for b in chunk], [b["row"] for b in chunk], texts).tolist()
    from llmkit.data.bundled.make_instructions import check

    for b, a in zip(items, answers):
        if "answer" in b["row"]:
            hits.append(check(b["row"], a))
    out = {"reward": sum(scores) / len(scores)}
    if hits:
        out["exact_match"] = sum(hits) / len(hits)
    samples = [{"prompt": prompt_text(b["prompt"]), "answer": a, "score": s} for b, a, s in zip(items, answers, scores)]
    return out, samples


# ----------------------------------------------------------------------------- checkpoints


def _save_checkpoint(path: Path, update: int, policy, value_model, optimizers, kl_ctl, seconds: float) -> None:
    """No random state: sampling and minibatch order are seeded per update and rank (see run).
    `seconds`: the run's training seconds so far, over all its sessions."""
    import torch

    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    trainable = {n: q.detach() for n, q in policy.named_parameters() if q.requires_grad}
    torch.save({"policy": trainable, "value": value_model.state_dict(),
                "policy_opt": optimizers[0].state_dict(), "value_opt": optimizers[1].state_dict(),
                "kl": kl_ctl.state_dict(), "update": update, "seconds": seconds},
               tmp / "state.pt")
    faults.point("checkpoint")
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)  # atomic: a kill leaves the old checkpoint or the new one, never half of one
    faults.point("train")


def _load_checkpoint(path: Path, policy, value_model, optimizers, kl_ctl) -> tuple[int, float]:
    import torch

    state = torch.load(path / "state.pt", weights_only=False)
    missing = set(state["policy"]) - {n for n, _ in policy.named_parameters()}
    if missing:
        raise LlmkitError(f"{path}: checkpoint does not match this policy ({len(missing)} unknown parameters); "
                          f"delete it or use another output_dir")
    policy.load_state_dict(state["policy"], strict=False)
    value_model.load_state_dict(state["value"])
    optimizers[0].load_state_dict(state["policy_opt"])
    optimizers[1].load_state_dict(state["value_opt"])
    kl_ctl.load_state_dict(state["kl"])
    return state["update"], state.get("seconds", 0.0)


# ----------------------------------------------------------------------------- run


@dataclass
class Learners:
    """What a PPO update works on: the policy and its frozen reference, the value model, the scorer,
    the tokenizer, both optimizers and the KL controller."""

    policy: object
    reference: object
    value: object
    scorer: object
    tok: object
    optimizers: tuple
    kl_ctl: object


def run(cfg: PPOConfig, out: Path) -> dict:
    from llmkit import distributed
    from llmkit.methods import count_params

    cfg.validate()
    if distributed.uses_deepspeed() or distributed.uses_fsdp():
        raise ConfigError("ppo runs in one process or data parallel (accelerate_configs/cpu.yaml, multi_gpu.yaml), not "
                          "under DeepSpeed or FSDP profiles: it trains a policy and a value model with their own "
                          "optimizers and samples with generate(); a LoRA policy keeps one base model per GPU")
    distributed.mixed_precision("no")  # ppo runs in the weights' dtype (model.dtype); it never autocasts
    acc = distributed.accelerator()
    ranks = Ranks(acc.num_processes, acc.process_index)
    if cfg.ppo.mini_batch_size % ranks.world:
        raise ConfigError(f"ppo.mini_batch_size ({cfg.ppo.mini_batch_size}) must be a multiple of the number of "
                          f"processes ({ranks.world}): each rank takes an equal share of every minibatch")
    main = acc.is_main_process
    train_items = _prompts(cfg.data.path, cfg.data.train_split, cfg.data.max_prompts)
    test_items = _prompts(cfg.data.path, cfg.data.test_split, cfg.eval.num_prompts) if cfg.eval.num_prompts else []
    m, pad = _load(cfg, acc.device)
    # The models load before the output directory exists: a missing SFT run or reward model leaves nothing behind.
    if main:
        prepare_output_dir(out, to_dict(cfg), overwrite=cfg.output.overwrite)
    acc.wait_for_everyone()
    truncated = 0
    for b in train_items + test_items:
        b["query"] = _query_ids(b["prompt"], m.tok, cfg.model.max_length)
        truncated += len(b["query"]) == cfg.model.max_length
    trainable, total = count_params(m.policy)

    ckpt = out / "checkpoint"
    resume = ckpt.is_dir() and cfg.train.resume
    start, seconds_before = 0, 0.0
    if resume:
        start, seconds_before = _load_checkpoint(ckpt, m.policy, m.value, m.optimizers, m.kl_ctl)
        acc.print(f"resuming PPO from update {start} ({ckpt})")
    before, before_samples = {}, []
    if main and not resume:
        before, before_samples = evaluate(m.policy, m.tok, m.scorer, test_items, cfg)
        write_json(out / "eval_before.json", {"metrics": before, "samples": before_samples})
    elif main:
        saved = json.loads((out / "eval_before.json").read_text()) if (out / "eval_before.json").exists() else {}
        before, before_samples = saved.get("metrics", {}), saved.get("samples", [])
    acc.wait_for_everyone()

    with PeakMemory() as mem:
        seconds = _updates(cfg, m, train_items, test_items, out, start, resume, seconds_before, acc, ranks)
    acc.wait_for_everyone()
    if not main:
        return {}

    after, after_samples = evaluate(m.policy, m.tok, m.scorer, test_items, cfg)
    from llmkit.tracking import read_history

    hist = read_history(out / "history.jsonl")
    metrics = {**_metrics(cfg, hist, before, after), "trainable_params": trainable, "total_params": total,
               "train_seconds": round(seconds, 2), "peak_memory_mb": mem.mb, "peak_memory_kind": mem.kind,
               "method": cfg.method.name, "policy_start": cfg.model.name, "reward": m.scorer.name, **pad,
               **distributed.describe(ranks.world),
               "prompts_at_max_length": truncated}  # prompts cut (or exactly) at model.max_length tokens
    if cfg.output.save_model:  # a standalone model: the PPO adapter merged into the (merged) SFT weights
        import copy

        final = copy.deepcopy(m.policy).merge_and_unload() if hasattr(m.policy, "merge_and_unload") else m.policy
        final.save_pretrained(out / "model")
        m.tok.save_pretrained(out / "model")
        faults.point("model")
    ppo_report.write_report(out, cfg, metrics, hist, before_samples, after_samples)
    write_json(out / "metrics.json", metrics)  # last: its presence marks a finished run
    shutil.rmtree(ckpt, ignore_errors=True)
    return metrics


def _load(cfg: PPOConfig, device) -> tuple[Learners, dict]:
    """The policy, its reference, the value model and the scorer on `device`, the optimizers and the KL
    controller -> (them, the pad-token choice for metrics.json)."""
    import torch
    from accelerate.utils import set_seed

    from llmkit.models.loading import distinct_pad_token, set_chat_template
    from llmkit.rlhf.kl_control import make_kl_controller
    from llmkit.rlhf.models import load_policy, value_from_policy, value_from_reward_model

    set_seed(cfg.train.seed)  # the same initial weights (LoRA's A) on every rank
    policy, tok, reference = load_policy(cfg.model, cfg.method.name, cfg.method)
    set_chat_template(tok, cfg.model.chat_template)
    pad = distinct_pad_token(tok, cfg.model.pad_token)  # the response mask and reward position need EOS != pad
    cfg.model.pad_token = pad["pad_token"]
    scorer = Scorer(cfg.reward, tok)
    value_model = value_from_reward_model(scorer.rm) if scorer.rm is not None else value_from_policy(policy)
    policy.to(device)
    value_model.to(device)
    with reference() as ref:
        ref.to(device)
    if scorer.rm is not None:
        scorer.rm.to(device)
    for model in (policy, value_model):
        model.eval()  # dropout off throughout (N+ detail); gradients still flow
    t, p = cfg.train, cfg.ppo
    optimizers = (torch.optim.AdamW([q for q in policy.parameters() if q.requires_grad], lr=t.learning_rate, eps=1e-5),
                  torch.optim.AdamW(value_model.parameters(), lr=t.value_learning_rate or t.learning_rate, eps=1e-5))
    kl_ctl = make_kl_controller("adaptive" if p.adaptive_kl else "fixed", p.kl_coef, p.kl_target, p.kl_horizon)
    return Learners(policy, reference, value_model, scorer, tok, optimizers, kl_ctl), pad


def _updates(cfg: PPOConfig, m: Learners, train_items: list[dict], test_items: list[dict], out: Path, start: int,
             resume: bool, seconds_before: float, acc, ranks) -> float:
    """PPO updates `start`..num_updates with history, samples, held-out scores every train.eval_every and
    checkpoints -> the run's training seconds over all its sessions."""
    import torch
    from tqdm.auto import tqdm

    p, main = cfg.ppo, acc.is_main_process
    history = History(out / "history.jsonl", resume_step=start if resume else None,
                      trackers=open_trackers(cfg.train.report_to, out, to_dict(cfg))) if main else None
    samples_log = History(out / "samples.jsonl", resume_step=start if resume else None, key="update") if main else None
    order = list(range(len(train_items)))
    random.Random(f"{cfg.train.seed}:prompts").shuffle(order)
    share = p.rollout_batch_size // ranks.world
    t0 = time.perf_counter()
    bar = tqdm(total=cfg.train.num_updates, initial=start, desc="ppo", unit="update", disable=not main)
    for u in range(start, cfg.train.num_updates):
        pos = (u * p.rollout_batch_size) % len(order)
        batch = [train_items[order[(pos + j) % len(order)]] for j in range(p.rollout_batch_size)]
        batch = batch[ranks.rank * share:(ranks.rank + 1) * share]
        # sampling and minibatch order seeded per update and rank: a resumed run draws the same
        torch.manual_seed(cfg.train.seed * 1_000_003 + u * ranks.world + ranks.rank)
        mb_rng = random.Random(f"{cfg.train.seed}:minibatches:{u}:{ranks.rank}")
        stats, samples = ppo_update(cfg, m.policy, m.value, m.reference, m.scorer, batch, m.tok, m.optimizers, m.kl_ctl,
                                    mb_rng, ranks, update=u + 1)
        bar.update(1)
        bar.set_postfix(reward=f"{stats['reward_mean']:.3f}", kl=f"{stats['kl']:.3f}")
        if main:
            ev = {}
            if cfg.train.eval_every and (u + 1) % cfg.train.eval_every == 0 and u + 1 < cfg.train.num_updates:
                ev = {f"eval_{k}": v for k, v in evaluate(m.policy, m.tok, m.scorer, test_items, cfg)[0].items()}
            history.log(step=u + 1, **{k: round(v, 6) for k, v in stats.items()}, **ev)
            if cfg.train.sample_every and (u + 1) % cfg.train.sample_every == 0:
                for s in samples[:4]:
                    samples_log.log(update=u + 1, **s)
        if cfg.train.save_every and (u + 1) % cfg.train.save_every == 0 and u + 1 < cfg.train.num_updates:
            if main:  # every rank holds the same weights and optimizer states (gradients are averaged)
                _save_checkpoint(out / "checkpoint", u + 1, m.policy, m.value, m.optimizers, m.kl_ctl,
                                 seconds_before + time.perf_counter() - t0)
            acc.wait_for_everyone()
    bar.close()
    if main:
        history.close()
    return seconds_before + time.perf_counter() - t0


def _metrics(cfg: PPOConfig, hist: list[dict], before: dict, after: dict) -> dict:
    """metrics.json's figures from the history: reward at the start and end, the time split, KL."""
    p = cfg.ppo
    first, last = hist[: max(1, len(hist) // 5)], hist[-max(1, len(hist) // 5):]
    mean = lambda rows, k: sum(r[k] for r in rows) / len(rows)  # noqa: E731
    return {
        "reward_mean_first": mean(first, "reward_mean"), "reward_mean_last": mean(last, "reward_mean"),
        # mean seconds per update: sampling, reward, no-grad forwards (old/ref log-probs, values), PPO epochs
        **{k: mean(hist, k) for k in TIME_SPLIT},
        "kl_last": mean(last, "kl"), "kl_max": max(r["kl"] for r in hist), "kl_coef_last": hist[-1]["kl_coef"],
        **{f"before_eval_{k}": v for k, v in before.items()}, **{f"eval_{k}": v for k, v in after.items()},
        "updates": len(hist), "optimizer_steps_per_update": p.ppo_epochs * (p.rollout_batch_size // p.mini_batch_size),
    }


# ----------------------------------------------------------------------------- estimate-memory


def _memory_source(value: str, default: str, key: str, notes: list[str]) -> str:
    """A run directory the PPO recipe expects (runs/sft-lora/model, runs/reward-lora/model) that is not
    there yet: its default comes from the embedded model, so estimate with that model's shape."""
    if value == default and not Path(value).exists():
        from llmkit.recipes.sft import SFTModelConfig

        base = SFTModelConfig().name
        notes.append(f"{key}={value} does not exist yet; estimated with the shape of {base}, the model the "
                     f"recipes train it from (set {key}=... to estimate another)")
        return base
    return value


def count_memory(cfg, n: int, ckpt_request, notes):
    from llmkit.memory import (
        Held,
        Stream,
        apply_method,
        count_model,
        held,
        largest_module,
        meta_backbone,
        meta_causal_lm,
        meta_seq_cls,
        model_config,
        shape_of,
        stored_layers,
    )

    cfg.validate()
    defaults = PPOConfig()
    name = _memory_source(cfg.model.name, defaults.model.name, "model.name", notes)
    config, desc = model_config(name, revision=cfg.model.revision, trust_remote_code=cfg.model.trust_remote_code)
    policy = meta_causal_lm(config)
    shape = shape_of(policy)
    policy, added = apply_method(policy, cfg.method.name, cfg.method, notes)
    helds = [held("policy", policy, cfg.method, added)]
    if hasattr(policy, "disable_adapter"):  # as load_policy decides: the reference is the adapter disabled
        helds.append(Held("reference", 0, 0, note=f"the policy with its {cfg.method.name} adapter disabled: no copy"))
    else:
        base = count_model(meta_causal_lm(config))
        helds.append(Held("reference", 0, sum(base), largest_module=helds[0].largest_module,
                          note="a second, frozen copy of the SFT model"))
    if cfg.reward.function:
        value = meta_backbone(config)
        vnote = "policy backbone + scalar head (reward.function: no reward model)"
    else:
        rm_name = _memory_source(cfg.reward.model, defaults.reward.model, "reward.model", notes)
        rm_config, _ = model_config(rm_name, key="reward.model")
        rm = meta_seq_cls(rm_config)
        trainable, frozen = count_model(rm)
        helds.append(Held("reward model", 0, trainable + frozen, largest_module=largest_module(rm), note="frozen"))
        value = meta_backbone(rm_config)
        vnote = "reward model backbone + scalar head, all trainable"
    vt, vf = count_model(value)
    h = value.config.hidden_size
    helds.append(Held("value model", vt + vf + h, 0, largest_module=largest_module(value), note=vnote))
    p = cfg.ppo
    s = cfg.model.max_length + p.max_new_tokens
    notes.append(f"PPO sequence length = model.max_length ({cfg.model.max_length}, taken as the prompt bound) + "
                 f"ppo.max_new_tokens ({p.max_new_tokens}); micro batch = ppo.mini_batch_size / GPUs, no accumulation")
    if n > 1:
        notes.append("the ppo recipe runs in one process or data parallel (multi_gpu.yaml); it refuses DeepSpeed/FSDP "
                     "profiles, so the ZeRO rows show what it would take")
    stored = stored_layers(policy, added, shape)
    vshape = shape_of(value)
    streams = [Stream("policy", shape, max(1, p.mini_batch_size // n), s, stored, True),
               Stream("value model", vshape, max(1, p.mini_batch_size // n), s, vshape.layers, False)]
    extra = {"rollout": (p.rollout_batch_size, cfg.model.max_length, p.max_new_tokens)}
    if ckpt_request:
        notes.append("the ppo recipe does not checkpoint activations today; the figure shows what it would save")
    return desc, helds, streams, max(1, p.mini_batch_size // n), 1, bool(ckpt_request), extra


RECIPE = Recipe(kind="ppo", verb="train", config_cls=PPOConfig, run=run, default_method="lora",
                summary_line=ppo_report.summary_line, section=ppo_report.pipeline_section,
                headline=ppo_report.headline, count_memory=count_memory,
                sharded=False, autocast=False, trainer_batching=False,
                compare=Compared(("reward_mean_last",), True, (("reward_mean_first", "reward, first fifth of updates"),
                                                       ("kl_last", "KL, last fifth"), ("kl_max", "KL, max"))))
