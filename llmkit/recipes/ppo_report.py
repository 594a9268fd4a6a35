"""report.md for a ppo run: reward and KL curves, the PPO diagnostics, before/after on held-out
prompts, and sample generations."""

from __future__ import annotations

from pathlib import Path

from llmkit.report import cell, md_table, plot_curves, save_report


def write_report(out: Path, cfg, metrics: dict, history: list[dict], before: list[dict], after: list[dict]) -> Path:
    from llmkit.recipes.ppo import TIME_SPLIT

    curves = plot_curves(history, ["reward_mean", "kl"], out / "reward_kl.png", title="PPO: reward and KL per update")
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
        lines += ["## Diagnostics", "", "Healthy: clipfrac and approx_kl small (< 0.2, < 0.05), entropy falling slowly, "
                  "value loss falling.", "", "![PPO diagnostics](ppo_diagnostics.png)", ""]
    if after:
        pairs = list(zip(before or [None] * len(after), after))[:8]
        lines += ["## Held-out answers (greedy)", "",
                  md_table(["prompt", "before PPO", "score", "after PPO", "score"],
                           [[cell(a["prompt"]), cell(b["answer"]) if b else "", b["score"] if b else None,
                             cell(a["answer"]), a["score"]] for b, a in pairs]), ""]
    return save_report(out, lines)
