"""Completion backends: the transformers backend on tiny-llama (batching, stop strings, finish
reasons, seeds, the additive penalty processor) and the OpenAI backend against a loopback server
that runs the same tiny model (tests/openai_server.py), with injected 429s, 500s and timeouts."""

import socket
import time

import pytest
import torch
from openai_server import OpenAIServer

from llmkit.errors import LlmkitError
from llmkit.selfinstruct.backends import BackendConfig, OpenAIBackend, cut_at_stop, make_backend
from llmkit.selfinstruct.local import (
    AdditivePenaltyLogitsProcessor,
    TransformersBackend,
    _StopOnText,
)

PROMPTS = [
    "Task 1: list three fruits.\nTask 2:",
    "The quick brown fox",
    "Once upon a time there was a small village near the sea",
    "Classify the sentiment as positive or negative.",
    "What is the capital of France?",
]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # A 64-wide model gains nothing from intra-op threads, and on a busy 2-core machine their
    # spinning made generation ~100x slower (3 ms per 64x128 matmul).
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def backend(one_thread):
    return TransformersBackend(BackendConfig(model="tiny-llama", batch_size=2))


@pytest.fixture(scope="module")
def server(backend):
    with OpenAIServer(backend) as srv:
        yield srv


@pytest.fixture
def client(server):
    server.reset()

    def _client(**kw):
        cfg = dict(kind="openai", model="tiny-llama", base_url=server.base_url, retry_backoff=0.01, timeout=10.0)
        return make_backend(BackendConfig(**{**cfg, **kw}))

    return _client


# ----------------------------------------------------------------------------- transformers


def test_batched_equals_one_by_one_and_length(backend):
    batched = backend.complete(PROMPTS, max_tokens=16)  # batch_size=2: three generate() calls, left padded
    single = [backend.complete([p], max_tokens=16)[0] for p in PROMPTS]
    assert batched == single
    assert backend.name == "transformers:tiny-llama"
    # The random-init model never emits EOS in 16 tokens here, so every row ran to max_tokens.
    assert [c.finish_reason for c in batched] == ["length"] * len(PROMPTS)
    assert all(c.text for c in batched)


def test_stop_strings_cut_text_and_finish_stop(backend):
    full = backend.complete(PROMPTS[:3], max_tokens=24)
    text = full[0].text
    stop = text[8:11]  # a stop string the greedy continuation of PROMPTS[0] is known to contain
    first = text.find(stop)
    out = backend.complete(PROMPTS[:3], max_tokens=24, stop=["never-generated", stop])
    assert out[0].text == text[:first] and out[0].finish_reason == "stop"
    # The other rows of the batch run on, unaffected, unless they contain the stop string too.
    for got, ref in zip(out[1:], full[1:]):
        assert got == (ref if stop not in ref.text else got)
        assert stop not in got.text
    # Two stop strings: the earliest occurrence wins, whichever is listed first.
    later = text[first + 5:first + 8]
    assert backend.complete(PROMPTS[:1], max_tokens=24, stop=[later, stop])[0].text == text[:first]


def test_eos_ends_the_text_with_finish_stop(backend):
    # Declare the 5th greedily generated token an EOS: generation must end just before it.
    tok = backend.tokenizer
    prompt = tok(PROMPTS[0]).input_ids
    gen = backend.model.generate(input_ids=torch.tensor([prompt]), max_new_tokens=16, do_sample=False)[0, len(prompt):]
    eos = gen[4].item()
    cut = gen.tolist().index(eos)
    saved = backend.eos_ids
    backend.eos_ids = saved | {eos}
    try:
        [c] = backend.complete(PROMPTS[:1], max_tokens=16)
    finally:
        backend.eos_ids = saved
    assert c.finish_reason == "stop"
    assert c.text == tok.decode(prompt + gen[:cut].tolist())[len(tok.decode(prompt)):]


def test_stop_string_never_matches_across_the_prompt_boundary(backend):
    tok = backend.tokenizer
    prompt, generated = tok("hello wor").input_ids, tok("ld again").input_ids
    ids = torch.tensor([prompt + generated])
    # "world" needs the prompt's "wor": not a match (OpenAI semantics); "again" is generated: a match.
    assert _StopOnText(tok, len(prompt), ["world"])(ids, None).tolist() == [False]
    assert _StopOnText(tok, len(prompt), ["again"])(ids, None).tolist() == [True]
    assert cut_at_stop("abcabc", ["c", "b"]) == ("a", True)
    assert cut_at_stop("abc", ["x", ""]) == ("abc", False)


def test_prompt_longer_than_the_context_is_refused(backend):
    n = backend.model.config.max_position_embeddings
    with pytest.raises(LlmkitError, match=f"exceeds the model's {n} positions"):
        backend.complete(["word " * n], max_tokens=100)


