"""Generator for llmkit's bundled ``preferences`` set: ranked responses to checkable instructions.

Each record is one user prompt of the bundled instruction families (``make_instructions.py``) and
four assistant responses ranked best to worst, the format the ``reward`` recipe reads::

    {"prompt": [{"role": "user", "content": "What is 12 + 30?"}],
     "responses": ["42", "43", "The answer is 42.", "I don't know."],
     "task": "add", "answer": "42"}

The four ranks, each decided by construction (no model and no human judged anything):

1. **correct**: the instruction's one answer; ``make_instructions.check`` accepts it.
2. **near miss**: a wrong answer of the right kind and format: a sum or a count off by one, the
   other number of a comparison, two numbers swapped in a sort, a misspelt or unreversed word, the
   number next to the one asked for in words, one repetition too many or too few, the wrong word
   of the antonym list, a wrong plural ending, a JSON object with one value changed.
3. **badly formatted**: the right content in a form ``check`` rejects: wrapped in chatter
   (``The answer is 42.``), quoted, or with extra punctuation or a changed case.
4. **irrelevant**: empty, a refusal, a greeting or an unrelated sentence.

Generation is pure standard library and deterministic (``random.Random(SEED)`` is the only source
of randomness). The prompts are drawn with the instruction generator (``Gen``) under this file's own
seed, so most differ from the ``instructions`` prompts; none is an ``instructions`` *test* prompt
(those are skipped), so the PPO stage can be scored on that test split with a reward model that
never saw its prompts. A preference prompt may coincide with an ``instructions`` train prompt.
Prompts are unique across both splits here. Regenerate the shipped files with::

    python -m llmkit.data.bundled.make_preferences
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from llmkit.data.bundled import make_instructions as mi
from llmkit.data.bundled import to_jsonl, write_splits  # noqa: F401  (to_jsonl: the shipped serialisation, used by the tests)

SEED = 1  # the instruction generator's seed is 0: a different stream of prompts
N_TRAIN_PER_FAMILY = 167  # 2004 train prompts in total
N_TEST_PER_FAMILY = 17  # 204 test prompts in total
OUT_DIR = Path(__file__).resolve().parent / "preferences"
RANKS = ["correct", "near_miss", "badly_formatted", "irrelevant"]

LETTERS = "abcdefghijklmnopqrstuvwxyz"
CHATTER = ["The answer is {a}.", "Sure! {a}", "Answer: {a}", "{a}.", "I think it is {a}.", "Of course. Here it is: {a}",
           "{a}!!", '"{a}"', "Let me see... {a}", "{a} (I hope this helps)"]
IRRELEVANT = ["", "I don't know.", "Hmm.", "Hello! How can I help you today?", "?", "No.",
              "Sorry, I cannot answer that.", "Let me think about it."]


# ---------------------------------------------------------------------------
# Rank 2: a near miss, derived from the prompt and the answer
# ---------------------------------------------------------------------------

def _misspell(word: str, rng: random.Random) -> str:
    """Swap two adjacent letters, or drop one: 'APPLE' -> 'APLPE' / 'APLE'."""
    for _ in range(20):
        i = rng.randrange(len(word) - 1)
        out = word[:i] + word[i + 1] + word[i] + word[i + 2:] if rng.random() < 0.5 else word[:i] + word[i + 1:]
        if out != word:
            return out
    return word + word[-1]


def _off_by_one(n: int, rng: random.Random, lo: int = 0, hi: int = 10**9) -> int:
    options = [m for m in (n - 1, n + 1) if lo <= m <= hi]
    return rng.choice(options)


def near_miss(task: str, prompt: str, answer: str, rng: random.Random) -> str:
    """A wrong answer of the right kind and format for `prompt`."""
    if task in ("add", "count_words"):
        return str(_off_by_one(int(answer), rng, lo=0 if task == "add" else 1))
    if task == "compare":
        a, b = (int(x) for x in re.findall(r"\d+", prompt)[-2:])
        return str(a if str(b) == answer else b)
    if task == "sort":
        xs = answer.split(", ")
        if rng.random() < 0.3:
            ys = xs[::-1]
        else:
            i = rng.randrange(len(xs) - 1)
            ys = xs[:i] + [xs[i + 1], xs[i]] + xs[i + 2:]
        return ", ".join(ys)
    if task == "letter":
        return rng.choice([c for c in LETTERS if c != answer])
    if task == "case":
        return _misspell(answer, rng)
    if task == "reverse":
        return answer[::-1] if rng.random() < 0.5 and answer[::-1] != answer else _misspell(answer, rng)
    if task == "number_words":
        n = int(re.findall(r"\d+", prompt)[-1])
        return mi.number_to_words(_off_by_one(n, rng, 0, 99))
    if task == "repeat":
        words = answer.split()
        k = _off_by_one(len(words), rng, 1, 6)
        return " ".join(words[:1] * k)
    if task == "antonym":
        partner = next(a if b == answer else b for a, b in mi.ANTONYMS if answer in (a, b))
        if rng.random() < 0.5:
            return partner  # echoes the word it was asked about
        return rng.choice([w for pair in mi.ANTONYMS for w in pair if w not in (answer, partner)])
    if task == "plural":
        noun = next(n for n in mi.NOUNS if mi.plural(n) == answer)
        wrong = [noun + "s", noun + "es", noun]
        return rng.choice([w for w in wrong if w != answer])
    if task == "to_json":
        obj = json.loads(answer)
        key = rng.choice(list(obj))
        if isinstance(obj[key], int):
            obj[key] = _off_by_one(obj[key], rng, 1, 99)
        else:
            pools = {"name": mi.NAMES, "color": mi.COLORS, "city": mi.CITIES, "fruit": mi.FRUITS, "pet": mi.PETS}
            obj[key] = rng.choice([v for v in pools[key] if v != obj[key]])
        return json.dumps(obj)
    raise ValueError(f"unknown task family {task!r}")


# ---------------------------------------------------------------------------
# Ranks 3 and 4
# ---------------------------------------------------------------------------

def badly_formatted(task: str, answer: str, rng: random.Random) -> str:
    """The right content in a form `check` rejects."""
    variants = [t.format(a=answer) for t in CHATTER]
    if task != "case":  # for `case` the letters' case is the content, not the format
        variants += [v for v in (answer.capitalize(), answer.upper()) if v != answer]
    if task == "to_json":
        variants.append("```json\n" + answer + "\n```")
    return rng.choice(variants)


def irrelevant(gen: mi.Gen, rng: random.Random) -> str:
    return gen.sentence() if rng.random() < 0.3 else rng.choice(IRRELEVANT)


def ranked_responses(task: str, prompt: str, answer: str, gen: mi.Gen, rng: random.Random) -> list[str]:
    """[correct, near miss, badly formatted, irrelevant]: distinct, and only the first passes `check`."""
    rec = {"answer": answer}
    while True:
        responses = [answer, near_miss(task, prompt, answer, rng), badly_formatted(task, answer, rng),
                     irrelevant(gen, rng)]
        if len(set(responses)) == len(responses):
            break
    assert mi.check(rec, responses[0]) and not any(mi.check(rec, r) for r in responses[1:]), (prompt, responses)
    return responses


def record(task: str, prompt: str, answer: str, responses: list[str]) -> dict:
    return {"prompt": [{"role": "user", "content": prompt}], "responses": responses, "task": task, "answer": answer}


# ---------------------------------------------------------------------------
# Dataset assembly
# ---------------------------------------------------------------------------

def instruction_test_prompts() -> list[str]:
    """The user prompts of the bundled `instructions` test split (regenerated, so no file is read)."""
    _, test = mi.generate(mi.SEED)
    return [r["messages"][0]["content"] for r in test]


def generate(seed: int = SEED) -> tuple[list[dict], list[dict]]:
    """Return ``(train, test)``: N_TRAIN_PER_FAMILY and N_TEST_PER_FAMILY prompts per family."""
    rng = random.Random(seed)
    gen = mi.Gen(rng)
    excluded = dict.fromkeys(instruction_test_prompts())  # ordered; never iterate a set
    need = N_TRAIN_PER_FAMILY + N_TEST_PER_FAMILY
    seen: dict[str, None] = {}
    train, test = [], []
    for fam in mi.FAMILIES:
        pool, attempts = [], 0
        while len(pool) < need:
            attempts += 1
            if attempts > 100 * need:
                raise RuntimeError(f"family {fam} cannot produce {need} unique prompts")
            prompt, answer = getattr(gen, fam)()
            if prompt in seen or prompt in excluded:
                continue
            seen[prompt] = None
            pool.append(record(fam, prompt, answer, ranked_responses(fam, prompt, answer, gen, rng)))
        test += pool[:N_TEST_PER_FAMILY]
        train += pool[N_TEST_PER_FAMILY:]
    rng.shuffle(train)
    rng.shuffle(test)
    return train, test





def main(out_dir: Path = OUT_DIR, seed: int = SEED) -> None:
    train, test = generate(seed)
    write_splits(out_dir, {"train": train, "test": test}, lambda recs: f"{len(recs)} prompts x {len(RANKS)} ranked responses")


if __name__ == "__main__":
    main()
