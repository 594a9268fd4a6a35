"""Held-out figures for a causal LM: loss on the tokens training optimises, and exact match of
greedy generations against reference answers (batched, left-padded)."""

from __future__ import annotations

import math

import torch
from tqdm.auto import tqdm


@torch.no_grad()
def completion_loss(model, examples: list[dict], pad_id: int, batch_size: int = 16) -> dict:
    """Mean NLL per loss-carrying token over `examples` ({input_ids, labels}); padding never counts."""
    model.eval()
    dev = next(model.parameters()).device
    total_nll, total_tokens = 0.0, 0
    for i in range(0, len(examples), batch_size):
        chunk = examples[i:i + batch_size]
        width = max(len(e["input_ids"]) for e in chunk)
        ids = torch.full((len(chunk), width), pad_id)
        labels = torch.full((len(chunk), width), -100)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for j, e in enumerate(chunk):  # right padding
            n = len(e["input_ids"])
            ids[j, :n], labels[j, :n], mask[j, :n] = torch.tensor(e["input_ids"]), torch.tensor(e["labels"]), 1
        logits = model(input_ids=ids.to(dev), attention_mask=mask.to(dev)).logits  # (B, T, V)
        logits = logits[:, logits.shape[1] - width:]  # soft prompt tuning prepends virtual positions
        # the logit at position t predicts token t + 1; only positions with a label are scored, so
        # no (B, T, V) copy is made beyond the logits themselves (49k-word vocabularies: ~200 KB a position)
        target = labels[:, 1:].to(dev)
        keep = target != -100  # (B, T-1)
        nll = torch.nn.functional.cross_entropy(logits[:, :-1][keep].float(), target[keep], reduction="sum")
        total_nll += nll.item()
        total_tokens += int(keep.sum())
    loss = total_nll / max(total_tokens, 1)
    return {"loss": loss, "perplexity": math.exp(min(loss, 50)), "tokens": total_tokens}


@torch.no_grad()
def generate(model, tokenizer, prompts: list[list[int]], max_new_tokens: int = 32, batch_size: int = 16,
             desc: str = "generate", *, temperature: float = 0.0, progress: bool = True) -> list[str]:
    """Continuations of token-id prompts (greedy, or sampled when temperature > 0), decoded without
    special tokens."""
    model.eval()
    dev = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    outs = []
    sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
    for i in tqdm(range(0, len(prompts), batch_size), desc=desc, leave=False, disable=not progress):
        chunk = prompts[i:i + batch_size]
        width = max(len(p) for p in chunk)
        ids = torch.full((len(chunk), width), pad)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for j, p in enumerate(chunk):  # left padding: every prompt ends where generation starts
            ids[j, width - len(p):], mask[j, width - len(p):] = torch.tensor(p), 1
        gen = model.generate(input_ids=ids.to(dev), attention_mask=mask.to(dev), max_new_tokens=max_new_tokens,
                             pad_token_id=pad, eos_token_id=tokenizer.eos_token_id, **sampling)
        outs += tokenizer.batch_decode(gen[:, width:], skip_special_tokens=True)
    return outs


def normalise_answer(text: str) -> str:
    """Exact match compares answers after stripping surrounding whitespace only."""
    return text.strip()


def exact_match(predictions: list[str], references: list[str]) -> float:
    if not references:
        return float("nan")
    return sum(normalise_answer(p) == normalise_answer(r) for p, r in zip(predictions, references)) / len(references)


def exact_match_multi(predictions, references) -> float:
    """exact_match with one string or a list of strings per row (any one may match); checked inputs."""
    from llmkit.eval._inputs import check_pairs

    preds, refs = check_pairs(predictions, references, metric="exact_match")
    return sum(any(normalise_answer(p) == normalise_answer(r) for r in rs) for p, rs in zip(preds, refs)) / len(preds)
