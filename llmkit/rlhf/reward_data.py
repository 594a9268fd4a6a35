"""Preference data for reward models, and the one tokenisation that the reward model and PPO share.

Record formats (detected from the columns, or set with `data.format`):

    pairwise   {"prompt": ..., "chosen": ..., "rejected": ..., "margin": 0.5 (optional)}
    ranking    {"prompt": ..., "responses": [best, ..., worst]}

A prompt is a list of chat messages (conversational: it is rendered with the chat template and its
generation prompt) or a plain string. A response is a string or a one-message list
`[{"role": "assistant", "content": ...}]`. Conversational pairwise records may also leave the prompt
implicit, as TRL allows: `chosen` and `rejected` are whole conversations that differ only in their
last (assistant) message.

A ranking of K responses becomes all K-choose-2 (better, worse) pairs, kept together per prompt
as InstructGPT trains them (Ouyang et al. 2022, arXiv:2203.02155, section 3.5): every record
carries a group id (one per distinct prompt), the held-out split is drawn by prompt, so no prompt
has pairs on both sides, and the recipe's sampler keeps a prompt's pairs next to each other in a
batch. Each pair has a strength: the record's `margin` (pairwise) or the rank gap (ranking), which
the Llama 2 margin loss scales (recipe option `train.margin`).

`build_sequence(tokenizer, prompt, response)` is the only place a (prompt, response) becomes
token ids: prompt ids (chat template with the generation prompt, or the tokenised string) +
response ids + EOS. PPO scores its rollouts with it, so the reward model sees at scoring time
exactly what it saw in training (TRL #1702: tokenising prompt + response as one string merges BPE
tokens across the boundary). The reward is read at that final EOS, so the pad token must differ
from EOS (`check_special_tokens`): otherwise the "last non-pad token" is not the EOS (brief P3);
`llmkit.models.loading.distinct_pad_token` picks one for tokenizers that pad with EOS.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from llmkit.config import opt
from llmkit.data.loading import SourceConfig, holdout, open_sources
from llmkit.errors import ConfigError, DataError

Prompt = str | list[dict]


@dataclass
class RewardDataConfig(SourceConfig):
    path: str = opt("preferences", "Preference data: bundled name (preferences), JSONL/CSV/Parquet file, saved dataset dir or hub id.")
    test_size: float = opt(0.1, "Fraction of prompts held out when there is no test split (split by prompt, never by pair).")
    format: Literal["auto", "pairwise", "ranking"] = opt("auto", "Record format; auto detects it from the columns.")
    prompt_column: str = opt("prompt", "Prompt column (messages or a string).")
    chosen_column: str = opt("chosen", "Preferred response (pairwise format).")
    rejected_column: str = opt("rejected", "Dispreferred response (pairwise format).")
    margin_column: str = opt("margin", "Optional preference strength per pair (pairwise format).")
    responses_column: str = opt("responses", "Responses ordered best to worst (ranking format).")


@dataclass
class Comparison:
    """One prompt's preferences: distinct responses and (better, worse, strength) index pairs."""

    prompt: Prompt
    responses: list[str]
    pairs: list[tuple[int, int, float]]
    group: int = 0  # one id per distinct prompt: pairs of a group are split and batched together
    task: str | None = None


@dataclass
class RewardData:
    train: list[Comparison]
    test: list[Comparison]
    format: str
    train_source: str
    test_source: str
    test_prompts_in_train: int = 0  # given train/test files that share prompts (counted, not dropped)

    @property
    def num_train_pairs(self) -> int:
        return sum(len(c.pairs) for c in self.train)

    @property
    def num_test_pairs(self) -> int:
        return sum(len(c.pairs) for c in self.test)


# ----------------------------------------------------------------------------- validation


