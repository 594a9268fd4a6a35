"""Perplexity of a causal LM on texts, with a strided sliding window for texts longer than the model.

    ppl = perplexity(model, tokenizer, texts, stride=512, max_length=1024)
    ppl["perplexity"], ppl["nll"], ppl["bits_per_token"], ppl["num_tokens"]

perplexity = exp(mean over scored tokens of -log p(token | left context)); `nll` is that mean in
nats, `bits_per_token` = nll / ln 2. Every token but a text's first is scored exactly once (the
first has no context to be predicted from; a tokenizer that adds BOS makes the first real token
scored too).

Long texts follow the transformers perplexity guide's sliding window: windows of `max_length`
tokens end every `stride` tokens; a window scores only the tokens the previous window did not,
each with all the left context the window holds (at least max_length - stride tokens once past the
first window). stride = max_length - 1 gives nearly disjoint windows (fast, little context); smaller
strides give more context per token at more compute. Unlike the guide's snippet, which averages per-window mean
losses, the sum runs over tokens, so the result is exact whatever the window boundaries.

Windows of all texts are batched together. Padding is masked and position ids are passed
explicitly, so batch size and padding side do not change the result (tested).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from llmkit.errors import EvalInputError


def perplexity_from_logprobs(logprobs: Sequence[float]) -> float:
    """exp of the mean negative log-probability: the definition, for hand-worked examples."""
    if not len(logprobs):
        raise EvalInputError("perplexity: no token log-probabilities given")
    return math.exp(-sum(logprobs) / len(logprobs))


def windows(ids: list[int], max_length: int, stride: int) -> list[tuple[list[int], int]]:
    """(window token ids, number of tokens at its end that it scores) covering one text.

    The first window scores all its tokens but the first; each later one moves its end `stride`
    tokens on and scores those, with the max_length - stride tokens before them as context."""
    if len(ids) < 2:
        return []
    end = min(max_length, len(ids))
    out = [(ids[:end], end - 1)]
    while end < len(ids):
        new_end = min(end + stride, len(ids))
        out.append((ids[max(0, new_end - max_length):new_end], new_end - end))
        end = new_end
    return out


def _model_max_length(model, tokenizer) -> int:
    n = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if n is None and getattr(tokenizer, "model_max_length", 0) and tokenizer.model_max_length < 1_000_000:
        n = tokenizer.model_max_length
    return int(n or 1024)


def _takes_position_ids(model) -> bool:
    """Whether explicit position ids can go to the model (then left padding cannot shift positions).
    A PEFT prompt-learning model prepends virtual tokens, so positions are left to it."""
    if getattr(model, "active_peft_config", None) is not None and model.active_peft_config.is_prompt_learning:
        return False
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "position_ids" in inspect.signature(base.forward).parameters


@torch.inference_mode()
def perplexity(model, tokenizer, texts: Sequence[str], *, stride: int | None = None, max_length: int | None = None,
               batch_size: int = 8, padding_side: str | None = None, add_special_tokens: bool = True,
               progress: bool = True) -> dict:
    """Corpus perplexity of `texts` under `model` (a causal LM); see the module docstring.

    stride: tokens between window starts (default max_length // 2); max_length: window size
    (default: the model's max positions); padding_side: "right" or "left" (default the
    tokenizer's; the result is the same either way)."""
    if isinstance(texts, str) or not len(texts):
        raise EvalInputError("perplexity: give a non-empty list of texts")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise EvalInputError(f"perplexity: text at row {i} is {type(t).__name__}, expected a string")
    max_length = max_length or _model_max_length(model, tokenizer)
    stride = stride or max(1, max_length // 2)
    if max_length < 2 or not 1 <= stride < max_length:
        raise EvalInputError(f"perplexity: need max_length >= 2 and 1 <= stride < max_length (got max_length="
                             f"{max_length}, stride={stride}); a window needs one token of context before its first target")
    side = padding_side or getattr(tokenizer, "padding_side", "right") or "right"
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)

    work = [w for t in texts for w in windows(tokenizer(t, add_special_tokens=add_special_tokens)["input_ids"],
                                              max_length, stride)]
    if not work:
        raise EvalInputError("perplexity: every text is shorter than 2 tokens; nothing to score")
    work.sort(key=lambda w: len(w[0]))  # similar lengths together: less padding
    takes_positions = _takes_position_ids(model)
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    total_nll, total_tokens = 0.0, 0
    for i in tqdm(range(0, len(work), batch_size), desc="perplexity", leave=False, disable=not progress):
        chunk = work[i:i + batch_size]
        width = max(len(w) for w, _ in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        scored = torch.zeros((len(chunk), width), dtype=torch.bool)
        for j, (w, n) in enumerate(chunk):
            start = width - len(w) if side == "left" else 0
            ids[j, start:start + len(w)] = torch.tensor(w)
            mask[j, start:start + len(w)] = 1
            scored[j, start + len(w) - n:start + len(w)] = True
        kwargs = {"input_ids": ids.to(dev), "attention_mask": mask.to(dev)}
        if takes_positions:
            kwargs["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0).to(dev)
        logits = model(**kwargs).logits[:, -width:]  # (B, T, V); the logit at t predicts token t + 1
        targets = scored[:, 1:].to(dev)
        logp = torch.log_softmax(logits[:, :-1][targets].float(), dim=-1)
        total_nll -= logp.gather(-1, ids[:, 1:].to(dev)[targets].unsqueeze(-1)).sum().item()
        total_tokens += int(targets.sum())
    model.train(was_training)
    nll = total_nll / total_tokens
    return {"perplexity": math.exp(nll), "nll": nll, "bits_per_token": nll / math.log(2), "num_tokens": total_tokens,
            "max_length": max_length, "stride": stride}
