"""Text-completion backends for Self-Instruct generation: a prompt is continued until a stop string,
EOS or `max_tokens`, the same request shape for a local model and for an OpenAI-compatible server.

    backend = make_backend(BackendConfig(kind="transformers", model="smollm2"))
    [c] = backend.complete(["Task 1: ...\\nTask 2:"], max_tokens=64, stop=["\\n\\n"])
    c.text, c.finish_reason        # continuation cut before the stop string; "stop" or "length"

Backends
    transformers  `TransformersBackend`: `llmkit.models.trained.load_causal` (short names, local
                  directories, a run's adapter directory), batched `generate()` with left padding.
    openai        `OpenAIBackend`: any OpenAI-compatible server (vLLM, llama.cpp, OpenAI).
                  `api=completions` posts to /v1/completions (a raw continuation, what both
                  reference pipelines used); `api=chat` sends the prompt as one user message to
                  /v1/chat/completions, for chat-only endpoints. Requests run in a thread pool of
                  `concurrency`; 429, 5xx, timeouts and connection errors are retried with
                  exponential backoff (a server's Retry-After wins); results come back in prompt order.

Parameter mapping (OpenAI semantics are the reference; the transformers backend reproduces them)
    temperature   0 means greedy (`do_sample=False`); > 0 samples with `top_p` (top-k off: OpenAI
                  has none, while transformers' default is top_k=50).
    stop          matched in the generated text only, never across the prompt boundary; the text
                  is cut before the earliest stop string, which is not included. transformers'
                  own `stop_strings=` is not used: its StopStringCriteria looks at the sequence
                  tail including the prompt, so a prompt ending in "s" with stop "s the" stops
                  after a generated " the" (seen with transformers 5.23), which no OpenAI server
                  does. `_StopOnText` decodes only generated tokens instead. The chat API gets the
                  stop strings too, and its reply is cut client-side as well.
    penalties     OpenAI's additive penalties on the logits, counting generated tokens only:
                      logit[t] -= presence_penalty * [count[t] > 0] + frequency_penalty * count[t]
                  (https://platform.openai.com/docs/advanced-usage, "frequency and presence
                  penalties"). `GenerationConfig` has only the multiplicative `repetition_penalty`
                  (CTRL, arXiv:1909.05858), which also counts prompt tokens, so
                  `AdditivePenaltyLogitsProcessor` implements the OpenAI form. transformers runs
                  custom processors before temperature and top-p, as vLLM does.
    finish_reason the server's value for openai ("stop" when a stop string was cut client-side);
                  derived for transformers: "stop" when EOS or a stop string ended the text,
                  "length" when `max_tokens` tokens came without either.
    seed          transformers: the torch RNG is seeded (inside `fork_rng`, so the caller's RNG
                  state is untouched); same seed and prompts give the same outputs. openai: sent
                  as `seed` (servers may treat it as best effort).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal, Protocol

from llmkit.config import opt
from llmkit.errors import ConfigError, LlmkitError


@dataclass
class Completion:
    text: str  # the continuation only, cut before the first stop string (not included)
    finish_reason: str  # "stop" (a stop string or EOS ended it) or "length" (hit max_tokens)


@dataclass
class BackendConfig:
    kind: Literal["transformers", "openai"] = opt("transformers", "Where completions come from: a local model (transformers) or an OpenAI-compatible server (openai).")
    model: str = opt("smollm2", "transformers: short name (smollm2, pico-llama, tiny-llama, tiny-gpt2), local directory or a run's adapter directory. openai: the model name sent to the server.")
    base_url: str | None = opt(None, "openai: server URL, e.g. http://127.0.0.1:8000/v1. Default: env OPENAI_BASE_URL.")
    api_key: str | None = opt(None, "openai: API key. Default: env OPENAI_API_KEY, else \"EMPTY\" (local servers).")
    api: Literal["completions", "chat"] = opt("completions", "openai: /v1/completions (raw continuation) or /v1/chat/completions (the prompt as one user message).")
    batch_size: int = opt(8, "transformers: prompts per generate() call.")
    concurrency: int = opt(4, "openai: requests in flight at once.")
    timeout: float = opt(60.0, "openai: seconds allowed per request attempt.")
    max_retries: int = opt(4, "openai: retries on 429, 5xx, timeouts and connection errors.")
    retry_backoff: float = opt(0.5, "openai: seconds before the first retry, doubling each retry (at most 30 s); a server's Retry-After wins.")

    def validate(self) -> None:
        for key in ("batch_size", "concurrency"):
            if getattr(self, key) < 1:
                raise ConfigError(f"backend.{key} must be >= 1, got {getattr(self, key)}")
        if self.timeout <= 0:
            raise ConfigError(f"backend.timeout must be > 0 seconds, got {self.timeout}")
        if self.max_retries < 0 or self.retry_backoff < 0:
            raise ConfigError("backend.max_retries and backend.retry_backoff must be >= 0")


class Backend(Protocol):
    name: str  # for provenance, e.g. "transformers:pico-llama"

    def complete(self, prompts: list[str], *, max_tokens: int, temperature: float = 0.0, top_p: float = 1.0,
                 stop: Sequence[str] = (), presence_penalty: float = 0.0, frequency_penalty: float = 0.0,
                 seed: int | None = None) -> list[Completion]: ...


def make_backend(cfg: BackendConfig) -> Backend:
    cfg.validate()
    if cfg.kind == "transformers":
        from llmkit.selfinstruct.local import TransformersBackend

        return TransformersBackend(cfg)
    if cfg.kind == "openai":
        return OpenAIBackend(cfg)
    raise ConfigError(f"backend.kind must be transformers or openai, got {cfg.kind!r}")


# ----------------------------------------------------------------------------- shared helpers


def _check_request(max_tokens: int, temperature: float, top_p: float, stop: Sequence[str] | str) -> list[str]:
    """Validate what every backend gets; -> the stop strings as a list (one string allowed, as OpenAI does)."""
    if max_tokens < 1:
        raise LlmkitError(f"max_tokens must be >= 1, got {max_tokens}")
    if temperature < 0:
        raise LlmkitError(f"temperature must be >= 0, got {temperature}")
    if not 0 <= top_p <= 1:
        raise LlmkitError(f"top_p must be in [0, 1], got {top_p}")
    return [s for s in ([stop] if isinstance(stop, str) else stop) if s]


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """-> (text before the earliest stop string, whether one was found)."""
    hits = [i for i in (text.find(s) for s in stop if s) if i >= 0]
    return (text[:min(hits)], True) if hits else (text, False)


# ----------------------------------------------------------------------------- openai


_HINTS = {
    401: "check backend.api_key or OPENAI_API_KEY",
    403: "check backend.api_key or OPENAI_API_KEY and the key's permissions",
    404: "check backend.base_url (it usually ends in /v1), backend.model, and that the server offers this "
         "endpoint (backend.api chooses completions or chat)",
    429: "the server is rate limiting; lower backend.concurrency or raise backend.max_retries",
}


class OpenAIBackend:
    """An OpenAI-compatible server through the `openai` SDK; retries are ours (SDK's are off) so that
    the backoff is configurable and the final error names what to check."""

    def __init__(self, cfg: BackendConfig):
        try:
            import openai
        except ImportError:
            raise LlmkitError("backend.kind=openai needs the openai package: pip install openai") from None
        self.cfg = cfg
        self.name = f"openai:{cfg.model}"
        self.base_url = (cfg.base_url or os.environ.get("OPENAI_BASE_URL") or "").rstrip("/")
        if not self.base_url:
            raise LlmkitError("backend.kind=openai needs a server URL: set backend.base_url "
                              "(e.g. http://127.0.0.1:8000/v1) or the OPENAI_BASE_URL environment variable")
        api_key = cfg.api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self._openai = openai
        self._client = openai.OpenAI(base_url=self.base_url, api_key=api_key, timeout=cfg.timeout, max_retries=0)
        self.endpoint = f"{self.base_url}/{'chat/completions' if cfg.api == 'chat' else 'completions'}"

    def complete(self, prompts: list[str], *, max_tokens: int, temperature: float = 0.0, top_p: float = 1.0,
                 stop: Sequence[str] = (), presence_penalty: float = 0.0, frequency_penalty: float = 0.0,
                 seed: int | None = None) -> list[Completion]:
        stop = _check_request(max_tokens, temperature, top_p, stop)
        params = dict(model=self.cfg.model, max_tokens=max_tokens, temperature=temperature, top_p=top_p)
        # Only what is set, so that servers which reject an unsupported field still work.
        if stop:
            params["stop"] = stop
        if presence_penalty:
            params["presence_penalty"] = presence_penalty
        if frequency_penalty:
            params["frequency_penalty"] = frequency_penalty
        if seed is not None:
            params["seed"] = seed
        pool = ThreadPoolExecutor(max_workers=self.cfg.concurrency)
        try:
            futures = [pool.submit(self._one, p, params, stop) for p in prompts]
            return [f.result() for f in futures]  # prompt order, whatever order they finished in
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # after an error, queued prompts do not start

    def _one(self, prompt: str, params: dict, stop: list[str]) -> Completion:
        if self.cfg.api == "chat":
            resp = self._with_retries(lambda: self._client.chat.completions.create(
                messages=[{"role": "user", "content": prompt}], **params))
            choice = resp.choices[0]
            text = choice.message.content or ""
        else:
            resp = self._with_retries(lambda: self._client.completions.create(prompt=prompt, **params))
            choice = resp.choices[0]
            text = choice.text or ""
        # Servers apply stop strings themselves; cutting again costs nothing and covers chat
        # endpoints that ignore `stop`.
        text, cut = cut_at_stop(text, stop)
        return Completion(text, "stop" if cut else (choice.finish_reason or "stop"))

    def _with_retries(self, call):
        oa = self._openai
        for attempt in range(self.cfg.max_retries + 1):
            try:
                return call()
            except oa.APIStatusError as e:
                retryable = e.status_code == 429 or e.status_code >= 500
                if not retryable or attempt == self.cfg.max_retries:
                    raise LlmkitError(self._status_message(e, attempt + 1)) from None
                delay = _retry_after(e.response.headers)
            except (oa.APITimeoutError, oa.APIConnectionError) as e:
                if attempt == self.cfg.max_retries:
                    raise LlmkitError(self._transport_message(e, attempt + 1)) from None
                delay = None
            if delay is None:
                delay = min(self.cfg.retry_backoff * 2 ** attempt, 30.0) * (1 - 0.25 * random.random())
            time.sleep(delay)
        raise AssertionError("unreachable")

    def _status_message(self, e, attempts: int) -> str:
        body = " ".join(_error_text(e).split())[:300]
        hint = _HINTS.get(e.status_code, "check the server's log" if e.status_code >= 500
                          else "check backend.model and the sampling parameters the server accepts")
        return (f"POST {self.endpoint} answered HTTP {e.status_code} ({_attempts(attempts)}): {body}; {hint}")

    def _transport_message(self, e, attempts: int) -> str:
        if isinstance(e, self._openai.APITimeoutError):
            what = (f"timed out after {self.cfg.timeout:g} s ({_attempts(attempts)}); raise backend.timeout "
                    f"or lower backend.concurrency if the server is overloaded")
        else:
            cause = e.__cause__ or e
            what = (f"could not connect ({_attempts(attempts)}: {type(cause).__name__}); is the server "
                    f"running, and does backend.base_url (or OPENAI_BASE_URL) point at it?")
        return f"POST {self.endpoint} {what}"


def _attempts(n: int) -> str:
    return "1 attempt" if n == 1 else f"{n} attempts"


def _retry_after(headers) -> float | None:
    """Seconds from a Retry-After header (numbers only; dates fall back to our backoff), capped at 60."""
    try:
        return min(max(float(headers.get("retry-after")), 0.0), 60.0)
    except (TypeError, ValueError):
        return None


def _error_text(e) -> str:
    """The server's own message: OpenAI-style {"error": {"message": ...}}, else the raw body."""
    body = e.body
    if isinstance(body, dict):
        err = body.get("error", body)
        msg = err.get("message") if isinstance(err, dict) else err
        if msg:
            return str(msg)
    return e.response.text or e.message or ""