def detect_format(columns: list[str], cfg: RewardDataConfig, source: str) -> str:
    if cfg.format != "auto":
        return cfg.format
    if cfg.responses_column in columns:
        return "ranking"
    if cfg.chosen_column in columns and cfg.rejected_column in columns:
        return "pairwise"
    raise DataError(f"{source}: cannot tell the format from columns {', '.join(columns)}; expected "
                    f"`{cfg.chosen_column}` + `{cfg.rejected_column}` (pairwise) or `{cfg.responses_column}` "
                    f"(ranking), with `{cfg.prompt_column}` (set data.format and the column names)")


def _check_messages(msgs, where: str, what: str) -> None:
    if not isinstance(msgs, list) or not msgs:
        raise DataError(f"{where}: {what} must be a string or a non-empty list of {{role, content}} messages")
    for j, m in enumerate(msgs):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise DataError(f"{where}: {what}: message {j + 1} must be an object with string `role` and `content`")
        if m["role"] not in ("system", "user", "assistant"):
            raise DataError(f"{where}: {what}: message {j + 1} has role {m['role']!r}; use system, user or assistant")


def _prompt(value, where: str, column: str) -> Prompt:
    if isinstance(value, str):
        if not value.strip():
            raise DataError(f"{where}: empty prompt in column `{column}`")
        return value
    _check_messages(value, where, f"`{column}`")
    if value[-1]["role"] == "assistant":
        raise DataError(f"{where}: `{column}` ends with an assistant message; the prompt must end before the reply")
    return [{"role": m["role"], "content": m["content"]} for m in value]


def _response(value, where: str, column: str) -> str:
    """A response string (empty allowed: an empty reply is a reply), from a string or one assistant message."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
        _check_messages(value, where, f"`{column}`")
        if value[0]["role"] == "assistant":
            return value[0]["content"]
    raise DataError(f"{where}: `{column}` must be a string or one assistant message [{{\"role\": \"assistant\", "
                    f"\"content\": ...}}], got {json.dumps(value)[:80]}")


def _split_implicit(chosen, rejected, where: str, cfg: RewardDataConfig):
    """TRL's implicit prompt: two whole conversations sharing every message but the last."""
    if not (isinstance(chosen, list) and isinstance(rejected, list)):
        raise DataError(f"{where}: missing column `{cfg.prompt_column}` (a prompt is only implicit when "
                        f"`{cfg.chosen_column}` and `{cfg.rejected_column}` are whole conversations)")
    _check_messages(chosen, where, f"`{cfg.chosen_column}`")
    _check_messages(rejected, where, f"`{cfg.rejected_column}`")
    if len(chosen) < 2 or chosen[:-1] != rejected[:-1] or chosen[-1]["role"] != "assistant" or rejected[-1]["role"] != "assistant":
        raise DataError(f"{where}: with no `{cfg.prompt_column}` column, `{cfg.chosen_column}` and "
                        f"`{cfg.rejected_column}` must be the same conversation up to a different last assistant message")
    return chosen[:-1], chosen[-1:], rejected[-1:]


