"""Unit tests of the PPO math in llmkit/rlhf/core.py and llmkit/rlhf/kl_control.py (CPU, milliseconds).

Every expected number is worked out by hand in the comments next to it (brief §6.2). Tensors are
float64 so the tolerances can be tight.
"""

import math

import pytest
import torch

from llmkit.errors import ConfigError
from llmkit.rlhf import core
from llmkit.rlhf.kl_control import AdaptiveKLController, FixedKLController, make_kl_controller

D = torch.float64
TOL = dict(rtol=0, atol=1e-12)


def t(x, dtype=D):
    return torch.tensor(x, dtype=dtype)


def close(actual, expected, **tol):
    torch.testing.assert_close(actual, expected if isinstance(expected, torch.Tensor) else t(expected),
                               **(tol or TOL))


# ---------------------------------------------------------------------------------------------
# masked statistics


def test_masked_mean_var_equal_torch_on_the_valid_slice():
    x = t([[1.0, 2.0, 3.0, 100.0], [5.0, float("inf"), float("nan"), -7.0]])
    mask = t([[1, 1, 1, 0], [1, 0, 0, 0]], torch.long)  # 0/1 ints are accepted as well as bools
    valid = t([1.0, 2.0, 3.0, 5.0])
    # mean = 11/4 = 2.75; deviations -1.75 -0.75 0.25 2.25, squares sum 8.75; var = 8.75/3, biased 8.75/4
    close(core.masked_mean(x, mask), 2.75)
    close(core.masked_var(x, mask), 8.75 / 3)
    close(core.masked_var(x, mask, unbiased=False), 8.75 / 4)
    close(core.masked_var(x, mask), valid.var(unbiased=True))
    close(core.masked_sum(x, mask), 11.0)
    # per row: [6/3, 5/1]; a row with no valid position gives 0
    close(core.masked_mean(x, mask, dim=1), [2.0, 5.0])
    close(core.masked_mean(x, t([[1, 1, 1, 0], [0, 0, 0, 0]], torch.long), dim=1), [2.0, 0.0])


def test_masked_stats_guard_tiny_masks():
    x = t([[1.0, 2.0]])
    with pytest.raises(ValueError):
        core.masked_mean(x, torch.zeros(1, 2, dtype=torch.bool))
    with pytest.raises(ValueError):  # Bessel's correction over one element divides by zero (brief P21)
        core.masked_var(x, t([[1, 0]], torch.long))
    close(core.masked_var(x, t([[1, 0]], torch.long), unbiased=False), 0.0)
    with pytest.raises(ValueError):
        core.masked_whiten(x, t([[1, 0]], torch.long))


def test_masked_whiten():
    x = t([[1.0, 2.0, 3.0, 100.0], [5.0, -50.0, 0.0, 0.0]])
    mask = t([[1, 1, 1, 0], [1, 0, 0, 0]]).bool()
    # valid [1, 2, 3, 5]: mean 2.75, unbiased var 8.75/3 = 2.91666...
    std = math.sqrt(8.75 / 3 + 1e-8)
    w = core.masked_whiten(x, mask)
    close(w, [[(1 - 2.75) / std, (2 - 2.75) / std, (3 - 2.75) / std, 0.0], [(5 - 2.75) / std, 0.0, 0.0, 0.0]])
    close(core.masked_mean(w, mask), 0.0)
    close(core.masked_var(w, mask), 1.0, rtol=0, atol=1e-8)  # var / (var + 1e-8)
    # shift_mean=False only rescales: the mean stays 2.75, variance 1, padding still 0
    w2 = core.masked_whiten(x, mask, shift_mean=False)
    close(core.masked_mean(w2, mask), 2.75)
    close(core.masked_var(w2, mask), 1.0, rtol=0, atol=1e-8)
    assert w2[0, 3] == 0 and (w2[1, 1:] == 0).all()


