"""The pretraining corpus of llmkit's embedded causal LM (`pico-llama`, llmkit/models/pretrain.py).

Nothing is shipped: the corpus is generated at pretraining time, deterministically from a seed,
by the small grammar below over the vocabulary of ``make_instructions.py``. It has two kinds of
document:

* **prose** (about 60% of the documents): short paragraphs of simple English sentences that
  use the words, numbers, plurals, number words, opposites, capitals, spellings and JSON-like
  records the instruction tasks are about ("Alice has twenty-three apples.", "The room was hot,
  not cold.", "Tom shouts: STOP!", "Ivy spells cat: c-a-t.");
* **chats** (about 40%): user/assistant exchanges written in the chat template of the model, so
  the base model knows the turn format and ends its answers with ``</s>``. Most exchanges are
  *other* tasks than the bundled instruction families (what comes after a number, even or odd,
  the last word of a sentence, copy a sentence, ...). A small share (5%) is drawn from the
  bundled families with other numbers, and never with a prompt of the bundled train or test split.

So the base model knows the words and the format but has seen little of the bundled tasks;
finetuning on ``instructions/train.jsonl`` then shows a clear held-out gain.

    python -m llmkit.data.bundled.make_corpus    # prints a sample
"""

from __future__ import annotations

import json
import random

from llmkit.data.bundled import make_instructions as mi

# The plain-text chat format, kept in step with CHAT_TEMPLATE in llmkit/models/pretrain.py (a test
# checks that both render the same text).
BOS, EOS = "<s>", "</s>"
ROLE_TAGS = {"system": "<|system|>", "user": "<|user|>", "assistant": "<|assistant|>"}


def render_chat(messages: list[dict]) -> str:
    """What the tokenizer's chat template renders for `messages`, as a string."""
    out = BOS
    for m in messages:
        tail = EOS + "\n" if m["role"] == "assistant" else "\n"
        out += ROLE_TAGS[m["role"]] + "\n" + m["content"] + tail
    return out


