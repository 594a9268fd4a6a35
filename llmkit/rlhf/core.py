"""The math of PPO for RLHF, as pure tensor functions: no models, no I/O, no global state.

Every function takes tensors over *response* positions, shaped (B, T): B sequences, T the length of
the longest response, right-padded. `mask` is a bool (or 0/1) tensor of the same shape that is 1 on
valid response tokens: up to and including the first stop (EOS) token, or on every generated token
when the response was truncated without one. The mask is a prefix of each row (§2 of the brief):
valid tokens first, padding after. One mask serves log-probs, values, rewards, advantages and both
losses, which is what fixes the TRL PPOv2 off-by-one (score one slot after EOS, TRL #1893, #3750).

Padding positions may hold anything (TRL fills padded log-probs with the sentinel 1.0; a model may
give inf): every function selects valid positions with `torch.where`, so padding never reaches a
value, a metric or a gradient.

Notation (brief §2): x the query, y = (a_0 ... a_{T-1}) the response, t_end the last valid index,
m_t = 1[t <= t_end], pi the policy, pi_old the policy that sampled the rollout, pi_ref the frozen
SFT model, V the value model, beta the KL coefficient.

Sources:
- InstructGPT: Ouyang et al. 2022, "Training language models to follow instructions with human
  feedback", https://arxiv.org/abs/2203.02155 (objective, eq. 2).
- Ziegler et al. 2019, "Fine-Tuning Language Models from Human Preferences",
  https://arxiv.org/abs/1909.08593 (per-token KL in the reward, adaptive KL).
- N+: Huang et al. 2024, "The N+ Implementation Details of RLHF with PPO: A Case Study on TL;DR
  Summarization", https://arxiv.org/abs/2403.17031, and its code `vwxyzjn/summarize_from_feedback_details`.
- "The 37 Implementation Details of PPO", ICLR blog track 2022 (GAE returns, approx-KL, clipping).
- TRL PPOv2 (`trl/experimental/ppo/ppo_trainer.py`, `trl/trainer/utils.py`), OpenRLHF
  (`openrlhf/models/utils.py`, `loss.py`).
- Schulman 2020, "Approximating KL Divergence", http://joschu.net/blog/kl-approx.html (k1, k2, k3).
- GAE: Schulman et al. 2016, https://arxiv.org/abs/1506.02438.

Run the unit tests: `python -m pytest tests/test_rlhf_core.py`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "aggregate_loss",
    "apply_missing_eos_penalty",
    "entropy_from_logits",
    "explained_variance",
    "gae",
    "kl_estimate",
    "last_valid_index",
    "logprobs_from_logits",
    "masked_mean",
    "masked_sum",
    "masked_var",
    "masked_whiten",
    "policy_loss",
    "response_mask_from_ids",
    "shape_rewards",
    "value_loss",
]

KL_KINDS = ("k1", "k2", "k3")


# ----------------------------------------------------------------------------------------------
# helpers


def _as_bool(mask: Tensor) -> Tensor:
    return mask if mask.dtype == torch.bool else mask != 0


def _f32(x: Tensor) -> Tensor:
    """Upcast half precision to fp32 (brief P15: log-softmax and losses in fp32); keep fp32/fp64."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _check_shapes(mask: Tensor, **tensors: Tensor) -> None:
    for name, t in tensors.items():
        if t.shape != mask.shape:
            raise ValueError(f"`{name}` has shape {tuple(t.shape)} but `mask` has {tuple(mask.shape)}")


def _check_prefix(mask: Tensor) -> None:
    """Raise unless every row of a bool (B, T) mask is valid tokens followed only by padding."""
    if mask.shape[-1] > 1 and bool((mask[..., 1:] & ~mask[..., :-1]).any()):
        raise ValueError("`mask` must be a prefix per row (valid response tokens, then right padding only)")


# ----------------------------------------------------------------------------------------------
# masked statistics


