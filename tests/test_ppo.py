"""PPO (llmkit/recipes/ppo.py) on tiny models, CPU: the rollout/log-prob plumbing (ratio 1 on the
first minibatch, padding side), frozen reference, optimizer steps per update, reward rising with
a programmatic reward for 3 seeds and held in place by a very large KL coefficient (resume after a
kill: tests/test_kill_resume.py)."""

import json

import pytest
import torch

from llmkit.config import build
from llmkit.methods import get_method
from llmkit.recipes.ppo import PPOConfig, run


def config(out, method="full", fn="llmkit.rlhf.rewards:short_answer", **over):
    raw = {"kind": "ppo", "model": {"name": "tiny-llama"}, "method": {"name": method},
           "reward": {"model": None, "function": fn, "missing_eos_penalty": None},
           "ppo": {"rollout_batch_size": 16, "mini_batch_size": 8, "ppo_epochs": 2, "max_new_tokens": 8, "temperature": 1.0},
           "train": {"learning_rate": 1e-2, "num_updates": 40, "seed": 0, "save_every": 0, "sample_every": 0},
           "eval": {"num_prompts": 8, "max_new_tokens": 8},
           "output": {"dir": str(out), "overwrite": True}}
    for key, value in over.items():
        section, name = key.split("__")
        raw[section][name] = value
    return build(PPOConfig, raw, section_types={"method": get_method(method).config_cls})