def test_seed_makes_sampling_reproducible(backend):
    kw = dict(max_tokens=12, temperature=1.0, top_p=0.95)
    state = torch.get_rng_state()
    a = backend.complete(PROMPTS[:3], seed=1, **kw)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's RNG is left alone
    assert backend.complete(PROMPTS[:3], seed=1, **kw) == a
    assert backend.complete(PROMPTS[:3], seed=2, **kw) != a


def test_additive_penalty_processor_matches_formula():
    # Prompt = first 2 columns (token 4 and 5 / 4 and 0): never penalised.
    input_ids = torch.tensor([[4, 5, 1, 1, 2],
                              [4, 0, 3, 3, 3]])
    scores = torch.arange(12, dtype=torch.float32).reshape(2, 6)
    out = AdditivePenaltyLogitsProcessor(prompt_len=2, presence_penalty=0.5, frequency_penalty=0.25)(input_ids, scores)
    expected = scores.clone()
    expected[0, 1] -= 0.5 + 0.25 * 2  # token 1 generated twice
    expected[0, 2] -= 0.5 + 0.25 * 1  # token 2 once
    expected[1, 3] -= 0.5 + 0.25 * 3  # token 3 three times
    assert torch.equal(out, expected)


def test_penalties_change_greedy_generation(backend):
    # The random-init model loops on a few tokens; a frequency penalty breaks the loops.
    plain = backend.complete(PROMPTS[:2], max_tokens=24)
    penalised = backend.complete(PROMPTS[:2], max_tokens=24, frequency_penalty=2.0, presence_penalty=1.0)
    assert penalised != plain


# ----------------------------------------------------------------------------- openai


def test_completions_and_chat_return_the_model_text(backend, client, server):
    local = backend.complete(PROMPTS[:3], max_tokens=12, stop=["\n\n"])
    completions = client().complete(PROMPTS[:3], max_tokens=12, stop=["\n\n"])
    assert completions == local
    chat = client(api="chat").complete(PROMPTS[:3], max_tokens=12, stop=["\n\n"])
    assert chat == local
    chats = [body for path, body in server.received if path == "/v1/chat/completions"]
    assert sorted(b["messages"][0]["content"] for b in chats) == sorted(PROMPTS[:3])  # arrival order varies
    assert all(len(b["messages"]) == 1 and b["messages"][0]["role"] == "user" for b in chats)
    assert chats[0]["stop"] == ["\n\n"] and chats[0]["temperature"] == 0.0 and chats[0]["max_tokens"] == 12


def test_results_come_back_in_prompt_order(backend, client, server):
    server.delay_next(1, 0.3)  # the first prompt's request finishes last
    out = client(concurrency=4).complete(PROMPTS, max_tokens=8)
    assert out == backend.complete(PROMPTS, max_tokens=8)
    assert server.count == len(PROMPTS)


def test_rate_limit_is_retried(backend, client, server):
    server.fail_next(2, status=429)
    assert client(max_retries=4).complete(PROMPTS[:1], max_tokens=8) == backend.complete(PROMPTS[:1], max_tokens=8)
    assert server.count == 3  # two 429s, then the answer


def test_timeout_is_retried(client, server):
    server.delay_next(1, 2.0)
    t0 = time.perf_counter()
    [c] = client(timeout=0.5, max_retries=2).complete(PROMPTS[:1], max_tokens=8)
    assert c.text and server.count == 2
    assert time.perf_counter() - t0 < 1.9  # did not wait for the slow answer


def test_persistent_server_error_raises_clear_error(client, server):
    server.fail_next(10, status=500, message="model exploded")
    with pytest.raises(LlmkitError) as e:
        client(max_retries=2).complete(PROMPTS[:1], max_tokens=8)
    msg = str(e.value)
    assert f"{server.base_url}/completions" in msg and "HTTP 500" in msg and "3 attempts" in msg
    assert "model exploded" in msg and "\n" not in msg
    assert server.count == 3


def test_client_errors_are_not_retried(client, server):
    server.fail_next(1, status=400, message="unknown field")
    with pytest.raises(LlmkitError, match="HTTP 400 .*1 attempt.*unknown field"):
        client(max_retries=3).complete(PROMPTS[:1], max_tokens=8)
    assert server.count == 1


def test_connection_refused_raises_clear_error():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = BackendConfig(kind="openai", model="m", base_url=f"http://127.0.0.1:{port}/v1", max_retries=1,
                        retry_backoff=0.01)
    with pytest.raises(LlmkitError, match="could not connect .*2 attempts.*base_url"):
        OpenAIBackend(cfg).complete(["hi"], max_tokens=4)


def test_missing_base_url(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(LlmkitError, match="backend.base_url.*OPENAI_BASE_URL"):
        make_backend(BackendConfig(kind="openai"))