def test_explained_variance():
    # pred [1, 2, 3], target [1, 2, 4]: residual [0, 0, 1] has (biased) var 2/9; target var 14/9
    # EV = 1 - (2/9)/(14/9) = 6/7. The padded position (garbage) is ignored.
    pred, target = t([[1.0, 2.0, 3.0, 9.0]]), t([[1.0, 2.0, 4.0, -9.0]])
    mask = t([[1, 1, 1, 0]]).bool()
    close(core.explained_variance(pred, target, mask), 6 / 7)
    close(core.explained_variance(target, target, mask), 1.0)
    assert torch.isnan(core.explained_variance(pred, t([[2.0, 2.0, 2.0, 0.0]]), mask))


def test_aggregate_over_micro_batches_equals_full_batch_token_mean():
    # The OpenRLHF test idea: micro-batch losses summed with the *global* token count as normaliser
    # equal the token-mean of the full mini-batch, though the micro-batches hold 6 and 5 tokens.
    g = torch.Generator().manual_seed(0)
    logp, old, adv = (torch.randn(4, 5, generator=g, dtype=D) for _ in range(3))
    mask = t([[1, 1, 1, 1, 1], [1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0]]).bool()  # 11 tokens
    full, _ = core.policy_loss(logp, old, adv, mask)
    n = mask.sum()
    parts = [core.policy_loss(logp[i:i + 2], old[i:i + 2], adv[i:i + 2], mask[i:i + 2], num_tokens=n)[0]
             for i in (0, 2)]
    close(sum(parts), full)
    # the naive average of per-micro-batch means differs (6 and 5 tokens), which is the bug avoided
    naive = sum(core.policy_loss(logp[i:i + 2], old[i:i + 2], adv[i:i + 2], mask[i:i + 2])[0] for i in (0, 2)) / 2
    assert not torch.allclose(naive, full)
    vfull, _ = core.value_loss(logp, old, adv, mask)
    vparts = [core.value_loss(logp[i:i + 2], old[i:i + 2], adv[i:i + 2], mask[i:i + 2], num_tokens=n)[0]
              for i in (0, 2)]
    close(sum(vparts), vfull)


# ---------------------------------------------------------------------------------------------
# response positions


def test_last_valid_index():
    mask = t([[1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0], [0, 0, 0, 0]]).bool()
    # EOS at 2; truncated -> last token 3; length-1 -> 0; empty row -> 0 by definition
    assert core.last_valid_index(mask).tolist() == [2, 3, 0, 0]
    assert core.last_valid_index(mask).dtype == torch.long


def test_response_mask_from_ids():
    eos, stop = 2, 9
    ids = torch.tensor([[5, 6, eos, 7, eos], [5, 6, 7, 8, 3], [eos, 0, 0, 0, 0], [5, stop, 2, 0, 0]])
    mask, has_stop = core.response_mask_from_ids(ids, eos)
    assert mask.int().tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0], [1, 1, 1, 0, 0]]
    assert has_stop.tolist() == [True, False, True, True]
    # a configured stop token other than EOS (TRL #3750): row 3 stops at index 1
    mask, has_stop = core.response_mask_from_ids(ids, [stop])
    assert mask[3].int().tolist() == [1, 1, 0, 0, 0] and has_stop.tolist() == [False, False, False, True]
    assert core.last_valid_index(core.response_mask_from_ids(ids, eos)[0]).tolist() == [2, 4, 0, 2]


# ---------------------------------------------------------------------------------------------
# KL and reward