def history(out):
    return [json.loads(x) for x in (out / "history.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reward_rises_with_a_programmatic_reward(seed, tmp_path):
    """short_answer pays for ending early; a random tiny model must learn to emit EOS sooner."""
    m = run(config(tmp_path / "ppo", train__seed=seed), tmp_path / "ppo")
    assert m["reward_mean_last"] > m["reward_mean_first"] + 0.2, m
    assert m["eval_reward"] > m["before_eval_reward"], m
    h = history(tmp_path / "ppo")
    assert all(r["first_ratio"] == pytest.approx(1.0, abs=1e-6) for r in h)  # old log-probs = first step's
    assert all(r["optimizer_steps"] == 2 * 16 // 8 for r in h)
    assert m["optimizer_steps_per_update"] == 4


def test_a_very_large_kl_coefficient_keeps_the_policy_in_place(tmp_path):
    m = run(config(tmp_path / "ppo", ppo__kl_coef=10.0), tmp_path / "ppo")
    assert abs(m["reward_mean_last"] - m["reward_mean_first"]) < 0.1, m
    assert m["kl_last"] < 1.0, m


@pytest.mark.parametrize("method", ["full", "lora", "last_layers"])
def test_reference_never_changes_and_lora_trains_only_the_adapter(method, tmp_path):
    """The reference is chosen by what the policy can do: an adapter that can be disabled (lora), else a
    frozen second copy (full, last_layers: a method PPO never named)."""
    from llmkit.recipes import ppo as P
    from llmkit.rlhf.models import load_policy

    cfg = config(tmp_path / "p", method=method, train__num_updates=2)
    policy, tok, reference = load_policy(cfg.model, method, cfg.method)
    with reference() as ref:
        assert (ref is policy) == (method == "lora")
    with reference() as ref:
        before = {n: p.detach().clone() for n, p in ref.named_parameters()}
    frozen = {n: p.detach().clone() for n, p in policy.named_parameters() if not p.requires_grad}
    real_loader = P.load_policy if hasattr(P, "load_policy") else None
    del real_loader
    import llmkit.rlhf.models as M

    orig = M.load_policy
    M.load_policy = lambda *a, **k: (policy, tok, reference)
    try:
        run(cfg, tmp_path / "p")
    finally:
        M.load_policy = orig
    with reference() as ref:
        for n, p in ref.named_parameters():
            if method != "lora" or "lora_" not in n:
                assert torch.equal(before[n], p), n
    for n, p in policy.named_parameters():
        if n in frozen:
            assert torch.equal(frozen[n], p), n
    if method == "lora":
        assert all("lora_" in n for n, p in policy.named_parameters() if p.requires_grad)


def test_the_policy_loads_as_model_dtype_says_and_a_method_that_trains_nothing_is_refused(tmp_path):
    from llmkit.errors import ConfigError
    from llmkit.rlhf.models import load_policy

    cfg = config(tmp_path / "p", method="lora", model__dtype="bfloat16")
    policy, _, reference = load_policy(cfg.model, "lora", cfg.method)
    assert {p.dtype for p in policy.parameters() if not p.requires_grad} == {torch.bfloat16}
    cfg = config(tmp_path / "p", method="feature_based")
    with pytest.raises(ConfigError, match="method feature_based leaves no parameter of the policy trainable"):
        load_policy(cfg.model, "feature_based", cfg.method)


def test_padding_side_does_not_change_log_probs():
    from llmkit.models.trained import load_causal
    from llmkit.rlhf.reward_model import pad_batch
    from llmkit.rlhf.rollout import Rollout, forward_logprobs, response_mask

    model, tok = load_causal("tiny-llama")
    queries = [[5, 6, 7, 8, 9], [10, 11]]
    resp = torch.tensor([[20, 21, 3, 0], [22, 23, 24, 25]])
    mask, eos = response_mask(resp, 3)
    q, qm = pad_batch(queries, tok.pad_token_id, side="left")
    a = forward_logprobs(model, Rollout(q, qm, resp, mask, eos), 0.7)
    # The same queries with three more columns of left padding.
    q2 = torch.cat([torch.zeros(2, 3, dtype=torch.long), q], 1)
    qm2 = torch.cat([torch.zeros(2, 3, dtype=torch.long), qm], 1)
    b = forward_logprobs(model, Rollout(q2, qm2, resp, mask, eos), 0.7)
    assert torch.allclose(a, b, atol=1e-5)
    assert (a[0, 3] == 0) and (a[0, :3] != 0).all()  # nothing after EOS


def test_the_report_checks_the_diagnostics_on_the_run_instead_of_printing_a_fixed_line():
    from llmkit.recipes.ppo_report import diagnostics

    # 10 updates: fifths are the first 2 and the last 2
    h = [{"clipfrac": c, "approx_kl": k, "entropy": e, "value_loss": v}
         for c, k, e, v in zip([0.5, 0.5] + [0.3] * 6 + [0.1, 0.1], [0.01] * 8 + [0.2, 0.3],
                               [2.0, 2.0] + [1.0] * 6 + [0.6, 0.4], [1.0, 0.8] + [0.5] * 6 + [0.3, 0.1])]
    rows = {r[0]: r for r in diagnostics(h)}
    assert rows["clipfrac, last fifth"][2:] == ["0.1000", "yes"]
    assert rows["approx_kl, last fifth"][2:] == ["0.2500", "no"]
    assert rows["entropy, first -> last fifth"][2:] == ["2.000 -> 0.500", "no"]  # halved: not "more than half"
    assert rows["value loss, first -> last fifth"][2:] == ["0.9000 -> 0.2000", "yes"]


def test_held_out_scores_every_eval_every_leave_training_as_it_was(tmp_path):
    """train.eval_every adds greedy held-out scores to the history without drawing from the random stream
    the rollouts use: the updates are the same as a run without it."""
    plain = run(config(tmp_path / "a", train__num_updates=6), tmp_path / "a")
    watched = run(config(tmp_path / "b", train__num_updates=6, train__eval_every=2), tmp_path / "b")
    a, b = history(tmp_path / "a"), history(tmp_path / "b")
    assert [r["step"] for r in b if "eval_reward" in r] == [2, 4]  # the final scores are metrics.json's eval_reward
    strip = lambda rows: [{k: v for k, v in r.items() if not k.startswith("eval_") and "seconds" not in k} for r in rows]  # noqa: E731
    assert strip(a) == strip(b)
    assert watched["eval_reward"] == pytest.approx(plain["eval_reward"])
    with pytest.raises(Exception, match="train.eval_every needs held-out prompts"):
        config(tmp_path / "c", train__eval_every=2, eval__num_prompts=0)