class CorpusGen(mi.Gen):
    """Prose and chat documents; inherits the instruction families from `make_instructions.Gen`."""

    def count_phrase(self) -> str:
        n, noun = self.rng.randint(0, 99), self.rng.choice(mi.NOUNS)
        what = noun if n == 1 else mi.plural(noun)
        return f"{mi.number_to_words(n) if self.rng.random() < 0.5 else n} {what}"

    def prose_sentence(self) -> str:
        r = self.rng
        name, noun, adj = r.choice(mi.NAMES).capitalize(), r.choice(mi.NOUNS), r.choice(mi.ADJECTIVES)
        a, b = r.choice(mi.ANTONYMS)
        if r.random() < 0.5:
            a, b = b, a
        n = r.randint(0, 99)
        k = r.randint(0, 20)
        forms = [
            lambda: self.sentence(3, 12).capitalize() + ".",
            lambda: f"{name} has {self.count_phrase()}.",
            lambda: f"There are {self.count_phrase()} in the {noun}.",
            lambda: f"One {noun}, two {mi.plural(noun)}, many {mi.plural(noun)}.",
            lambda: f"The {noun} was {a}, not {b}.",
            lambda: f"{a.capitalize()} and {b} are opposites.",
            lambda: f"It is {a} here, but it is {b} there.",
            lambda: f"The number {n} is written {mi.number_to_words(n)}.",
            lambda: f"{name} counts: {', '.join(mi.number_to_words(i) for i in range(n, min(n + 4, 100)))}.",
            lambda: f"{k} and {k + 1} and {k + 2} come in a row.",
            lambda: f"{k} plus {n % 21} is {k + n % 21}.",
            lambda: f"{n} is more than {k}." if n > k else f"{k} is more than {n}.",
            lambda: f"{name} shouts: {r.choice(mi.WORDS).upper()}!",
            lambda: f"The word {noun} starts with {noun[0]} and ends with {noun[-1]}.",
            lambda: f"{name} spells {noun}: {'-'.join(noun)}.",
            lambda: f"{name} says {noun}, {noun}, {noun}.",
            lambda: f"A small {adj} and a big {adj.upper()}.",
            lambda: f"The sign on the {noun} says {r.choice(mi.WORDS).upper()}.",
            lambda: f"The {adj} {noun} and the {r.choice(mi.ADJECTIVES)} {r.choice(mi.NOUNS)} {r.choice(mi.VERBS)} {r.choice(mi.PLACES)}.",
            lambda: f"The card says {json.dumps({'name': r.choice(mi.NAMES), 'age': n})}.",
            lambda: f"{name} likes the {r.choice(mi.COLORS)} {r.choice(mi.FRUITS)} from {r.choice(mi.CITIES).capitalize()}.",
            lambda: f"The scores were {n}, {k} and {r.randint(0, 99)}.",
        ]
        return r.choice(forms)()

    def prose(self) -> str:
        return " ".join(self.prose_sentence() for _ in range(self.rng.randint(2, 6)))

    # Chat tasks that are not bundled instruction families (so the base model learns the format).
    def other_task(self) -> tuple[str, str]:
        r = self.rng
        n, m = r.randint(1, 98), r.randint(0, 99)
        s = self.sentence()
        color, noun, name = r.choice(mi.COLORS), r.choice(mi.NOUNS), r.choice(mi.NAMES)
        tasks = [
            lambda: (r.choice([f"What number comes after {n}?", f"What is the next number after {n}?"]), str(n + 1)),
            lambda: (r.choice([f"What number comes before {n}?", f"Which number is just before {n}?"]), str(n - 1)),
            lambda: (r.choice([f"Is {m} even or odd?", f"Is the number {m} odd or even?"]), "even" if m % 2 == 0 else "odd"),
            lambda: (r.choice([f"What is the last word of: {s}", f'Give the last word of "{s}".']), s.split()[-1]),
            lambda: (r.choice([f"What is the first word of: {s}", f'Give the first word of "{s}".']), s.split()[0]),
            lambda: (r.choice([f"Copy this sentence exactly: {s}", f'Repeat after me: "{s}"']), s),
            lambda: (f"What color is the {noun} in: the {color} {noun}?", color),
            lambda: (r.choice([f"Is {n} larger than {m}? Answer yes or no.", f"Is {n} more than {m}?"]),
                     "yes" if n > m else "no"),
            lambda: (r.choice([f"What is double {n % 50}?", f"What is {n % 50} times two?"]), str(2 * (n % 50))),
            lambda: (r.choice(["Say hello.", "Greet me.", "Hi!"]), "hello"),
            lambda: (f"Greet {name}.", f"hello {name}"),
            lambda: (r.choice([f"Write {noun} and {color} as a list.", f"List the words {noun} and {color}."]),
                     f"{noun}, {color}"),
            lambda: (r.choice([f"Say the word {noun}.", f"Write '{noun}'.", f'Echo "{noun}".']), noun),
            lambda: (r.choice([f"Which word is an animal or thing: {color} or {noun}?",
                               f"Which of these is a noun: {noun}, {color}?"]), noun),
        ]
        return r.choice(tasks)()

    def chat(self, family_share: float, exclude: dict) -> str:
        messages = []
        for _ in range(self.rng.randint(1, 3)):
            prompt = None
            if self.rng.random() < family_share:
                prompt, answer = getattr(self, self.rng.choice(mi.FAMILIES))()
                if prompt in exclude:
                    prompt = None
            if prompt is None:
                prompt, answer = self.other_task()
            messages += [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
        return render_chat(messages)


def generate_corpus(n_docs: int = 40_000, seed: int = 1, *, chat_share: float = 0.4,
                    family_share: float = 0.05) -> list[str]:
    """`n_docs` documents: prose, and chats (a `chat_share` of them) rendered in the chat format.

    `family_share` of the chat exchanges are bundled instruction families (with numbers drawn
    from 50-99, the bundled set uses 0-50 for addition and sorting), never with a bundled prompt.
    """
    rng = random.Random(f"llmkit-corpus-{seed}")
    gen = CorpusGen(rng, lo=50, hi=99)
    train, test = mi.generate()
    exclude = {r["messages"][0]["content"]: True for r in train + test}
    docs = []
    for _ in range(n_docs):
        if rng.random() < chat_share:
            docs.append(gen.chat(family_share, exclude))
        else:
            docs.append(BOS + gen.prose() + EOS)
    return docs


if __name__ == "__main__":
    for doc in generate_corpus(12):
        print(doc)
        print("---")