def test_kl_estimators_hand_values():
    logp, ref = t([-1.0, -2.0, -0.3]), t([-1.5, -1.0, -0.3])
    # d = logp - ref = [0.5, -1.0, 0]
    close(core.kl_estimate(logp, ref, "k1"), [0.5, -1.0, 0.0])
    # k2 = d^2 / 2 = [0.125, 0.5, 0]
    close(core.kl_estimate(logp, ref, "k2"), [0.125, 0.5, 0.0])
    # k3 = e^{-d} - 1 + d: e^{-0.5} - 0.5 = 0.60653066 - 0.5 = 0.10653066; e^{1} - 2 = 0.71828183; 0
    close(core.kl_estimate(logp, ref, "k3"), [math.exp(-0.5) - 0.5, math.e - 2.0, 0.0])
    close(core.kl_estimate(logp, ref, "k3")[:2], [0.1065306597, 0.7182818285], rtol=0, atol=1e-10)
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(100, generator=g, dtype=D), torch.randn(100, generator=g, dtype=D)
    assert (core.kl_estimate(a, b, "k3") >= 0).all() and (core.kl_estimate(a, b, "k2") >= 0).all()
    for kind in ("k1", "k2", "k3"):
        close(core.kl_estimate(a, a, kind), torch.zeros(100, dtype=D))
    with pytest.raises(ValueError):
        core.kl_estimate(a, b, "k4")


def test_shape_rewards_score_on_eos_truncation_and_length_one():
    # row 0 ends with EOS at index 2; row 1 is truncated (no EOS) -> last token 3; row 2 is EOS only.
    mask = t([[1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0]]).bool()
    logp = t([[-1.0, -2.0, -0.5, 1.0], [-1.0, -1.0, -1.0, -1.0], [-0.2, 1.0, 1.0, 1.0]])  # 1.0 = TRL's pad sentinel
    ref = t([[-1.5, -1.0, -0.5, -9.0], [-1.0, -2.0, -0.5, -1.25], [-0.7, -9.0, -9.0, -9.0]])
    score = t([2.0, 3.0, -1.0])
    beta = 0.1
    rewards, kl = core.shape_rewards(score, logp, ref, mask, kl_coef=beta)
    # k1 = logp - ref on valid tokens: row0 [0.5, -1, 0, .], row1 [0, 1, -0.5, 0.25], row2 [0.5, ., ., .]
    close(kl, [[0.5, -1.0, 0.0, 0.0], [0.0, 1.0, -0.5, 0.25], [0.5, 0.0, 0.0, 0.0]])
    # r = -0.1 * kl, plus the score ON the last valid token (EOS index 2 for row 0, NOT index 3)
    close(rewards, [[-0.05, 0.1, 0.0 + 2.0, 0.0],
                    [0.0, -0.1, 0.05, -0.025 + 3.0],
                    [-0.05 - 1.0, 0.0, 0.0, 0.0]])
    assert (rewards[~mask] == 0).all() and (kl[~mask] == 0).all()
    # sum_t r_t = score - beta * sum_t m_t kl_t
    close(rewards.sum(1), score - beta * kl.sum(1))
    # other estimators go through the same placement
    rewards3, kl3 = core.shape_rewards(score, logp, ref, mask, kl_coef=beta, kl_kind="k3")
    close(kl3[0, :3], [math.exp(-0.5) - 0.5, math.e - 2.0, 0.0])
    close(rewards3[0, 2], 2.0)
    with pytest.raises(ValueError):  # a response with no valid token has nowhere to put its score
        core.shape_rewards(score, logp, ref, t([[1, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0]]).bool(), 0.1)


def test_apply_missing_eos_penalty():
    score, has_eos = t([0.5, 2.0, -3.0]), torch.tensor([True, False, False])
    # subtract (TRL): [0.5, 2 - 1, -3 - 1]; replace (N+): [0.5, -1, -1]
    close(core.apply_missing_eos_penalty(score, has_eos, 1.0), [0.5, 1.0, -4.0])
    close(core.apply_missing_eos_penalty(score, has_eos, 1.0, mode="replace"), [0.5, -1.0, -1.0])
    with pytest.raises(ValueError):
        core.apply_missing_eos_penalty(score, has_eos, 1.0, mode="add")


# ---------------------------------------------------------------------------------------------
# GAE