def masked_sum(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Sum of `x` over positions where `mask` is 1; padding values (even inf/nan) are ignored."""
    m = _as_bool(mask)
    xm = torch.where(m, x, torch.zeros((), dtype=x.dtype, device=x.device))
    return xm.sum() if dim is None else xm.sum(dim)


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """mean_m(x) = sum_t m_t x_t / sum_t m_t.

    dim=None: one scalar over all valid positions; raises ValueError if the mask is empty.
    dim given: the mean along that dimension; a slice with no valid position gives 0 (not nan).
    """
    m = _as_bool(mask)
    if dim is None:
        n = m.sum()
        if int(n) == 0:
            raise ValueError("masked_mean over an empty mask")
        return masked_sum(x, m) / n
    n = m.sum(dim).clamp(min=1)
    return masked_sum(x, m, dim) / n


def masked_var(x: Tensor, mask: Tensor, unbiased: bool = True) -> Tensor:
    """Variance of `x` over all valid positions (one scalar).

    var = sum_t m_t (x_t - mean_m(x))^2 / n, times n / (n - 1) when `unbiased` (Bessel), n = sum m.
    Raises ValueError when n == 0, or n == 1 with `unbiased` (division by zero; TRL raises for
    both, brief P21).
    """
    m = _as_bool(mask)
    n = int(m.sum())
    if n == 0:
        raise ValueError("masked_var over an empty mask")
    if unbiased and n == 1:
        raise ValueError("masked_var(unbiased=True) needs at least 2 valid positions, got 1")
    mean = masked_mean(x, m)
    var = masked_sum((x - mean) ** 2, m) / n
    return var * (n / (n - 1)) if unbiased else var


def masked_whiten(x: Tensor, mask: Tensor, shift_mean: bool = True, eps: float = 1e-8) -> Tensor:
    """Whiten `x` with the mean and unbiased variance of its valid positions; padding stays 0.

    w_t = (x_t - mu) / sqrt(var + eps) on valid positions, mu and var from `masked_mean` /
    `masked_var`. With `shift_mean=False` the mean is added back: w_t = (x_t - mu)/sqrt(var + eps) + mu,
    i.e. only the scale changes (lm-human-preferences `whiten(rewards, shift_mean=False)`, used for
    optional reward whitening; advantages are whitened with `shift_mean=True`, N+ Detail 25).
    The statistics are over the whole tensor (all rows): call it on the full rollout batch.
    Needs >= 2 valid positions (see `masked_var`).
    """
    m = _as_bool(mask)
    mean, var = masked_mean(x, m), masked_var(x, m, unbiased=True)
    w = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        w = w + mean
    return torch.where(m, w, torch.zeros((), dtype=w.dtype, device=w.device))


def explained_variance(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """EV = 1 - Var_m[target - pred] / Var_m[target], over valid positions (0-d tensor, no grad).

    1 is a perfect value function, 0 no better than a constant, < 0 worse. Both variances are the
    biased (1/n) form, which cancels in the ratio. nan when Var_m[target] == 0 (as in SB3 /
    baselines). Raises on an empty mask.
    """
    with torch.no_grad():
        pred, target = _f32(pred.detach()), _f32(target.detach())
        var_y = masked_var(target, mask, unbiased=False)
        var_res = masked_var(target - pred, mask, unbiased=False)
        nan = torch.full((), float("nan"), dtype=var_y.dtype, device=var_y.device)
        return torch.where(var_y > 0, 1 - var_res / var_y.clamp(min=torch.finfo(var_y.dtype).tiny), nan)


def aggregate_loss(per_token: Tensor, mask: Tensor, num_tokens: float | Tensor | None = None) -> Tensor:
    """Token-mean of a per-token loss: sum_t m_t l_t / N.

    N = `num_tokens` when given, else the number of valid tokens in `mask`. Pass the *global* count
    of valid tokens of the whole mini-batch (all micro-batches, times all data-parallel ranks when
    gradients are averaged across ranks) so that accumulating micro-batch losses gives exactly the
    full mini-batch token-mean (brief §2.8 "Aggregation"; OpenRLHF `aggregate_loss`).
    """
    m = _as_bool(mask)
    if num_tokens is None:
        return masked_mean(per_token, m)
    return masked_sum(per_token, m) / num_tokens


# ----------------------------------------------------------------------------------------------
# response positions


def last_valid_index(mask: Tensor) -> Tensor:
    """Index t_end of the last valid token of each row: LongTensor (B,).

    For an EOS-terminated response this is the EOS position; for a truncated one, T' - 1 where T'
    is its length. This is the one place the score position is defined (brief §5): the reward
    scorer, `shape_rewards` and `gae` all use it. A row with no valid token gives 0 (callers that
    cannot accept that, like `shape_rewards`, raise on empty rows).
    """
    m = _as_bool(mask)
    idx = torch.arange(m.shape[-1], device=m.device)
    return torch.where(m, idx, -1).amax(-1).clamp(min=0)


def response_mask_from_ids(response_ids: Tensor, stop_token_ids: int | Sequence[int]) -> tuple[Tensor, Tensor]:
    """Response mask and stop flag from generated ids (B, T) -> (mask bool (B, T), has_stop bool (B,)).

    mask_t = 1 up to and including the first token in `stop_token_ids` (the configured stop token,
    not necessarily `eos_token_id`: TRL #3750), and on all T tokens when no stop token occurs
    (truncated). Built from ids, never from "!= pad", so pad == eos cannot hide the EOS (brief P3).
    """
    stops = torch.as_tensor([stop_token_ids] if isinstance(stop_token_ids, int) else list(stop_token_ids),
                            device=response_ids.device)
    is_stop = torch.isin(response_ids, stops)  # (B, T)
    # stops strictly before t: > 0 means t is after the first stop token
    before = is_stop.long().cumsum(-1) - is_stop.long()
    return before == 0, is_stop.any(-1)


# ----------------------------------------------------------------------------------------------
# KL and reward


def kl_estimate(logp: Tensor, ref_logp: Tensor, kind: str = "k1") -> Tensor:
    """Per-token estimate of KL(pi || pi_ref) from the log-probs of the sampled tokens; shape of `logp`.

    With log r = ref_logp - logp = log(pi_ref(a_t|s_t) / pi(a_t|s_t)) and a_t ~ pi (Schulman 2020):
    - k1 = logp - ref_logp = -log r. Unbiased, can be negative per token. The default in InstructGPT,
      N+, TRL and OpenRLHF for the KL *in the reward*.
    - k2 = 0.5 (logp - ref_logp)^2 = 0.5 (log r)^2. Biased, >= 0; as a loss its gradient equals that
      of k1-in-reward on-policy (arXiv:2510.01555).
    - k3 = (r - 1) - log r = exp(ref_logp - logp) - 1 - (ref_logp - logp). Unbiased, >= 0, lower
      variance (GRPO's KL).
    No masking and no clamping (OpenRLHF clamps to [-10, 10]); `shape_rewards` masks.
    """
    if kind == "k1":
        return logp - ref_logp
    if kind == "k2":
        return 0.5 * (logp - ref_logp) ** 2
    if kind == "k3":
        log_r = ref_logp - logp
        return torch.expm1(log_r) - log_r
    raise ValueError(f"kl kind must be one of {KL_KINDS}, got {kind!r}")


def shape_rewards(score: Tensor, logp: Tensor, ref_logp: Tensor, mask: Tensor, kl_coef: float | Tensor,
                  kl_kind: str = "k1") -> tuple[Tensor, Tensor]:
    """Per-token reward of InstructGPT/N+: r_t = -beta * kl_t * m_t + 1[t = t_end] * score.

    score: (B,) the (normalised, penalised, clipped) reward-model score of each response.
    logp, ref_logp: (B, T) log pi_old(a_t|s_t) and log pi_ref(a_t|s_t) of the sampled tokens.
    Returns (rewards (B, T), kl (B, T)), both 0 on padding; kl is the per-token estimate
    (`kl_estimate(kind=kl_kind)`), so the per-sequence KL to log is `kl.sum(1)`.

    The score lands on t_end = `last_valid_index(mask)`: the EOS token, or the last generated token
    of a truncated response. TRL PPOv2 / N+ put it at t_end + 1 (the first pad slot) whenever one
    exists, which treats EOS-terminated and truncated samples differently (brief §7 P1; OpenRLHF
    `compute_reward` places it as here). So sum_t r_t = score - beta * sum_t m_t kl_t.
    Raises ValueError if a row has no valid token (its score would have nowhere to go).
    """
    m = _as_bool(mask)
    _check_shapes(m, logp=logp, ref_logp=ref_logp)
    if score.shape != m.shape[:1]:
        raise ValueError(f"`score` must have shape ({m.shape[0]},), got {tuple(score.shape)}")
    if not bool(m.any(-1).all()):
        raise ValueError("every response needs at least one valid token (the EOS counts as one)")
    zero = torch.zeros((), dtype=logp.dtype, device=logp.device)
    # Select before estimating so padding sentinels (inf, nan) never enter the arithmetic.
    kl = torch.where(m, kl_estimate(torch.where(m, logp, zero), torch.where(m, ref_logp, zero), kl_kind), zero)
    rewards = -kl_coef * kl
    t_end = last_valid_index(m)  # (B,)
    rewards = rewards.scatter_add(1, t_end[:, None], score.to(rewards.dtype)[:, None])
    return rewards, kl


def apply_missing_eos_penalty(score: Tensor, has_eos: Tensor, penalty: float, mode: str = "subtract") -> Tensor:
    """Penalise responses that ended without the stop token ("EOS trick", brief §2.3). Returns (B,).

    A completion without EOS is out of distribution for an RM trained on EOS-terminated text.
    - mode="subtract" (TRL `missing_eos_penalty`): score - penalty where `has_eos` is False.
    - mode="replace" (N+ Detail 23; OpenAI's replication used -1): the score becomes -penalty there,
      so `penalty=1.0` reproduces N+.
    `penalty` is a positive amount of badness in both modes. Rows with `has_eos` keep their score.
    """
    has_eos = _as_bool(has_eos)
    if mode == "subtract":
        penalised = score - penalty
    elif mode == "replace":
        penalised = torch.full_like(score, -penalty)
    else:
        raise ValueError(f"missing-EOS penalty mode must be 'subtract' or 'replace', got {mode!r}")
    return torch.where(has_eos, score, penalised)


# ----------------------------------------------------------------------------------------------
# advantages


def gae(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float = 1.0, lam: float = 0.95,
        final_values: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation over response positions -> (advantages (B, T), returns (B, T)).

    delta_t = r_t + gamma * V_{t+1} * m_{t+1} - V_t            (V_T = 0: the state after t_end is terminal)
    A_t     = delta_t + gamma * lam * m_{t+1} * A_{t+1}        (= sum_l (gamma lam)^l delta_{t+l}, within the response)
    R_t     = A_t + V_t                                        (TD(lambda) returns, "37 details" detail 5)
    Both outputs are 0 on padding. Rewards and values at padding are ignored.

    `values` are V(s_t) from the rollout (no grad). Defaults gamma = 1, lam = 0.95 (N+, TRL,
    DeepSpeed-Chat; OpenRLHF uses lam = 1). `final_values` (B,), optional: bootstraps truncated
    responses by using it as V(s_{t_end + 1}) instead of 0; pass V(s_T) for rows without EOS and 0
    elsewhere (off by default, TRL PR #1536 rejected it). Advantages are not whitened here: call
    `masked_whiten(adv, mask)` on the whole rollout batch (N+ Detail 25).
    The mask must be a prefix per row (raises otherwise). Runs without grad, in at least fp32.
    """
    m = _as_bool(mask)
    _check_shapes(m, rewards=rewards, values=values)
    _check_prefix(m)
    with torch.no_grad():
        dtype = _f32(values).dtype
        zero = torch.zeros((), dtype=dtype, device=values.device)
        r = torch.where(m, rewards.detach().to(dtype), zero)
        v = torch.where(m, values.detach().to(dtype), zero)
        next_v = torch.cat([v[:, 1:], torch.zeros_like(v[:, :1])], dim=1)  # V_{t+1} m_{t+1}
        if final_values is not None:
            next_v = next_v.scatter_add(1, last_valid_index(m)[:, None], final_values.to(v.dtype)[:, None])
        delta = r + gamma * next_v - v  # (B, T), 0 at padding
        cont = torch.cat([m[:, 1:], torch.zeros_like(m[:, :1])], dim=1).to(v.dtype)  # m_{t+1}
        adv = []
        last = torch.zeros_like(v[:, 0])
        for t in reversed(range(v.shape[1])):
            last = delta[:, t] + gamma * lam * cont[:, t] * last
            adv.append(last)
        adv = torch.where(m, torch.stack(adv[::-1], dim=1), zero)
        returns = torch.where(m, adv + v, zero)
    return adv, returns


# ----------------------------------------------------------------------------------------------
# losses


def policy_loss(logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor, clip_range: float = 0.2,
                num_tokens: float | Tensor | None = None,
                max_log_ratio: float | None = 20.0) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO clipped surrogate (Schulman et al. 2017, eq. 7, as a loss to minimise) -> (loss 0-d, stats).

    rho_t = exp(logp_t - old_logp_t)
    L = mean_m[ max(-A_t rho_t, -A_t clip(rho_t, 1 - eps, 1 + eps)) ]      (eps = clip_range, 0.2 everywhere)
    The mean is `aggregate_loss` (token-mean, or sum / `num_tokens` for a global normaliser).
    `old_logp` and `advantages` are treated as constants (detached). The log-ratio is clamped to
    +-`max_log_ratio` before exp (OpenRLHF; None disables); this never touches sane ratios.
    Inputs are upcast to fp32 if in half precision.

    Worked example, eps = 0.2 (tests/test_rlhf_core.py): rho = 1.5, A = +1: max(-1.5, -1.2) = -1.2
    (clipped, no gradient); rho = 1.5, A = -1: max(1.5, 1.2) = 1.5 (unclipped). With logp == old_logp
    rho is exactly 1 and L = -mean(A).

    stats (detached 0-d tensors, means over valid tokens of this call):
    - "clipfrac": fraction of tokens where the clipped term is strictly larger, i.e. where the clip
      is active and the token gives no gradient (TRL/N+ `pg_clipfrac`).
    - "approx_kl": k3 on the ratio, mean((rho - 1) - log rho) >= 0 ("37 details" detail 12);
      "approx_kl_k2": 0.5 mean((log rho)^2), what TRL logs as `policy/approxkl`.
    - "ratio_mean".
    On the first mini-batch of an update (pi == pi_old) all are 0, except ratio_mean = 1.
    """
    m = _as_bool(mask)
    _check_shapes(m, logp=logp, old_logp=old_logp, advantages=advantages)
    logp = _f32(logp)
    zero = torch.zeros((), dtype=logp.dtype, device=logp.device)
    # where() before any arithmetic: a sentinel (inf/nan) at padding then gives 0 gradient, not nan.
    logp = torch.where(m, logp, zero)
    old = torch.where(m, _f32(old_logp.detach()).to(logp.dtype), zero)
    adv = torch.where(m, _f32(advantages.detach()).to(logp.dtype), zero)
    log_ratio = logp - old
    if max_log_ratio is not None:
        log_ratio = log_ratio.clamp(-max_log_ratio, max_log_ratio)
    ratio = torch.exp(log_ratio)
    unclipped = -adv * ratio
    clipped = -adv * ratio.clamp(1.0 - clip_range, 1.0 + clip_range)
    loss = aggregate_loss(torch.maximum(unclipped, clipped), m, num_tokens)
    with torch.no_grad():
        stats = {
            "clipfrac": masked_mean((clipped > unclipped).to(logp.dtype), m),
            "approx_kl": masked_mean(torch.expm1(log_ratio) - log_ratio, m),
            "approx_kl_k2": masked_mean(0.5 * log_ratio**2, m),
            "ratio_mean": masked_mean(ratio, m),
        }
    return loss, stats


def value_loss(values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor,
               clip_range_value: float | None = 0.2,
               num_tokens: float | Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """Clipped value loss (PPO2 / N+ / TRL) -> (loss 0-d, stats).

    V_clip = old_V + clip(V - old_V, -eps_v, eps_v)
    L_V = 0.5 * mean_m[ max((V - R)^2, (V_clip - R)^2) ]
    With `clip_range_value=None`: L_V = 0.5 * mean_m[(V - R)^2] (clipping is neutral or harmful in
    some tasks, "37 details" detail 9; keep it switchable). eps_v is in reward units: 0.2 in N+, TRL,
    DeepSpeed-Chat; 0.5 in OpenRLHF. `old_values` (rollout values) and `returns` are constants
    (detached). The mean is `aggregate_loss` (see `policy_loss`). The 0.5 is included here; the
    trainer multiplies by its value coefficient c_v (0.1 in N+/TRL) when sharing one optimizer.

    stats (detached 0-d tensors): "vf_clipfrac" (fraction of tokens where the clipped term is
    strictly larger, i.e. no gradient), "explained_variance" of `values` (the current predictions)
    against `returns`, "value_mean".
    """
    m = _as_bool(mask)
    _check_shapes(m, values=values, old_values=old_values, returns=returns)
    v = _f32(values)
    zero = torch.zeros((), dtype=v.dtype, device=v.device)
    v = torch.where(m, v, zero)
    v_old = torch.where(m, _f32(old_values.detach()).to(v.dtype), zero)
    ret = torch.where(m, _f32(returns.detach()).to(v.dtype), zero)
    unclipped = (v - ret) ** 2
    if clip_range_value is None:
        per_token, clipfrac = unclipped, torch.zeros((), dtype=v.dtype, device=v.device)
    else:
        v_clip = v_old + (v - v_old).clamp(-clip_range_value, clip_range_value)
        clipped = (v_clip - ret) ** 2
        per_token = torch.maximum(unclipped, clipped)
        with torch.no_grad():
            clipfrac = masked_mean((clipped > unclipped).to(v.dtype), m)
    loss = 0.5 * aggregate_loss(per_token, m, num_tokens)
    with torch.no_grad():
        stats = {"vf_clipfrac": clipfrac, "explained_variance": explained_variance(v, ret, m),
                 "value_mean": masked_mean(v.detach(), m)}
    return loss, stats


# ----------------------------------------------------------------------------------------------
# from logits


def logprobs_from_logits(logits: Tensor, ids: Tensor, temperature: float = 1.0) -> Tensor:
    """log softmax(logits / temperature) gathered at `ids`: (B, T, V), (B, T) -> (B, T), at least fp32.

    `logits[:, t]` must be the logits that predict `ids[:, t]` (the caller slices the forward output of
    query||response to the response positions, shifted by one). The sampling temperature must be
    applied in *every* log-prob computation: rollout, reference, training forward (N blog, policy
    detail 1; OpenRLHF PR #853; TRL tempers the reference too, #3169). Computed as
    z[id] - logsumexp(z), which avoids a second (B, T, V) log-softmax tensor. `ids` must be valid
    vocabulary ids at padding too (replace an out-of-vocabulary pad id before calling).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    z = _f32(logits)
    if temperature != 1.0:
        z = z / temperature
    picked = z.gather(-1, ids.long().unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(z, dim=-1)


def entropy_from_logits(logits: Tensor, mask: Tensor, temperature: float = 1.0) -> Tensor:
    """Mean per-token entropy of softmax(logits / temperature) over valid positions: (B, T, V) -> 0-d.

    H_t = logsumexp(z_t) - sum_v p_tv z_tv with z = logits / temperature, p = softmax(z) (in nats).
    Masked (TRL #2022: padded sentinels made the logged entropy negative) and tempered with the
    sampling temperature (OpenRLHF PR #1319). Keeps the graph, so it can serve as an entropy bonus.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    m = _as_bool(mask)
    _check_shapes(m, logits=logits[..., 0])
    z = _f32(logits)
    if temperature != 1.0:
        z = z / temperature
    z = torch.where(m[..., None], z, torch.zeros((), dtype=z.dtype, device=z.device))
    p = torch.softmax(z, dim=-1)
    h = torch.logsumexp(z, dim=-1) - (p * z).sum(-1)  # (B, T)
    return masked_mean(h, m)
