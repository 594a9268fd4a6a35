"""Supervised finetuning data: three formats, one tokenisation with a loss mask.

Formats (detected from the columns, or set with `data.format`):
    messages            {"messages": [{"role": "user", "content": ...}, {"role": "assistant", ...}]}
    prompt_completion   {"prompt": ..., "completion": ...} (strings, or message lists)
    text                {"text": ...}

Every example becomes `input_ids` + `labels` (-100 where no loss is taken). By default the loss is
on assistant turns / completions only; the sequence always ends in EOS so generation learns to stop.
Masks come from rendering the chat template up to each assistant turn and taking the longest
common token prefix, so any chat template works (no `{% generation %}` markers needed). TRL's
SFTTrainer takes the result as a pre-tokenised dataset, and llmkit's evaluation uses the same
tokens, so the before/after losses measure exactly what training optimises.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from llmkit.config import opt
from llmkit.data import mixing
from llmkit.data.loading import SourceConfig, open_sources, split_and_cap
from llmkit.errors import DataError

# A plain chat template for tokenizers that ship none (tiny models, base models).
# Newlines sit inside {{ }}: transformers renders templates with trim_blocks, which drops a newline
# that follows a {% %} tag.
DEFAULT_CHAT_TEMPLATE = (
    "{% for m in messages %}{{ '<|' + m['role'] + '|>\\n' + m['content'] }}"
    "{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %}{{ '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)


@dataclass
class SFTDataConfig(SourceConfig):
    path: str | list[str | dict[str, Any]] = opt("instructions", "Training data: bundled name (instructions), JSONL/CSV/Parquet file, saved dataset dir or hub id; or a list of them to mix, each a path or {path, split, samples | weight} (llmkit/data/mixing.py).")
    test_size: float = opt(0.1, "Fraction held out when there is no test split.")
    format: Literal["auto", "messages", "prompt_completion", "text"] = opt("auto", "Record format; auto detects it from the columns.")
    messages_column: str = opt("messages", "Column with the conversation (messages format).")
    prompt_column: str = opt("prompt", "Prompt column (prompt_completion format).")
    completion_column: str = opt("completion", "Completion column (prompt_completion format).")
    text_column: str = opt("text", "Text column (text format).")
    extra_train: list[str] = opt(factory=list, help="More training files appended to `path`'s training rows after "
                                 "max_train_samples (e.g. a Self-Instruct finetune.jsonl); each in any SFT format.")

    def validate(self) -> None:
        super().validate()
        mixing.parse(self.path)


@dataclass
class SFTData:
    train: list[dict]
    test: list[dict]
    format: str
    train_source: str
    test_source: str
    mix: list[dict] = field(default_factory=list)  # per source of a list data.path (metrics.json data_mix)


def detect_format(columns: list[str], cfg: SFTDataConfig, source: str) -> str:
    if cfg.format != "auto":
        return cfg.format
    if cfg.messages_column in columns:
        return "messages"
    if cfg.prompt_column in columns and cfg.completion_column in columns:
        return "prompt_completion"
    if cfg.text_column in columns:
        return "text"
    raise DataError(f"{source}: cannot tell the format from columns {', '.join(columns)}; expected `{cfg.messages_column}`, "
                    f"`{cfg.prompt_column}` + `{cfg.completion_column}`, or `{cfg.text_column}` (set data.format and the column names)")


def _check_messages(msgs, where: str) -> None:
    if not isinstance(msgs, list) or not msgs:
        raise DataError(f"{where}: messages must be a non-empty list of {{role, content}} objects")
    for j, m in enumerate(msgs):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise DataError(f"{where}: message {j + 1} must be an object with string `role` and `content`")
        if m["role"] not in ("system", "user", "assistant"):
            raise DataError(f"{where}: message {j + 1} has role {m['role']!r}; use system, user or assistant")
    if not any(m["role"] == "assistant" for m in msgs):
        raise DataError(f"{where}: no assistant message, so nothing to learn")


def normalise(row: dict, fmt: str, cfg: SFTDataConfig, where: str) -> dict:
    """A validated record in llmkit's internal shape: {"messages": [...]} or {"prompt", "completion"} or {"text"}."""
    def column(name):
        if name not in row:
            raise DataError(f"{where}: missing column `{name}`")
        return row[name]

    if fmt == "messages":
        msgs = column(cfg.messages_column)
        _check_messages(msgs, where)
        return {"messages": [{"role": m["role"], "content": m["content"]} for m in msgs]}
    if fmt == "prompt_completion":
        prompt, completion = column(cfg.prompt_column), column(cfg.completion_column)
        if isinstance(prompt, list):  # conversational prompt-completion
            reply = completion if isinstance(completion, list) else [{"role": "assistant", "content": completion}]
            _check_messages(prompt + reply, where)
            return {"prompt": prompt, "completion": reply}
        if not isinstance(prompt, str) or not prompt.strip():
            raise DataError(f"{where}: empty or missing prompt in column `{cfg.prompt_column}`")
        if not isinstance(completion, str) or not completion.strip():
            raise DataError(f"{where}: empty or missing completion in column `{cfg.completion_column}`")
        return {"prompt": prompt, "completion": completion}
    text = column(cfg.text_column)
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"{where}: empty or missing text in column `{cfg.text_column}`")
    return {"text": text}