def _gae_loop(rewards, values, lengths, gamma, lam):
    """One sequence at a time, straight from the definition."""
    adv = torch.zeros_like(rewards)
    for b, n in enumerate(lengths):
        running = 0.0
        for s in reversed(range(n)):
            next_v = values[b, s + 1] if s + 1 < n else 0.0
            delta = rewards[b, s] + gamma * next_v - values[b, s]
            running = delta + gamma * lam * running
            adv[b, s] = running
    return adv


def test_gae_hand_computed_with_a_padded_row():
    mask = t([[1, 1, 1, 0], [1, 1, 0, 0]]).bool()
    rewards = t([[0.1, -0.2, 1.0, 9.0], [0.5, 2.0, 9.0, 9.0]])  # 9.0 at padding must be ignored
    values = t([[0.5, 0.4, 0.8, 7.0], [1.0, 0.5, 7.0, 7.0]])
    adv, ret = core.gae(rewards, values, mask, gamma=1.0, lam=0.95)
    # row 0 (3 tokens, V after the last one = 0):
    #   d2 = 1.0 + 0   - 0.8 = 0.2    A2 = 0.2
    #   d1 = -0.2 + 0.8 - 0.4 = 0.2   A1 = 0.2 + 0.95 * 0.2  = 0.39
    #   d0 = 0.1 + 0.4 - 0.5 = 0.0    A0 = 0.0 + 0.95 * 0.39 = 0.3705
    #   R = A + V = [0.8705, 0.79, 1.0]
    # row 1 (2 tokens):
    #   d1 = 2.0 + 0 - 0.5 = 1.5      A1 = 1.5
    #   d0 = 0.5 + 0.5 - 1.0 = 0.0    A0 = 0.95 * 1.5 = 1.425
    #   R = [2.425, 2.0]
    close(adv, [[0.3705, 0.39, 0.2, 0.0], [1.425, 1.5, 0.0, 0.0]])
    close(ret, [[0.8705, 0.79, 1.0, 0.0], [2.425, 2.0, 0.0, 0.0]])
    # truncation bootstrap for row 1 with V(s_T) = 3: d1 = 2 + 3 - 0.5 = 4.5, A0 = 0.95 * 4.5 = 4.275
    adv_b, ret_b = core.gae(rewards, values, mask, 1.0, 0.95, final_values=t([0.0, 3.0]))
    close(adv_b, [[0.3705, 0.39, 0.2, 0.0], [4.275, 4.5, 0.0, 0.0]])
    close(ret_b[1], [5.275, 5.0, 0.0, 0.0])


def test_gae_special_cases_and_naive_loop():
    g = torch.Generator().manual_seed(0)
    rewards, values = torch.randn(5, 7, generator=g, dtype=D), torch.randn(5, 7, generator=g, dtype=D)
    lengths = [7, 4, 1, 6, 2]
    mask = torch.arange(7)[None, :] < torch.tensor(lengths)[:, None]
    for gamma, lam in [(1.0, 0.95), (0.9, 0.8), (1.0, 1.0), (1.0, 0.0)]:
        adv, ret = core.gae(rewards, values, mask, gamma, lam)
        close(adv, _gae_loop(rewards, values, lengths, gamma, lam))
        close(ret, torch.where(mask, adv + values, 0.0))
        assert (adv[~mask] == 0).all() and (ret[~mask] == 0).all()
    r, v = rewards * mask, values * mask
    # lambda = gamma = 1: A_t = sum_{u >= t} r_u - V_t (Monte-Carlo return minus the baseline)
    adv, _ = core.gae(rewards, values, mask, 1.0, 1.0)
    close(adv, torch.where(mask, r.flip(1).cumsum(1).flip(1) - v, 0.0))
    # lambda = 0: the TD residual r_t + V_{t+1} m_{t+1} - V_t
    adv, _ = core.gae(rewards, values, mask, 1.0, 0.0)
    next_v = torch.cat([v[:, 1:], torch.zeros(5, 1, dtype=D)], 1)
    close(adv, torch.where(mask, r + next_v - v, 0.0))
    with pytest.raises(ValueError):  # a hole in the mask is not a right-padded response
        core.gae(rewards[:1, :3], values[:1, :3], t([[1, 0, 1]]).bool())


