"""Perplexity: the definition on the seed's worked examples, a uniform model, the sliding window
against a token-by-token brute force, and invariance to batch size and padding side."""

import math

import pytest
import torch

from llmkit.errors import EvalInputError
from llmkit.eval.perplexity import perplexity, perplexity_from_logprobs, windows

TEXTS = ["the cat sat on the mat and looked at the door for a long while",
         "a short one",
         "numbers 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 go on and on",
         "é ü ß — unicode text 東京 too"]


@pytest.fixture(scope="module", params=["tiny-llama", "tiny-gpt2"])
def lm(request):
    from transformers import AutoModelForCausalLM

    from llmkit.config import ModelConfig
    from llmkit.models.loading import load_tokenizer, resolve_model

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(resolve_model(request.param)).eval()
    return model, load_tokenizer(ModelConfig(name=request.param))


def test_seed_worked_examples():
    good = [0.99, 0.85, 0.89, 0.99, 0.99, 0.99, 0.99, 0.99]
    bad = [0.99, 0.65, 0.13, 0.05, 0.21, 0.99, 0.99, 0.99]
    assert round(perplexity_from_logprobs([math.log(p) for p in good]), 3) == 1.043
    assert round(perplexity_from_logprobs([math.log(p) for p in bad]), 3) == 2.419


def test_uniform_model_has_vocabulary_size_perplexity(lm):
    model, tok = lm
    uniform = type(model)(model.config).eval()
    with torch.no_grad():
        uniform.get_output_embeddings().weight.zero_()  # every logit 0: p = 1/V for every token
    res = perplexity(uniform, tok, TEXTS, progress=False)
    assert res["perplexity"] == pytest.approx(model.config.vocab_size, rel=1e-5)
    assert res["bits_per_token"] == pytest.approx(math.log2(model.config.vocab_size), rel=1e-5)


def test_one_window_equals_the_models_own_loss(lm):
    model, tok = lm
    nll, n = 0.0, 0
    with torch.no_grad():
        for t in TEXTS:
            ids = torch.tensor([tok(t)["input_ids"]])
            nll += model(input_ids=ids, labels=ids).loss.item() * (ids.shape[1] - 1)
            n += ids.shape[1] - 1
    res = perplexity(model, tok, TEXTS, max_length=512, stride=7, progress=False)
    assert res["num_tokens"] == n
    assert res["nll"] == pytest.approx(nll / n, rel=1e-5)
    assert res["perplexity"] == pytest.approx(math.exp(nll / n), rel=1e-5)


def test_sliding_window_scores_each_token_once_with_the_windows_context(lm):
    """stride=1: token p is predicted from the max_length - 1 tokens before it. Brute force: one
    forward pass per token on exactly that context."""
    model, tok = lm
    max_length, nll, n = 6, 0.0, 0
    with torch.no_grad():
        for t in TEXTS:
            ids = tok(t)["input_ids"]
            for p in range(1, len(ids)):
                ctx = torch.tensor([ids[max(0, p + 1 - max_length):p + 1]])
                logp = torch.log_softmax(model(input_ids=ctx).logits[0, -2].float(), -1)
                nll -= logp[ids[p]].item()
                n += 1
    res = perplexity(model, tok, TEXTS, max_length=max_length, stride=1, batch_size=5, progress=False)
    assert res["num_tokens"] == n
    assert res["nll"] == pytest.approx(nll / n, rel=1e-5)


def test_windows_cover_every_token_once():
    ids = list(range(23))
    for max_length, stride in [(8, 3), (8, 7), (5, 1), (30, 10)]:
        ws = windows(ids, max_length, stride)
        scored = [t for w, k in ws for t in w[len(w) - k:]]
        assert scored == ids[1:]
        assert all(len(w) <= max_length and k < len(w) for w, k in ws)


def test_batch_size_and_padding_side_change_nothing(lm):
    model, tok = lm
    runs = [perplexity(model, tok, TEXTS, max_length=10, stride=4, batch_size=b, padding_side=side, progress=False)
            for b in (1, 3, 64) for side in ("right", "left")]
    for r in runs[1:]:
        assert r["num_tokens"] == runs[0]["num_tokens"]
        assert r["nll"] == pytest.approx(runs[0]["nll"], rel=1e-5)


def test_bad_input(lm):
    model, tok = lm
    with pytest.raises(EvalInputError, match="non-empty list"):
        perplexity(model, tok, [])
    with pytest.raises(EvalInputError, match="row 1"):
        perplexity(model, tok, ["fine text", None])
    with pytest.raises(EvalInputError, match="stride"):
        perplexity(model, tok, TEXTS, max_length=8, stride=8)
    with pytest.raises(EvalInputError, match="shorter than 2 tokens"):
        perplexity(model, tok, ["", ""])