def prepare(cfg: SFTDataConfig, seed: int = 42) -> SFTData:
    if entries := mixing.parse(cfg.path):
        data = _mixture(cfg, entries, seed)
    else:
        train_ds, train_source, test_ds, test_source = open_sources(cfg)
        fmt = detect_format(train_ds.column_names, cfg, train_source)
        train = _rows(train_ds, fmt, cfg, train_source)
        test = None if test_ds is None else _rows(test_ds, fmt, cfg, test_source)
        train, test, held_out = split_and_cap(cfg, train, test, train_source, seed)
        data = SFTData(train=train, test=test, format=fmt, train_source=train_source, test_source=held_out or test_source)
    for extra in cfg.extra_train:
        rows, source, fmt = _extra_rows(extra, cfg)
        data.train += rows
        data.train_source += f" + {source} ({len(rows):,} rows)"
        data.format = _formats([data.format, fmt])
    return data


def _rows(ds, fmt: str, cfg: SFTDataConfig, source: str) -> list[dict]:
    return [normalise(r, fmt, cfg, f"{source}: row {i + 1}") for i, r in enumerate(ds)]


def _formats(names: list[str]) -> str:
    """"messages", or "messages+text" for a mixture of formats."""
    return "+".join(dict.fromkeys(f for name in names for f in name.split("+")))


def _mixture(cfg: SFTDataConfig, entries: list, seed: int) -> SFTData:
    formats = []

    def read(ds, source):  # each source in its own format
        formats.append(detect_format(ds.column_names, cfg, source))
        return _rows(ds, formats[-1], cfg, source)

    m = mixing.mix(cfg, entries, read, seed)
    return SFTData(train=m.train, test=m.test, format=_formats(formats), train_source=m.train_source,
                   test_source=m.test_source, mix=m.parts)


def _extra_rows(path: str, cfg: SFTDataConfig) -> tuple[list[dict], str, str]:
    from llmkit.data.loading import load_splits

    splits = load_splits(path)
    key = cfg.train_split if cfg.train_split in splits else next(iter(splits))
    ds = splits[key]
    source = f"{path} [{key}]" if len(splits) > 1 else path
    if len(ds) == 0:
        raise DataError(f"{source} (data.extra_train): no rows")
    fmt = detect_format(ds.column_names, replace(cfg, format="auto"), source)
    return _rows(ds, fmt, cfg, source), source, fmt


# ----------------------------------------------------------------------------- tokenisation


def _render(tokenizer, messages, add_generation_prompt: bool) -> list[int]:
    out = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=add_generation_prompt,
                                        return_dict=True)
    return list(out["input_ids"])


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _as_messages(record: dict) -> list[dict] | None:
    if "messages" in record:
        return record["messages"]
    if "prompt" in record and isinstance(record["prompt"], list):
        return record["prompt"] + record["completion"]
    return None


def tokenize(record: dict, tokenizer, max_length: int, loss_on: str = "completion") -> dict:
    """-> {"input_ids": [...], "labels": [...]} with -100 on tokens that carry no loss."""
    eos = tokenizer.eos_token_id
    messages = _as_messages(record)
    if messages is not None:
        ids = _render(tokenizer, messages, add_generation_prompt=False)
        train_mask = [loss_on == "all"] * len(ids)
        for i, m in enumerate(messages):
            if m["role"] != "assistant":
                continue
            start = _common_prefix(_render(tokenizer, messages[:i], add_generation_prompt=True), ids)
            # the last turn ends where the conversation does: no third render (a third of the tokenising time)
            end = len(ids) if i == len(messages) - 1 else _common_prefix(
                _render(tokenizer, messages[:i + 1], add_generation_prompt=False), ids)
            if eos is not None and eos in ids[start:end]:  # the turn ends at its EOS, not after
                end = start + max(j for j, t in enumerate(ids[start:end]) if t == eos) + 1
            for t in range(start, end):
                train_mask[t] = True
        if eos is not None and eos not in ids[-2:]:  # template without EOS: append it so generation stops
            ids, train_mask = ids + [eos], train_mask + [True]
    elif "prompt" in record:
        prompt = tokenizer(record["prompt"])["input_ids"]
        completion = tokenizer(record["completion"], add_special_tokens=False)["input_ids"] + ([eos] if eos is not None else [])
        ids = prompt + completion
        train_mask = [loss_on == "all"] * len(prompt) + [True] * len(completion)
    else:
        ids = tokenizer(record["text"])["input_ids"] + ([eos] if eos is not None else [])
        train_mask = [True] * len(ids)
    ids, train_mask = ids[:max_length], train_mask[:max_length]
    return {"input_ids": ids, "labels": [t if keep else -100 for t, keep in zip(ids, train_mask)]}


def prompt_text(prompt) -> str:
    """The last user turn of a chat prompt, or the prompt string ('' when there is none)."""
    if isinstance(prompt, list):
        return next((m["content"] for m in reversed(prompt) if m.get("role") == "user"), "")
    return prompt or ""


def shown_prompt(record: dict) -> str:
    """The prompt of a generation sample as a reader wants it in a report: the user's words, without the
    chat template's tokens (the last user turn of a conversation)."""
    messages = _as_messages(record)
    if messages is not None:
        last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
        return prompt_text(messages[:last])
    return prompt_text(record.get("prompt"))


def generation_prompt(record: dict, tokenizer) -> tuple[list[int], str] | None:
    """(prompt token ids, reference answer) for generation-based evaluation; None for plain text."""
    messages = _as_messages(record)
    if messages is not None:
        last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
        return _render(tokenizer, messages[:last], add_generation_prompt=True), messages[last]["content"]
    if "prompt" in record:
        return tokenizer(record["prompt"])["input_ids"], record["completion"]
    return None