# ---------------------------------------------------------------------------------------------
# policy loss


def test_policy_loss_clipped_cases_hand_computed():
    # ratios 0.5, 1.5, 1 against A = +1 and -1, eps = 0.2; the last column of each row is padding
    # holding an inf log-prob that must neither reach the loss nor the gradient.
    ratio = t([[0.5, 0.5, 1.5, 1.0], [1.5, 1.0, 1.0, 1.0]])
    adv = t([[1.0, -1.0, 1.0, 5.0], [-1.0, 1.0, -1.0, 5.0]])
    mask = t([[1, 1, 1, 0], [1, 1, 1, 0]]).bool()
    old = t([[-1.0, -2.0, -0.5, 0.0], [-3.0, -1.0, -0.25, 0.0]])
    logp = (ratio.log() + old).clone()
    logp[:, 3] = float("inf")
    logp.requires_grad_(True)
    loss, stats = core.policy_loss(logp, old, adv, mask, clip_range=0.2)
    # per token max(-A rho, -A clip(rho, 0.8, 1.2)):
    #   rho 0.5, A +1: max(-0.5, -0.8) = -0.5  unclipped
    #   rho 0.5, A -1: max( 0.5,  0.8) =  0.8  CLIPPED
    #   rho 1.5, A +1: max(-1.5, -1.2) = -1.2  CLIPPED
    #   rho 1.5, A -1: max( 1.5,  1.2) =  1.5  unclipped
    #   rho 1,   A +1: -1;   rho 1, A -1: +1
    # mean = (-0.5 + 0.8 - 1.2 + 1.5 - 1 + 1) / 6 = 0.6 / 6 = 0.1
    close(loss, 0.1)
    close(stats["clipfrac"], 2 / 6)
    # approx_kl = mean((rho - 1) - log rho): (ln 2 - 0.5) = 0.1931472, (0.5 - ln 1.5) = 0.0945349, 0 twice each
    close(stats["approx_kl"], 2 * ((math.log(2) - 0.5) + (0.5 - math.log(1.5))) / 6)
    close(stats["approx_kl_k2"], 0.5 * 2 * (math.log(0.5) ** 2 + math.log(1.5) ** 2) / 6)
    close(stats["ratio_mean"], (0.5 + 0.5 + 1.5 + 1.5 + 1 + 1) / 6)
    loss.backward()
    # d/d logp of -A rho is -A rho (unclipped); 0 where the clip is active; 0 at padding; over 6 tokens
    close(logp.grad, [[-0.5 / 6, 0.0, 0.0, 0.0], [1.5 / 6, -1.0 / 6, 1.0 / 6, 0.0]])


def test_policy_loss_ratio_one_gives_minus_mean_advantage():
    # pi == pi_old (first mini-batch of an update): rho is exactly 1, L = -mean(A), stats are 0
    g = torch.Generator().manual_seed(0)
    logp = torch.randn(3, 5, generator=g)  # fp32: exp(0) == 1 exactly in any precision
    adv = torch.randn(3, 5, generator=g)
    mask = t([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]]).bool()
    loss, stats = core.policy_loss(logp, logp.clone(), adv, mask)
    torch.testing.assert_close(loss, -adv[mask].mean(), rtol=0, atol=1e-7)
    assert stats["clipfrac"] == 0 and stats["approx_kl"] == 0 and stats["approx_kl_k2"] == 0
    assert stats["ratio_mean"] == 1
    # half-precision inputs are computed in fp32
    loss16, _ = core.policy_loss(logp.bfloat16(), logp.bfloat16(), adv.bfloat16(), mask)
    assert loss16.dtype == torch.float32


