"""Generator for llmkit's bundled ``instructions`` SFT dataset: short tasks a program can check.

Each record is one user instruction and the one correct assistant reply, in the conversational
format the SFT recipe reads, plus the task family and the expected answer::

    {"messages": [{"role": "user", "content": "What is 12 + 30?"},
                  {"role": "assistant", "content": "42"}],
     "task": "add", "answer": "42"}

There are twelve task families (``FAMILIES``), each with several phrasings, so a model has to
read the instruction and not just the shape of the input (``compare`` asks for the larger *or* the
smaller number, ``sort`` ascending *or* descending, ``letter`` the first *or* the last letter,
``case`` upper *or* lower). Answers are short (1-5 words), deterministic and unique, so a
prediction is scored by exact match: see ``check``.

Generation is pure standard library and deterministic for a given seed (``random.Random(seed)``
is the only source of randomness; no iteration over sets). Regenerate the shipped files with::

    python -m llmkit.data.bundled.make_instructions

which writes ``instructions/train.jsonl`` and ``instructions/test.jsonl`` next to this file.
User prompts are unique across both splits, so no test prompt is seen in training.

``Gen`` is also used (with other seeds) by ``make_corpus.py`` to write the pretraining corpus of
llmkit's embedded causal LM; the word lists here are its vocabulary.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from llmkit.data.bundled import to_jsonl, write_splits  # noqa: F401  (to_jsonl: the shipped serialisation, used by the tests)

SEED = 0
N_TRAIN_PER_FAMILY = 250  # 3000 train rows in total
N_TEST_PER_FAMILY = 17  # 204 test rows in total
OUT_DIR = Path(__file__).resolve().parent / "instructions"

# ---------------------------------------------------------------------------
# Vocabulary (lists, never sets: iteration order must not depend on hashing)
# ---------------------------------------------------------------------------

# Nouns with regular plurals only (no -f/-fe/-o endings, no irregular forms).
NOUNS = [
    "apple", "ball", "bird", "boat", "book", "bottle", "box", "brush", "bus", "cake", "car", "card",
    "cat", "chair", "church", "city", "clock", "cloud", "coat", "coin", "cup", "desk", "dish", "dog",
    "door", "dress", "duck", "egg", "farm", "field", "flower", "fox", "frog", "game", "garden",
    "gift", "glass", "goat", "hat", "hill", "horse", "house", "key", "king", "kite", "lake", "lamp",
    "letter", "lion", "map", "match", "moon", "nest", "note", "pen", "pencil", "pig", "plant",
    "plate", "queen", "rabbit", "river", "road", "rock", "room", "rose", "ship", "shoe", "song",
    "star", "stone", "story", "street", "table", "tiger", "toy", "train", "tree", "truck", "wall",
    "watch", "window", "baby", "berry", "bench", "bridge", "candle", "cherry", "cookie", "day",
    "party", "penny", "pony", "lunch", "beach", "wish", "class", "kiss", "tax", "bush", "peach",
    "monkey", "donkey", "valley", "boy", "girl", "bell", "ring", "shop", "town", "park", "sock",
    "spoon", "fork", "bowl", "bag", "bed", "cow", "hen", "owl", "bear", "snake",
]
ADJECTIVES = [
    "red", "blue", "green", "yellow", "small", "big", "old", "little", "happy", "quiet", "bright",
    "warm", "cold", "kind", "brave", "clever", "funny", "gentle", "busy", "lazy", "tiny", "huge",
    "shiny", "soft", "noisy", "pretty", "sleepy", "hungry", "proud", "calm",
]
VERBS = ["runs", "jumps", "sleeps", "sings", "walks", "waits", "plays", "swims", "reads", "laughs",
         "smiles", "rests", "hides", "dances", "climbs", "falls", "shines", "grows", "eats", "looks"]
PLACES = ["home", "here", "there", "outside", "inside", "today", "again", "slowly", "quickly",
          "now", "later", "away", "together", "alone", "early"]
NAMES = ["alice", "bob", "carol", "dave", "emma", "frank", "grace", "henry", "ivy", "jack", "kate",
         "leo", "mia", "nina", "oscar", "paul", "rosa", "sam", "tom", "uma", "vera", "will", "zoe"]
COLORS = ["red", "blue", "green", "yellow", "black", "white", "pink", "brown", "orange", "purple", "gray"]
CITIES = ["paris", "rome", "london", "berlin", "madrid", "oslo", "tokyo", "lima", "cairo", "dublin",
          "vienna", "prague", "lisbon", "athens", "sydney", "boston"]
FRUITS = ["apple", "banana", "cherry", "grape", "lemon", "mango", "melon", "orange", "pear", "peach",
          "plum", "lime", "kiwi", "fig"]
PETS = ["cat", "dog", "fish", "bird", "rabbit", "horse", "mouse", "turtle", "hamster", "snake"]
# Each word is in exactly one pair, so every antonym question has one answer.
ANTONYMS = [
    ("hot", "cold"), ("big", "small"), ("fast", "slow"), ("happy", "sad"), ("light", "dark"),
    ("open", "closed"), ("early", "late"), ("full", "empty"), ("hard", "soft"), ("wet", "dry"),
    ("high", "low"), ("long", "short"), ("loud", "quiet"), ("rich", "poor"), ("strong", "weak"),
    ("thick", "thin"), ("up", "down"), ("left", "right"), ("first", "last"), ("day", "night"),
    ("black", "white"), ("push", "pull"), ("win", "lose"), ("buy", "sell"), ("true", "false"),
    ("yes", "no"), ("above", "below"), ("before", "after"), ("inside", "outside"),
    ("always", "never"), ("clean", "dirty"), ("good", "bad"), ("top", "bottom"), ("north", "south"),
    ("east", "west"), ("wide", "narrow"), ("deep", "shallow"), ("near", "far"), ("laugh", "cry"),
    ("love", "hate"), ("asleep", "awake"), ("cheap", "expensive"), ("safe", "dangerous"),
    ("smooth", "rough"), ("sweet", "sour"), ("friend", "enemy"), ("question", "answer"),
    ("arrive", "leave"), ("young", "old"),
]
ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
        "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
        "nineteen"]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
JSON_KEYS = ["name", "color", "city", "fruit", "pet", "age", "size", "count", "year", "score"]
NUMERIC_KEYS = ["age", "size", "count", "year", "score"]


def number_to_words(n: int) -> str:
    """0-99 in English words: 7 -> 'seven', 42 -> 'forty-two'."""
    if not 0 <= n <= 99:
        raise ValueError(n)
    if n < 20:
        return ONES[n]
    tens, ones = divmod(n, 10)
    return TENS[tens] + ("-" + ONES[ones] if ones else "")


def plural(noun: str) -> str:
    """Regular English plural: box -> boxes, city -> cities, key -> keys, cat -> cats."""
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


# ---------------------------------------------------------------------------
# Task families: templates + a function that draws one (prompt, answer) pair
# ---------------------------------------------------------------------------

T = {
    "add": ["What is {a} + {b}?", "Add {a} and {b}.", "Compute {a} plus {b}.",
            "What is the sum of {a} and {b}?", "{a} + {b} = ?", "Calculate {a} + {b}. Reply with the number only."],
    "larger": ["Which is larger, {a} or {b}?", "Which number is bigger: {a} or {b}?",
               "Of {a} and {b}, which is greater?", "Pick the larger number: {a}, {b}."],
    "smaller": ["Which is smaller, {a} or {b}?", "Which number is less: {a} or {b}?",
                "Of {a} and {b}, which is lower?", "Pick the smaller number: {a}, {b}."],
    "sort_up": ["Sort these numbers from smallest to largest: {xs}.", "Put in ascending order: {xs}.",
                "Arrange {xs} in increasing order.", "Order these numbers, smallest first: {xs}."],
    "sort_down": ["Sort these numbers from largest to smallest: {xs}.", "Put in descending order: {xs}.",
                  "Arrange {xs} in decreasing order.", "Order these numbers, largest first: {xs}."],
    "count_words": ['How many words are in this sentence: "{s}"?', "Count the words: {s}",
                    "How many words does the sentence \"{s}\" have?", "Number of words in: {s}",
                    "Tell me how many words there are in \"{s}\"."],
    "first_letter": ["What is the first letter of '{w}'?", "Give the first letter of the word {w}.",
                     "Which letter does \"{w}\" start with?", "First letter of {w}:"],
    "last_letter": ["What is the last letter of '{w}'?", "Give the last letter of the word {w}.",
                    "Which letter does \"{w}\" end with?", "Last letter of {w}:"],
    "upper": ["Write '{w}' in capital letters.", "Convert to uppercase: {w}", "Uppercase the word \"{w}\".",
              "Spell {w} in all caps."],
    "lower": ["Write '{w}' in small letters.", "Convert to lowercase: {w}", "Lowercase the word \"{w}\".",
              "Spell {w} without capital letters."],
    "reverse": ["Reverse the word '{w}'.", "Write {w} backwards.", "Spell \"{w}\" in reverse order.",
                "What is {w} reversed?"],
    "number_words": ["Write the number {n} in words.", "Spell out {n}.", "How do you write {n} in English words?",
                     "Write {n} as a word.", "{n} in words:", "Express the number {n} in letters."],
    "repeat": ["Repeat the word '{w}' {k} times.", "Say {w} {k} times.", "Write \"{w}\" {k} times, separated by spaces.",
               "Echo the word {w} exactly {k} times."],
    "antonym": ["What is the opposite of {w}?", "Give the antonym of '{w}'.", "Write the opposite of the word {w}.",
                "Antonym of {w}:", "Which word means the opposite of \"{w}\"?", "Tell me the opposite of {w}."],
    "plural": ["What is the plural of '{w}'?", "Give the plural form of {w}.", "Write the plural of the noun \"{w}\".",
               "One {w}, two what?", "Plural of {w}:", "Make {w} plural."],
    "to_json": ["Convert to a JSON object: {kv}", "Turn these key=value pairs into JSON: {kv}",
                "Write as JSON: {kv}", "Format {kv} as a JSON object."],
}

WORDS = NOUNS + ADJECTIVES  # words for the letter, case, reverse and repeat tasks


class Gen:
    """Draws (user prompt, answer) pairs for each family from one `random.Random`.

    `lo`/`hi` bound the numbers of the arithmetic and comparison tasks, so another user (the
    pretraining corpus) can draw from a different range.
    """

    def __init__(self, rng: random.Random, lo: int = 0, hi: int = 50):
        self.rng, self.lo, self.hi = rng, lo, hi

    def sentence(self, n_min: int = 3, n_max: int = 9) -> str:
        """A simple lowercase sentence without punctuation: 'the happy dog runs home'."""
        r = self.rng
        while True:
            if r.random() < 0.15:
                words = [r.choice(NAMES)]
            else:
                words = ["the"] + ([r.choice(ADJECTIVES)] if r.random() < 0.6 else []) + [r.choice(NOUNS)]
            words.append(r.choice(VERBS))
            if r.random() < 0.6:
                words.append(r.choice(PLACES))
            if r.random() < 0.4:
                words += ["with", "the", r.choice(NOUNS)]
            if n_min <= len(words) <= n_max:
                return " ".join(words)

    def add(self):
        a, b = self.rng.randint(self.lo, self.hi), self.rng.randint(self.lo, self.hi)
        return self.rng.choice(T["add"]).format(a=a, b=b), str(a + b)

    def compare(self):
        a, b = self.rng.sample(range(self.lo, 2 * self.hi), 2)
        kind = self.rng.choice(["larger", "smaller"])
        return self.rng.choice(T[kind]).format(a=a, b=b), str(max(a, b) if kind == "larger" else min(a, b))

    def sort(self):
        xs = self.rng.sample(range(self.lo, self.hi), self.rng.randint(3, 4))
        kind = self.rng.choice(["sort_up", "sort_down"])
        ys = sorted(xs, reverse=kind == "sort_down")
        return self.rng.choice(T[kind]).format(xs=", ".join(map(str, xs))), ", ".join(map(str, ys))

    def count_words(self):
        s = self.sentence()
        return self.rng.choice(T["count_words"]).format(s=s), str(len(s.split()))

    def letter(self):
        w = self.rng.choice(WORDS)
        kind = self.rng.choice(["first_letter", "last_letter"])
        return self.rng.choice(T[kind]).format(w=w), w[0] if kind == "first_letter" else w[-1]

    def case(self):
        w = self.rng.choice(WORDS)
        if self.rng.random() < 0.5:
            shown = w if self.rng.random() < 0.7 else w.capitalize()
            return self.rng.choice(T["upper"]).format(w=shown), w.upper()
        shown = w.upper() if self.rng.random() < 0.7 else w.capitalize()
        return self.rng.choice(T["lower"]).format(w=shown), w

    def reverse(self):
        w = self.rng.choice([w for w in WORDS if 3 <= len(w) <= 6])
        return self.rng.choice(T["reverse"]).format(w=w), w[::-1]

    def number_words(self):
        n = self.rng.randint(0, 99)
        return self.rng.choice(T["number_words"]).format(n=n), number_to_words(n)

    def repeat(self):
        w, k = self.rng.choice(WORDS), self.rng.randint(2, 5)
        return self.rng.choice(T["repeat"]).format(w=w, k=k), " ".join([w] * k)

    def antonym(self):
        a, b = self.rng.choice(ANTONYMS)
        w, ans = (a, b) if self.rng.random() < 0.5 else (b, a)
        return self.rng.choice(T["antonym"]).format(w=w), ans

    def plural(self):
        w = self.rng.choice(NOUNS)
        return self.rng.choice(T["plural"]).format(w=w), plural(w)

    def to_json(self):
        r = self.rng
        keys = r.sample(JSON_KEYS, 2)
        pools = {"name": NAMES, "color": COLORS, "city": CITIES, "fruit": FRUITS, "pet": PETS}
        obj = {k: r.randint(1, 99) if k in NUMERIC_KEYS else r.choice(pools[k]) for k in keys}
        sep = r.choice([", ", " ", "; "])
        kv = sep.join(f"{k}={v}" for k, v in obj.items())
        return r.choice(T["to_json"]).format(kv=kv), json.dumps(obj)


FAMILIES = ["add", "compare", "sort", "count_words", "letter", "case", "reverse", "number_words",
            "repeat", "antonym", "plural", "to_json"]


def record(task: str, prompt: str, answer: str) -> dict:
    return {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}],
            "task": task, "answer": answer}


def normalize(text: str) -> str:
    """The only normalisation `check` applies: leading and trailing whitespace is removed.

    Case, inner spaces and punctuation all count ("42." != "42", "Cold" != "cold")."""
    return text.strip()


def check(rec: dict, prediction: str) -> bool:
    """True when `prediction` is the record's answer, by exact match after `normalize`."""
    return normalize(prediction) == normalize(rec["answer"])


