"""The KL coefficient beta of the per-token KL penalty in the PPO reward, fixed or adaptive.

    ctl = make_kl_controller("adaptive", coef=0.15, target=6.0, horizon=10_000)
    rewards, kl = shape_rewards(score, logp, ref_logp, mask, kl_coef=ctl.value)
    ctl.update(kl.sum(1).mean(), n_steps=batch_size)   # once per PPO update

Adaptive control is from Ziegler et al. 2019, "Fine-Tuning Language Models from Human Preferences",
https://arxiv.org/abs/1909.08593 (sec. 2.2; lm-human-preferences `AdaptiveKLController`):

    e_t     = clip(KL_t / KL_target - 1, -0.2, 0.2)
    beta   <- beta * (1 + e_t * n_steps / horizon)

KL_t is the mean over the rollout batch of the *per-sequence* KL (sum over response tokens), the
quantity the target is stated in (6 nats in lm-human-preferences and old TRL); n_steps is the number
of episodes in the batch. Defaults seen: lm-human-preferences init 0.15, target 6, horizon 10 000;
fixed beta 0.05 in N+, 0.01 OpenRLHF, 0.1 DeepSpeed-Chat, 0.02 InstructGPT (brief §2.4).

Controllers carry `state_dict()` / `load_state_dict()` so a resumed run continues with the same beta
(brief P19).
"""

from __future__ import annotations

import math

from llmkit.errors import ConfigError

__all__ = ["AdaptiveKLController", "FixedKLController", "make_kl_controller"]

KINDS = ("fixed", "adaptive")


def _check_coef(coef: float) -> float:
    coef = float(coef)
    if not math.isfinite(coef) or coef < 0:
        raise ConfigError(f"KL coefficient must be a finite number >= 0, got {coef}")
    return coef


class FixedKLController:
    """A constant beta; `update` does nothing."""

    kind = "fixed"

    def __init__(self, coef: float):
        self.value = _check_coef(coef)

    def update(self, current_kl: float, n_steps: int) -> float:
        return self.value

    def state_dict(self) -> dict:
        return {"kind": self.kind, "value": self.value}

    def load_state_dict(self, state: dict) -> None:
        _check_kind(state, self.kind)
        self.value = _check_coef(state["value"])

    def __repr__(self) -> str:
        return f"FixedKLController(coef={self.value})"


class AdaptiveKLController:
    """beta that moves toward the KL target, Ziegler et al. 2019 (formula in the module docstring)."""

    kind = "adaptive"

    def __init__(self, init_coef: float, target: float, horizon: float):
        self.value = _check_coef(init_coef)
        if not float(target) > 0:
            raise ConfigError(f"adaptive KL `target` must be > 0, got {target}")
        if not float(horizon) > 0:
            raise ConfigError(f"adaptive KL `horizon` must be > 0, got {horizon}")
        self.target = float(target)
        self.horizon = float(horizon)

    def update(self, current_kl: float, n_steps: int) -> float:
        """One update after a rollout batch of `n_steps` episodes with mean per-sequence KL `current_kl`.

        `current_kl` may be a float or a 0-d tensor. Returns the new beta.
        """
        proportional_error = min(max(float(current_kl) / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + proportional_error * n_steps / self.horizon
        return self.value

    def state_dict(self) -> dict:
        return {"kind": self.kind, "value": self.value, "target": self.target, "horizon": self.horizon}

    def load_state_dict(self, state: dict) -> None:
        _check_kind(state, self.kind)
        self.value = _check_coef(state["value"])
        self.target = float(state.get("target", self.target))
        self.horizon = float(state.get("horizon", self.horizon))

    def __repr__(self) -> str:
        return f"AdaptiveKLController(value={self.value}, target={self.target}, horizon={self.horizon})"


def _check_kind(state: dict, kind: str) -> None:
    if state.get("kind", kind) != kind:
        raise ValueError(f"KL controller state is for a {state['kind']!r} controller, not {kind!r}")


def make_kl_controller(kind: str, coef: float, target: float | None = None,
                       horizon: float = 10_000) -> FixedKLController | AdaptiveKLController:
    """"fixed" -> FixedKLController(coef); "adaptive" -> AdaptiveKLController(coef, target, horizon).

    `coef` is the (initial) beta. "adaptive" needs `target`; "fixed" ignores `target` and `horizon`.
    """
    if kind == "fixed":
        return FixedKLController(coef)
    if kind == "adaptive":
        if target is None:
            raise ConfigError("adaptive KL control needs a `target` KL (nats per sequence, e.g. 6.0)")
        return AdaptiveKLController(coef, target, horizon)
    raise ConfigError(f"KL controller kind must be one of {', '.join(KINDS)}; got {kind!r}")