# ---------------------------------------------------------------------------------------------
# value loss


def test_value_loss_hand_computed():
    # eps_v = 0.2; the 5th column is padding
    values = t([[1.0, 0.0, 0.6, -1.0, 50.0]]).requires_grad_(True)
    old = t([[0.5, 0.5, 0.5, 0.0, 0.0]])
    ret = t([[1.0, 1.0, 0.0, -0.5, 0.0]])
    mask = t([[1, 1, 1, 1, 0]]).bool()
    loss, stats = core.value_loss(values, old, ret, mask, clip_range_value=0.2)
    # V    oldV  R     V_clip   (V-R)^2  (V_clip-R)^2   max
    # 1.0  0.5   1.0   0.7      0        0.09           0.09  CLIPPED branch
    # 0.0  0.5   1.0   0.3      1        0.49           1     unclipped
    # 0.6  0.5   0.0   0.6      0.36     0.36           0.36  inside the range (not counted)
    # -1   0.0   -0.5  -0.2     0.25     0.09           0.25  unclipped
    # L = 0.5 * (0.09 + 1 + 0.36 + 0.25) / 4 = 0.5 * 1.7 / 4 = 0.2125
    close(loss, 0.2125)
    close(stats["vf_clipfrac"], 0.25)
    loss.backward()
    # dL/dV = 0.5 * 2 (V - R) / 4 = (V - R) / 4 where unclipped; 0 where clipped and at padding
    close(values.grad, [[0.0, -0.25, 0.15, -0.125, 0.0]])
    # without clipping: 0.5 * (0 + 1 + 0.36 + 0.25) / 4 = 0.20125
    loss_u, stats_u = core.value_loss(values, old, ret, mask, clip_range_value=None)
    close(loss_u, 0.20125)
    assert stats_u["vf_clipfrac"] == 0
    # explained variance of V vs R over the 4 valid tokens
    close(stats["explained_variance"], core.explained_variance(values, ret, mask))
    close(stats["value_mean"], (1.0 + 0.0 + 0.6 - 1.0) / 4)


# ---------------------------------------------------------------------------------------------
# from logits


def test_logprobs_from_logits_with_temperature():
    logits = t([[[2.0, 0.0, -2.0], [0.0, 0.0, 0.0]]])  # (B=1, T=2, V=3)
    ids = torch.tensor([[0, 2]])
    # T = 2: z = [1, 0, -1]; logsumexp = ln(e + 1 + 1/e) = ln 4.0861613 = 1.4076059645
    # log p(0) = 1 - 1.4076059645 = -0.4076059645; uniform row: log p = -ln 3 = -1.0986122887
    lse = math.log(math.e + 1 + math.exp(-1))
    out = core.logprobs_from_logits(logits, ids, temperature=2.0)
    close(out, [[1 - lse, -math.log(3)]])
    close(out, [[-0.4076059645, -1.0986122887]], rtol=0, atol=1e-10)
    # T = 1: log p(0) = 2 - ln(e^2 + 1 + e^-2)
    close(core.logprobs_from_logits(logits, ids)[0, 0], 2 - math.log(math.exp(2) + 1 + math.exp(-2)))
    # bf16 logits come back as fp32 and equal log_softmax computed in fp32
    lg = torch.randn(2, 3, 11).bfloat16()
    ids = torch.randint(0, 11, (2, 3))
    out = core.logprobs_from_logits(lg, ids, temperature=0.7)
    assert out.dtype == torch.float32
    ref = torch.log_softmax(lg.float() / 0.7, -1).gather(-1, ids[..., None])[..., 0]
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)


