"""The data llmkit ships, and the seeded generators that wrote it (`python -m llmkit.data.bundled.make_*`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path


def to_jsonl(records: list[dict]) -> str:
    """Serialise records exactly as they are shipped."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def write_splits(out_dir: Path, splits: dict[str, list[dict]], describe: Callable[[list[dict]], str]) -> None:
    """Write `<split>.jsonl` per split (UTF-8, LF) and say what each holds."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, recs in splits.items():
        (out_dir / f"{name}.jsonl").write_text(to_jsonl(recs), encoding="utf-8", newline="\n")
        print(f"wrote {out_dir / (name + '.jsonl')}: {describe(recs)}")
