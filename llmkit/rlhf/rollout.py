"""Rollouts for PPO: sample responses from the policy and compute, with ONE function, the
log-probabilities that the rollout, the reference and every training step use.

Layout of a batch (brief §2.1): queries left-padded to Q tokens, responses right-padded to R
tokens, concatenated into (B, Q + R) with one attention mask and explicit position ids, so left
padding never shifts positions (padding side changes nothing; tested). The logits at positions
Q-1 .. Q+R-2 predict the R response tokens. `response_mask` is 1 on the response tokens up to and
including the first EOS (or on all of them when the response never emitted EOS), 0 after; it is
the one mask used for log-probs, values, rewards, advantages and both losses.

Log-probs are taken from a plain forward pass at the sampling temperature (logits / T), never
from `generate()`'s scores, so the old log-probs equal the first training step's exactly and the
first PPO ratio is 1 (tested).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch

from llmkit.rlhf.core import entropy_from_logits, logprobs_from_logits, response_mask_from_ids
from llmkit.rlhf.reward_model import pad_batch


@dataclass
class Rollout:
    query: torch.Tensor  # (B, Q) left-padded
    query_mask: torch.Tensor  # (B, Q)
    response: torch.Tensor  # (B, R) right-padded with pad after EOS
    response_mask: torch.Tensor  # (B, R) 1 up to and including EOS
    has_eos: torch.Tensor  # (B,) bool

    def __len__(self) -> int:
        return self.query.shape[0]

    def select(self, idx) -> Rollout:
        return Rollout(self.query[idx], self.query_mask[idx], self.response[idx], self.response_mask[idx], self.has_eos[idx])


def response_mask(response: torch.Tensor, eos_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(mask as 0/1 long, has_eos): `core.response_mask_from_ids` for one stop token."""
    mask, has_eos = response_mask_from_ids(response, eos_id)
    return mask.long(), has_eos


@torch.no_grad()
def sample(policy, queries: list[list[int]], *, pad_id: int, eos_id: int, max_new_tokens: int,
           temperature: float, top_p: float = 1.0) -> Rollout:
    """Sample one response per query (pure temperature sampling: no top-k, top-p as given)."""
    dev = next(policy.parameters()).device
    query, qmask = pad_batch(queries, pad_id, side="left")
    out = policy.generate(input_ids=query.to(dev), attention_mask=qmask.to(dev), do_sample=True, temperature=temperature,
                          top_k=0, top_p=top_p, max_new_tokens=max_new_tokens, min_new_tokens=1,
                          pad_token_id=pad_id, eos_token_id=eos_id)
    response = out[:, query.shape[1]:].cpu()
    if response.shape[1] == 0:  # every row stopped at once (cannot happen with min_new_tokens=1)
        response = torch.full((len(queries), 1), eos_id)
    mask, has_eos = response_mask(response, eos_id)
    response = torch.where(mask.bool(), response, torch.full_like(response, pad_id))
    return Rollout(query, qmask, response, mask, has_eos)


def _inputs(r: Rollout, dev):
    ids = torch.cat([r.query, r.response], dim=1).to(dev)
    mask = torch.cat([r.query_mask, r.response_mask], dim=1).to(dev)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids, mask, positions


def _takes_logits_to_keep(model) -> bool:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(base.forward).parameters


def forward_logprobs(model, r: Rollout, temperature: float, *, with_entropy: bool = False):
    """Per-token log-probs of the response tokens under `model` at `temperature` ((B, R), 0 on
    padding); with_entropy also returns the mean entropy over valid tokens.

    Only the last R + 1 positions get logits (transformers' `logits_to_keep`, where the model takes
    it): the responses sit at the end of every row, and the LM head over the query positions would
    be most of a small model's LM-head work."""
    dev = next(model.parameters()).device
    ids, mask, positions = _inputs(r, dev)
    keep = r.response.shape[1] + 1
    extra = {"logits_to_keep": keep} if _takes_logits_to_keep(model) else {}
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, **extra).logits[:, -keep:-1].float()
    resp_mask = r.response_mask.to(dev)
    logp = logprobs_from_logits(logits, r.response.to(dev), temperature) * resp_mask
    if with_entropy:
        return logp, entropy_from_logits(logits, resp_mask, temperature)
    return logp


def forward_values(value_model, r: Rollout) -> torch.Tensor:
    """Per-token values (B, R) of the states before each response token; 0 on padding."""
    dev = next(value_model.parameters()).device
    ids, mask, positions = _inputs(r, dev)
    q = r.query.shape[1]
    values = value_model(input_ids=ids, attention_mask=mask, position_ids=positions)[:, q - 1:-1]
    return values * r.response_mask.to(dev)


def scored_sequences(r: Rollout, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Query (unpadded) + response up to and including EOS, right-padded: what the reward model
    scores, the same ids `reward_data.build_sequence` gives it in training."""
    seqs = [r.query[i][r.query_mask[i].bool()].tolist() + r.response[i][r.response_mask[i].bool()].tolist()
            for i in range(len(r))]
    return pad_batch(seqs, pad_id, side="right")