# ---------------------------------------------------------------------------
# Dataset assembly
# ---------------------------------------------------------------------------

def generate(seed: int = SEED) -> tuple[list[dict], list[dict]]:
    """Return ``(train, test)``: N_TRAIN_PER_FAMILY and N_TEST_PER_FAMILY records per family.

    User prompts are unique across the whole dataset, so no prompt is in both splits.
    """
    rng = random.Random(seed)
    gen = Gen(rng)
    need = N_TRAIN_PER_FAMILY + N_TEST_PER_FAMILY
    seen: dict[str, str] = {}  # insertion-ordered; never iterate a set
    train, test = [], []
    for fam in FAMILIES:
        pool, attempts = [], 0
        while len(pool) < need:
            attempts += 1
            if attempts > 100 * need:
                raise RuntimeError(f"family {fam} cannot produce {need} unique prompts")
            prompt, answer = getattr(gen, fam)()
            if prompt in seen:
                continue
            assert prompt.isascii() and answer.isascii(), (prompt, answer)
            seen[prompt] = answer
            pool.append(record(fam, prompt, answer))
        test += pool[:N_TEST_PER_FAMILY]
        train += pool[N_TEST_PER_FAMILY:]
    rng.shuffle(train)
    rng.shuffle(test)
    return train, test


def main(out_dir: Path = OUT_DIR, seed: int = SEED) -> None:
    train, test = generate(seed)
    write_splits(out_dir, {"train": train, "test": test}, lambda recs: f"{len(recs)} rows, {len(FAMILIES)} task families")


if __name__ == "__main__":
    main()