def normalise(row: dict, fmt: str, cfg: RewardDataConfig, where: str) -> Comparison:
    """A validated record as a Comparison (group ids are set later, per prompt)."""
    task = row.get("task") if isinstance(row.get("task"), str) else None
    if fmt == "pairwise":
        for col in (cfg.chosen_column, cfg.rejected_column):
            if row.get(col) is None:  # a JSONL row without the key reads as None
                raise DataError(f"{where}: missing column `{col}`")
        chosen, rejected = row[cfg.chosen_column], row[cfg.rejected_column]
        if row.get(cfg.prompt_column) is None:
            prompt, chosen, rejected = _split_implicit(chosen, rejected, where, cfg)
        else:
            prompt = row[cfg.prompt_column]
        prompt = _prompt(prompt, where, cfg.prompt_column)
        responses = [_response(chosen, where, cfg.chosen_column), _response(rejected, where, cfg.rejected_column)]
        if responses[0] == responses[1]:
            raise DataError(f"{where}: `{cfg.chosen_column}` and `{cfg.rejected_column}` are the same response")
        margin = row.get(cfg.margin_column)
        if margin is None:
            margin = 1.0
        elif isinstance(margin, bool) or not isinstance(margin, (int, float)) or margin != margin or abs(margin) == float("inf"):
            raise DataError(f"{where}: `{cfg.margin_column}` must be a finite number, got {margin!r}")
        return Comparison(prompt, responses, [(0, 1, float(margin))], task=task)
    if row.get(cfg.prompt_column) is None:
        raise DataError(f"{where}: missing column `{cfg.prompt_column}`")
    prompt = _prompt(row[cfg.prompt_column], where, cfg.prompt_column)
    ranked = row.get(cfg.responses_column)
    if not isinstance(ranked, list) or len(ranked) < 2:
        raise DataError(f"{where}: `{cfg.responses_column}` must be a list of at least 2 responses, best first")
    responses = [_response(r, where, f"{cfg.responses_column}[{k}]") for k, r in enumerate(ranked)]
    if len(set(responses)) != len(responses):
        raise DataError(f"{where}: `{cfg.responses_column}` repeats a response; a ranking needs distinct responses")
    return Comparison(prompt, responses, ranking_pairs(len(responses)), task=task)


def ranking_pairs(k: int) -> list[tuple[int, int, float]]:
    """All K-choose-2 (better, worse, rank gap) pairs of a ranking given best first: K=3 ->
    [(0, 1, 1.0), (0, 2, 2.0), (1, 2, 1.0)]."""
    return [(i, j, float(j - i)) for i in range(k) for j in range(i + 1, k)]


def prompt_key(prompt: Prompt) -> str:
    return json.dumps(prompt, sort_keys=True, ensure_ascii=False)


def assign_groups(*splits: list[Comparison]) -> None:
    """One group id per distinct prompt, shared across the given lists (first-seen order)."""
    ids: dict[str, int] = {}
    for records in splits:
        for c in records:
            c.group = ids.setdefault(prompt_key(c.prompt), len(ids))


def split_by_prompt(records: list[Comparison], test_size: float, seed: int,
                    source: str = "preference data") -> tuple[list[Comparison], list[Comparison]]:
    """Hold out a seeded share of the distinct prompts: all of a prompt's records go to one side."""
    keys = list(dict.fromkeys(prompt_key(c.prompt) for c in records))
    if len(keys) < 2:
        raise DataError(f"{source}: needs at least 2 distinct prompts to hold out a test split by prompt")
    _, test_idx = holdout(len(keys), test_size, seed)
    held = {keys[i] for i in test_idx}
    return ([c for c in records if prompt_key(c.prompt) not in held],
            [c for c in records if prompt_key(c.prompt) in held])


def prepare(cfg: RewardDataConfig, seed: int = 42) -> RewardData:
    """Read, validate and split preference data. Errors name the file and the row."""
    train_ds, train_source, test_ds, test_source = open_sources(cfg)
    fmt = detect_format(train_ds.column_names, cfg, train_source)
    train = [normalise(r, fmt, cfg, f"{train_source}: row {i + 1}") for i, r in enumerate(train_ds)]
    overlap = 0
    if test_ds is None:
        train, test = split_by_prompt(train, cfg.test_size, seed, train_source)
        test_source = f"{train_source} (held-out {cfg.test_size:.0%} of prompts)"
    else:
        test_fmt = detect_format(test_ds.column_names, cfg, test_source)
        test = [normalise(r, test_fmt, cfg, f"{test_source}: row {i + 1}") for i, r in enumerate(test_ds)]
        seen = {prompt_key(c.prompt) for c in train}
        overlap = sum(prompt_key(c.prompt) in seen for c in test)
    train, test = train[:cfg.max_train_samples or None], test[:cfg.max_test_samples or None]
    if not test:
        raise DataError(f"{test_source}: no held-out preference records")
    assign_groups(train, test)
    return RewardData(train, test, fmt, train_source, test_source, test_prompts_in_train=overlap)


