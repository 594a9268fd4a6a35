"""report.md for a ppo run: reward and KL curves, the PPO diagnostics, before/after on held-out
prompts, and sample generations."""

from __future__ import annotations

from pathlib import Path

from llmkit.report import cell, image, md_table, num, pct, plot_curves, read_json, save_report


def write_report(out: Path, cfg, metrics: dict, history: list[dict], before: list[dict], after: list[dict]) -> Path:
    from llmkit.recipes.ppo import TIME_SPLIT

    curves = plot_curves(history, [("reward_mean", "eval_reward"), "eval_exact_match", "kl"], out / "reward_kl.png",
                         title="PPO: reward (rollouts, and held out every train.eval_every) and KL per update")
    diag = plot_curves(history, ["policy_loss", "value_loss", "entropy", "clipfrac", "approx_kl", "response_length"],
                       out / "ppo_diagnostics.png", title="PPO diagnostics")
    rows = [["mean reward (held out, greedy)", metrics.get("before_eval_reward"), metrics.get("eval_reward")]]
    if "eval_exact_match" in metrics:
        rows.append(["exact match (held out)", metrics.get("before_eval_exact_match"), metrics.get("eval_exact_match")])
    p = cfg.ppo
    lines = [
        f"# ppo: {cfg.method.name} policy from {cfg.model.name}", "",
        f"Reward: `{metrics['reward']}`. {metrics['updates']} updates of {p.rollout_batch_size} rollouts, {p.ppo_epochs} epochs "
        f"of minibatches of {p.mini_batch_size} ({metrics['optimizer_steps_per_update']} optimizer steps per update), "
        f"temperature {p.temperature}, KL coefficient {p.kl_coef}{' (adaptive)' if p.adaptive_kl else ''}.", "",
        md_table(["", "SFT model (before PPO)", "after PPO"], rows), "",
        md_table(["figure", "value"], [
            ["rollout reward, first fifth of updates -> last fifth", f"{metrics['reward_mean_first']:.4f} -> {metrics['reward_mean_last']:.4f}"],
            ["KL to the reference per response (last fifth, max)", f"{metrics['kl_last']:.4f}, {metrics['kl_max']:.4f}"],
            ["trainable parameters", f"{metrics['trainable_params']:,} of {metrics['total_params']:,}"],
            ["training time (s)", metrics["train_seconds"]],
            ["time per update (s): generation / scoring / no-grad forwards / PPO epochs",
             " / ".join(f"{metrics[k]:.2f}" for k in TIME_SPLIT)],
            [f"peak memory (MB, {metrics['peak_memory_kind']})", metrics["peak_memory_mb"]],
        ]), "",
    ]
    if curves:
        lines += ["## Reward and KL", "", "![reward and KL per update](reward_kl.png)", ""]
    if diag:
        lines += ["## Diagnostics", "", "Each check on this run's history (first and last fifth of the updates; the usual "
                  "rules of thumb for PPO on language models):", "",
                  md_table(["check", "rule", "measured", "holds"], diagnostics(history)), "",
                  "![PPO diagnostics](ppo_diagnostics.png)", ""]
    if after:
        pairs = list(zip(before or [None] * len(after), after))[:8]
        lines += ["## Held-out answers (greedy)", "",
                  md_table(["prompt", "before PPO", "score", "after PPO", "score"],
                           [[cell(a["prompt"]), cell(b["answer"]) if b else "", b["score"] if b else None,
                             cell(a["answer"]), a["score"]] for b, a in pairs]), ""]
    return save_report(out, lines)


def _fifths(history: list[dict], key: str) -> tuple[float, float] | None:
    values = [r[key] for r in history if isinstance(r.get(key), (int, float))]
    if not values:
        return None
    k = max(1, len(values) // 5)
    return sum(values[:k]) / k, sum(values[-k:]) / k


def diagnostics(history: list[dict]) -> list[list[str]]:
    """[check, rule, measured, holds] rows computed from the run's history: the clipped fraction and the
    approximate KL of the last fifth small, the entropy not collapsing, the value loss falling."""
    rows = []
    for key, limit in (("clipfrac", 0.2), ("approx_kl", 0.05)):
        f = _fifths(history, key)
        if f:
            rows.append([f"{key}, last fifth", f"< {limit}", f"{f[1]:.4f}", "yes" if f[1] < limit else "no"])
    f = _fifths(history, "entropy")
    if f:
        rows.append(["entropy, first -> last fifth", "falls by less than half", f"{f[0]:.3f} -> {f[1]:.3f}",
                     "yes" if f[1] > 0.5 * f[0] else "no"])
    f = _fifths(history, "value_loss")
    if f and len(history) >= 2:
        rows.append(["value loss, first -> last fifth", "falls", f"{f[0]:.4f} -> {f[1]:.4f}", "yes" if f[1] < f[0] else "no"])
    return rows


# ----------------------------------------------------------------------------- in a pipeline's report


def summary_line(m: dict) -> str:
    line = (f"rollout reward {num(m.get('reward_mean_first'))} -> {num(m.get('reward_mean_last'))}, "
            f"KL max {num(m.get('kl_max'), 2)}")
    if m.get("eval_reward") is not None:
        line += f"; held-out reward {num(m.get('before_eval_reward'))} -> {num(m.get('eval_reward'))}"
    return line


def pipeline_section(stages: list, pipeline, root: Path) -> tuple[str, list[str]]:
    (stage,) = stages
    m = read_json(stage.out / "metrics.json")
    rows = [["mean rollout reward (first / last fifth of updates)", num(m.get("reward_mean_first")), num(m.get("reward_mean_last"))],
            ["held-out greedy reward", num(m.get("before_eval_reward")), num(m.get("eval_reward"))],
            ["held-out exact match", pct(m.get("before_eval_exact_match")), pct(m.get("eval_exact_match"))],
            ["KL to the SFT model (last fifth; max)", "", f"{num(m.get('kl_last'))}; {num(m.get('kl_max'))}"]]
    rows = [r for r in rows if r[2] != "n/a"]  # held-out figures are left to the evaluation stages when eval.num_prompts=0
    intro = f"PPO from `{m.get('policy_start')}` against `{m.get('reward')}`: {m.get('updates')} updates, {m.get('train_seconds', 0):.0f} s."
    lines = [intro, "", md_table(["", "SFT model (start)", "after PPO"], rows), ""]
    return "PPO", lines + image(stage.out / "reward_kl.png", root, "PPO reward and KL")


def headline(stages: list, pipeline) -> list[list[str]]:
    rows = []
    for s in stages:
        m = read_json(s.out / "metrics.json")
        # (the rollout reward's first/last-fifth comparison stays in the PPO section: with few updates it mostly
        # says which tasks each batch drew; the held-out comparison is the evaluation's)
        rows.append([s.title, "KL to the SFT model per response, nats (last fifth; max)", "",
                     f"{num(m.get('kl_last'))}; {num(m.get('kl_max'))}"])
        if m.get("eval_reward") is not None:
            rows.append([s.title, "held-out greedy reward, SFT -> PPO", num(m.get("before_eval_reward")), num(m.get("eval_reward"))])
    return rows
