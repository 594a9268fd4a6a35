"""Programmatic rewards for PPO (`reward.function: module:function`), for verifiable tasks.

A reward function takes the prompts (message lists or strings), the decoded responses and the
data rows they came from, and returns one float per response:

    def my_reward(prompts: list, responses: list[str], rows: list[dict]) -> list[float]

`instruction_exact_match` scores the bundled instruction tasks with their own checker; the two
toy rewards give PPO tests a signal a tiny random model can learn in a few updates.
"""

from __future__ import annotations


def instruction_exact_match(prompts, responses, rows) -> list[float]:
    """1.0 when the response is the task's answer (llmkit's bundled instructions: `check`)."""
    from llmkit.data.bundled.make_instructions import check

    return [1.0 if "answer" in row and check(row, resp) else 0.0 for row, resp in zip(rows, responses)]


def instruction_similarity(prompts, responses, rows) -> list[float]:
    """Partial credit on the bundled instruction tasks: 1.0 for the answer, else the normalised
    character similarity (rapidfuzz Indel ratio) of response and answer, times 0.5. Denser than
    exact match: a near miss ("sevne" for "seven") earns more than an unrelated answer."""
    from rapidfuzz.fuzz import ratio

    from llmkit.data.bundled.make_instructions import check, normalize

    out = []
    for row, resp in zip(rows, responses):
        if "answer" not in row:
            out.append(0.0)
        elif check(row, resp):
            out.append(1.0)
        else:
            out.append(0.5 * ratio(normalize(resp), normalize(row["answer"])) / 100)
    return out


def vowel_share(prompts, responses, rows) -> list[float]:
    """Toy: share of the response's characters that are vowels (0 for an empty response)."""
    return [sum(c in "aeiou" for c in r.lower()) / len(r) if r else 0.0 for r in responses]


def short_answer(prompts, responses, rows) -> list[float]:
    """Toy: 1 for an empty response, falling linearly to 0 at 40 characters."""
    return [max(0.0, 1.0 - len(r) / 40) for r in responses]
