"""Generate eval/data/texts.jsonl: held-out prose for the perplexity suite (eval/perplexity.yaml).

The texts come from the same grammar as the embedded model's pretraining corpus
(llmkit/data/bundled/make_corpus.py), drawn with a seed pretraining never uses, and any text that
also occurs in the pretraining corpus is dropped, so the suite measures held-out perplexity.

    python eval/make_texts.py          # rewrites eval/data/texts.jsonl (deterministic)
"""

from __future__ import annotations

import json
from pathlib import Path

from llmkit.data.bundled.make_corpus import BOS, EOS, generate_corpus

OUT = Path(__file__).parent / "data" / "texts.jsonl"
HELDOUT_SEED = 2026  # pretraining uses seed 1


def strip(doc: str) -> str:
    return doc.removeprefix(BOS).removesuffix(EOS).strip()


def make(n: int = 200) -> list[str]:
    seen = {strip(d) for d in generate_corpus(seed=1)}
    texts = []
    for doc in generate_corpus(4 * n, seed=HELDOUT_SEED, chat_share=0.0):
        text = strip(doc)
        if text not in seen and text not in texts:
            texts.append(text)
        if len(texts) == n:
            break
    return texts


if __name__ == "__main__":
    texts = make()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    print(f"wrote {len(texts)} texts to {OUT}")