# ----------------------------------------------------------------------------- tokenisation


def check_special_tokens(tokenizer) -> None:
    """The reward is read at the EOS that ends every sequence, found as the last non-pad token."""
    if tokenizer.eos_token_id is None:
        raise ConfigError("the tokenizer has no EOS token; a reward model reads its score at the EOS that ends "
                          "each response")
    if tokenizer.pad_token_id is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        raise ConfigError(f"the tokenizer pads with its EOS token ({tokenizer.eos_token!r}), so the EOS that ends a "
                          f"response would look like padding; pad with another token of the vocabulary "
                          f"(llmkit.models.loading.distinct_pad_token; recipes: model.pad_token=TOKEN)")


def prompt_ids(tokenizer, prompt: Prompt) -> list[int]:
    """Messages: the chat template with its generation prompt. A string: the tokenizer's ids (with
    its special tokens, e.g. BOS). These are PPO's query ids."""
    if isinstance(prompt, str):
        return list(tokenizer(prompt)["input_ids"])
    out = tokenizer.apply_chat_template(prompt, tokenize=True, add_generation_prompt=True, return_dict=True)
    return list(out["input_ids"])


def response_ids(tokenizer, response: str | Sequence[int]) -> list[int]:
    """A response string tokenised alone (no special tokens), or token ids as they are."""
    if isinstance(response, str):
        return list(tokenizer(response, add_special_tokens=False)["input_ids"]) if response else []
    return [int(t) for t in response]


def build_sequence(tokenizer, prompt: Prompt, response: str | Sequence[int]) -> list[int]:
    """prompt ids + response ids + EOS: what the reward model is trained on and what PPO scores.

    `response` is text or token ids (a PPO rollout). EOS is appended unless the response already
    ends with it, so a rollout that stopped at EOS is scored as it is, not with a second EOS.
    """
    check_special_tokens(tokenizer)
    reply = response_ids(tokenizer, response)
    eos = tokenizer.eos_token_id
    return prompt_ids(tokenizer, prompt) + reply + ([] if reply[-1:] == [eos] else [eos])


@dataclass
class TokenizedPairs:
    """Rows for TRL's RewardTrainer (`chosen_ids`, `rejected_ids`, optional `margin`), the group
    of each row (for the sampler), and the pairs dropped as longer than `max_length`."""

    rows: list[dict] = field(default_factory=list)
    groups: list[int] = field(default_factory=list)
    dropped: int = 0


def encode(tokenizer, c: Comparison) -> list[list[int]]:
    """Every response of a comparison as one sequence (each is tokenised once, however many pairs use it)."""
    return [build_sequence(tokenizer, c.prompt, r) for r in c.responses]


def tokenize_pairs(records: list[Comparison], tokenizer, max_length: int, margin: float = 0.0) -> TokenizedPairs:
    """All pairs of all records, in record order, so a prompt's pairs sit next to each other.

    `margin` > 0 adds a `margin` column = margin x the pair's strength (Llama 2's margin loss,
    -log sigmoid(r+ - r- - m)); 0 leaves it out (plain Bradley-Terry). Pairs whose longer side
    exceeds `max_length` are dropped and counted, as TRL's RewardConfig.max_length does.
    """
    out = TokenizedPairs()
    for c in records:
        seqs = encode(tokenizer, c)
        for better, worse, strength in c.pairs:
            chosen, rejected = seqs[better], seqs[worse]
            if max(len(chosen), len(rejected)) > max_length:
                out.dropped += 1
                continue
            row = {"chosen_ids": chosen, "rejected_ids": rejected}
            if margin:
                row["margin"] = margin * strength
            out.rows.append(row)
            out.groups.append(c.group)
    return out