def test_entropy_from_logits_masked_and_tempered():
    # position 0: uniform over V = 4 -> ln 4; position 1: logits [4, 0, 0, 0] at T = 2 -> z = [2, 0, 0, 0]
    #   lse = ln(e^2 + 3) = 2.3326...; H = lse - (2 e^2) / (e^2 + 3); position 2 is padding with nan
    logits = t([[[0.0, 0.0, 0.0, 0.0], [4.0, 0.0, 0.0, 0.0], [float("nan")] * 4]])
    mask = t([[1, 1, 0]]).bool()
    e2 = math.exp(2)
    h1 = math.log(e2 + 3) - 2 * e2 / (e2 + 3)
    close(core.entropy_from_logits(logits, mask, temperature=2.0), (math.log(4) + h1) / 2)
    close(core.entropy_from_logits(logits[:, :1], mask[:, :1]), math.log(4))


# ---------------------------------------------------------------------------------------------
# KL controllers


def test_adaptive_kl_controller_two_updates_and_state_dict():
    ctl = AdaptiveKLController(init_coef=0.2, target=6.0, horizon=10_000)
    # update 1: KL 9 -> e = clip(9/6 - 1 = 0.5, -0.2, 0.2) = 0.2; beta = 0.2 * (1 + 0.2 * 512/10000) = 0.202048
    assert ctl.update(torch.tensor(9.0), n_steps=512) == pytest.approx(0.202048, abs=1e-15)
    # update 2: KL 5.4 -> e = 5.4/6 - 1 = -0.1 (inside the clip); beta = 0.202048 * (1 - 0.1 * 0.0512)
    #          = 0.202048 * 0.99488 = 0.20101351424
    ctl.update(5.4, n_steps=512)
    assert ctl.value == pytest.approx(0.20101351424, abs=1e-14)
    state = ctl.state_dict()
    other = AdaptiveKLController(init_coef=1.0, target=1.0, horizon=1)
    other.load_state_dict(state)
    assert (other.value, other.target, other.horizon) == (ctl.value, 6.0, 10_000)
    # the lower clip: KL 0 -> e = -0.2; beta *= 1 - 0.2 * 100/10000 = 0.998
    before = other.value
    other.update(0.0, n_steps=100)
    assert other.value == pytest.approx(before * 0.998, abs=1e-15)
    with pytest.raises(ValueError):
        FixedKLController(0.1).load_state_dict(state)


def test_fixed_kl_controller_and_factory():
    ctl = make_kl_controller("fixed", coef=0.05)
    assert isinstance(ctl, FixedKLController)
    ctl.update(100.0, n_steps=512)
    assert ctl.value == 0.05
    ctl2 = FixedKLController(1.0)
    ctl2.load_state_dict(ctl.state_dict())
    assert ctl2.value == 0.05
    ada = make_kl_controller("adaptive", coef=0.15, target=6.0)
    assert isinstance(ada, AdaptiveKLController) and ada.horizon == 10_000 and ada.value == 0.15
    with pytest.raises(ConfigError):
        make_kl_controller("adaptive", coef=0.15)
    with pytest.raises(ConfigError):
        make_kl_controller("pid", coef=0.15)
    with pytest.raises(ConfigError):
        make_kl_controller("fixed", coef=-1.0)


def test_verifiable_rewards_on_the_instruction_tasks():
    from llmkit.rlhf.rewards import instruction_exact_match, instruction_similarity

    rows = [{"task": "sort", "answer": "25, 2, 0"}] * 4 + [{"task": "free"}]
    responses = ["25, 2, 0", "25, 0, 2", "banana", "", "anything"]
    assert instruction_exact_match(None, responses, rows) == [1.0, 0.0, 0.0, 0.0, 0.0]
    sim = instruction_similarity(None, responses, rows)
    assert sim[0] == 1.0 and sim[4] == 0.0  # exact answer; a row with nothing to check
    assert 0.5 >= sim[1] > sim[2] >= sim[3] == 0.0  # a near miss earns more than an unrelated answer, never full credit
