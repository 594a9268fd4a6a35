"""The local backend of Self-Instruct: a transformers model generating in batches, with OpenAI's
sampling options (llmkit/selfinstruct/backends.py has the config, the protocol and the OpenAI backend)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import LogitsProcessor, StoppingCriteria

from llmkit.errors import LlmkitError
from llmkit.selfinstruct.backends import BackendConfig, Completion, _check_request, cut_at_stop

# ----------------------------------------------------------------------------- transformers


class AdditivePenaltyLogitsProcessor(LogitsProcessor):
    """OpenAI's presence/frequency penalties: logit -= presence * [count > 0] + frequency * count,
    where count is how often each token occurs among the tokens generated so far (prompt excluded)."""

    def __init__(self, prompt_len: int, presence_penalty: float = 0.0, frequency_penalty: float = 0.0):
        self.prompt_len = prompt_len
        self.presence_penalty = presence_penalty
        self.frequency_penalty = frequency_penalty

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        generated = input_ids[:, self.prompt_len:]  # (B, T_gen); left padding: every prompt ends at prompt_len
        counts = torch.zeros_like(scores).scatter_add_(1, generated, torch.ones_like(generated, dtype=scores.dtype))
        return scores - self.presence_penalty * (counts > 0).to(scores.dtype) - self.frequency_penalty * counts


def _continuation(tokenizer, context: list[int], new: list[int]) -> str:
    """Decode `new` as it reads after `context`: SentencePiece tokenizers drop a leading space when
    decoding starts at a token, so decode context + new and strip the decoded context."""
    head = tokenizer.decode(context, skip_special_tokens=True)
    full = tokenizer.decode(context + new, skip_special_tokens=True)
    return full[len(head):] if full.startswith(head) else tokenizer.decode(new, skip_special_tokens=True)


class _StopOnText(StoppingCriteria):
    """Done when a stop string occurs in the generated text of a row (prompt excluded). Each step
    decodes a window just wide enough to hold any stop string (a token is at least one byte); the
    cut after decoding the whole continuation stays the authority on where the text ends."""

    CONTEXT = 4  # tokens decoded before the window, only so that its first token decodes as in context

    def __init__(self, tokenizer, prompt_len: int, stop: Sequence[str]):
        self.tokenizer, self.prompt_len, self.stop = tokenizer, prompt_len, list(stop)
        self.window = max(len(s.encode()) for s in self.stop) + 2

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        lo = max(self.prompt_len, input_ids.shape[1] - self.window)
        rows = input_ids[:, max(lo - self.CONTEXT, 0):].tolist()
        n_ctx = lo - max(lo - self.CONTEXT, 0)
        done = [cut_at_stop(_continuation(self.tokenizer, r[:n_ctx], r[n_ctx:]), self.stop)[1] for r in rows]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class TransformersBackend:
    """Batched `generate()` on a local causal LM, with OpenAI request semantics (see module docstring)."""

    def __init__(self, cfg: BackendConfig):
        from llmkit.models.trained import load_causal

        self.cfg = cfg
        self.name = f"transformers:{cfg.model}"
        self.model, self.tokenizer = load_causal(cfg.model)
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
        config = self.model.config
        self.positions = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)

    def complete(self, prompts: list[str], *, max_tokens: int, temperature: float = 0.0, top_p: float = 1.0,
                 stop: Sequence[str] = (), presence_penalty: float = 0.0, frequency_penalty: float = 0.0,
                 seed: int | None = None) -> list[Completion]:
        stop = _check_request(max_tokens, temperature, top_p, stop)
        dev = next(self.model.parameters()).device
        out: list[Completion] = []
        # fork_rng restores the caller's RNG state afterwards; seeding makes sampling reproducible.
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            if seed is not None:
                torch.manual_seed(seed)
            for i in range(0, len(prompts), self.cfg.batch_size):
                out += self._batch(prompts[i:i + self.cfg.batch_size], dev, max_tokens, temperature, top_p, stop,
                                   presence_penalty, frequency_penalty)
        return out

    @torch.no_grad()
    def _batch(self, prompts, dev, max_tokens, temperature, top_p, stop, presence, frequency) -> list[Completion]:
        tok = self.tokenizer
        ids = [tok(p).input_ids for p in prompts]
        pad = tok.pad_token_id
        width = max(len(p) for p in ids)
        if self.positions and width + max_tokens > self.positions:  # vLLM refuses these too (HTTP 400)
            raise LlmkitError(f"{self.name}: a prompt of {width} tokens plus max_tokens={max_tokens} exceeds the "
                              f"model's {self.positions} positions; shorten the prompt (fewer in-context "
                              f"examples) or lower max_tokens")
        input_ids = torch.full((len(ids), width), pad)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for j, p in enumerate(ids):  # left padding: every prompt ends where generation starts
            input_ids[j, width - len(p):], mask[j, width - len(p):] = torch.tensor(p, dtype=torch.long), 1
        processors = [AdditivePenaltyLogitsProcessor(width, presence, frequency)] if presence or frequency else []
        criteria = [_StopOnText(tok, width, stop)] if stop else []
        sampling = dict(do_sample=True, temperature=temperature, top_p=top_p, top_k=0) if temperature > 0 \
            else dict(do_sample=False)
        gen = self.model.generate(
            input_ids=input_ids.to(dev), attention_mask=mask.to(dev), max_new_tokens=max_tokens,
            pad_token_id=pad, eos_token_id=sorted(self.eos_ids), logits_processor=processors,
            stopping_criteria=criteria, **sampling,
        )
        results = []
        for p, row in zip(ids, gen[:, width:].tolist()):
            ends = [k for k, t in enumerate(row) if t in self.eos_ids]
            eos_hit = bool(ends)
            new = row[:ends[0]] if eos_hit else row
            text, stopped = cut_at_stop(_continuation(tok, p[-_StopOnText.CONTEXT:], new), stop)
            # A row stops early only by EOS or a stop string; otherwise it ran to max_tokens.
            results.append(Completion(text, "stop" if stopped or eos_hit else "length"))
        return results


