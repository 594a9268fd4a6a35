"""Alignment, InstructGPT steps 2 and 3: a reward model from rankings, then PPO against it.

    core.py          PPO's equations as pure tensor functions (masked statistics, KL estimators,
                     reward shaping, GAE, clipped losses); unit-tested against hand values
    kl_control.py    fixed and adaptive KL coefficients
    reward_data.py   pairwise and ranked preferences; build_sequence, shared with PPO's scoring
    reward_model.py  load a reward model, score sequences, calibrate
    rollout.py       sampling and the one log-prob function PPO uses everywhere
    models.py        policy / reference / value model construction (memory modes)
    rewards.py       Python reward functions for verifiable tasks

The recipes are llmkit/recipes/reward.py and llmkit/recipes/ppo.py.
"""
