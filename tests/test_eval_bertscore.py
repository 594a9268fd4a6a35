"""llmkit's BERTScore against the bert_score package (the reference implementation) on the same
local model and layer, plus the metric's invariants. MiniLM and tiny-bert load offline."""

import bert_score  # the reference implementation (in the dev extra)
import pytest
import torch

from llmkit.errors import EvalInputError
from llmkit.eval.bertscore import bertscore
from llmkit.models.loading import resolve_model

CANDS = [
    "The cat sat on the mat.",
    "",  # empty prediction: bert_score scores 0
    "Café au lait, s'il vous plaît — 3€!",
    "日本語のテキストです。 naïve résumé",
    "short",
    "Numbers: 1, 2, 3... and (more) [brackets]; ok?",
]
REFS = [
    "A cat was sitting on the mat!",
    "something",
    ["Coffee with milk, please.", "Café au lait, please"],  # multi-reference
    "Japanese text 日本",
    "this is a much longer reference sentence that contains the word short inside it",
    ["numbers 1 2 3", "a prediction about brackets", "ok"],
]


@pytest.fixture
def reference_bertscore(monkeypatch):
    """bert_score.score on a local path. Two shims, neither touching the arithmetic: bert_score
    0.3.13 encodes an empty text with `build_inputs_with_special_tokens`, which transformers 5
    removed, so it gets [CLS] [SEP] here as it does under transformers 4; and bert_score takes
    multi-reference input only when every row is a list."""
    import bert_score.utils as bu

    encode = bu.sent_encode
    monkeypatch.setattr(bu, "sent_encode", lambda tok, s: tok.encode("") if s.strip() == "" else encode(tok, s))

    def score(cands, refs, model, **kwargs):
        if any(not isinstance(r, str) for r in refs):
            refs = [[r] if isinstance(r, str) else r for r in refs]
        return bert_score.score(cands, refs, model_type=resolve_model(model), nthreads=0, **kwargs)

    return score


def assert_rows_equal(ours: dict, theirs, atol=1e-6):
    for key, ref in zip(("precision", "recall", "f1"), theirs):
        assert torch.allclose(torch.tensor(ours["per_row"][key]), ref, atol=atol, rtol=0), key
        assert ours[key] == pytest.approx(ref.mean().item(), abs=atol)


@pytest.mark.parametrize("idf", [False, True])
def test_equals_bert_score_minilm(reference_bertscore, idf):
    ours = bertscore(CANDS, REFS, model="minilm", idf=idf)
    assert ours["num_layers"] == 6 and ours["idf"] is idf and not ours["rescaled"]
    assert_rows_equal(ours, reference_bertscore(CANDS, REFS, "minilm", num_layers=6, idf=idf))
    assert ours["per_row"]["f1"][1] == 0.0  # the empty prediction


def test_equals_bert_score_tiny_bert_first_layer(reference_bertscore):
    ours = bertscore(CANDS, REFS, model="tiny-bert", num_layers=1, idf=True)
    assert ours["num_layers"] == 1
    assert_rows_equal(ours, reference_bertscore(CANDS, REFS, "tiny-bert", num_layers=1, idf=True))


def test_equals_bert_score_with_small_batches(reference_bertscore):
    # Several embedding and matching batches, sentences shared between rows.
    cands, refs = CANDS * 3, REFS[::-1] * 3
    ours = bertscore(cands, refs, model="minilm", num_layers=4, batch_size=4)
    assert_rows_equal(ours, reference_bertscore(cands, refs, "minilm", num_layers=4, batch_size=4))


@pytest.mark.filterwarnings("ignore:The given NumPy array is not writable")  # inside bert_score
def test_baseline_rescaling_equals_bert_score(reference_bertscore, tmp_path):
    baseline = tmp_path / "minilm.tsv"  # bert_score's format: comma-separated despite the name
    baseline.write_text("LAYER,P,R,F\n" + "".join(f"{i},{0.30 + 0.05 * i},{0.31 + 0.04 * i},{0.32 + 0.03 * i}\n"
                                                  for i in range(7)))
    ours = bertscore(CANDS, REFS, model="minilm", baseline_path=baseline)
    assert ours["rescaled"]
    theirs = reference_bertscore(CANDS, REFS, "minilm", num_layers=6, rescale_with_baseline=True,
                                 baseline_path=str(baseline), lang="en")
    assert_rows_equal(ours, theirs)
    raw = bertscore(CANDS, REFS, model="minilm")
    b = 0.32 + 0.03 * 6  # F baseline of layer 6
    assert ours["per_row"]["f1"][0] == pytest.approx((raw["per_row"]["f1"][0] - b) / (1 - b), abs=1e-6)


def test_text_against_itself_scores_one():
    texts = ["The quick brown fox jumps over the lazy dog.", "Ünïcödé — ok?", "a"]
    out = bertscore(texts, texts, model="minilm")
    for key in ("precision", "recall", "f1"):
        assert out["per_row"][key] == pytest.approx([1.0] * 3, abs=1e-5)


def test_short_candidate_inside_long_reference_has_precision_above_recall():
    out = bertscore(["the cat"], ["yesterday the cat sat on the warm mat by the kitchen door"], model="minilm")
    p, r, f = (out["per_row"][k][0] for k in ("precision", "recall", "f1"))
    assert p > r
    assert f == pytest.approx(2 * p * r / (p + r), abs=1e-6)


def test_padding_takes_part_in_the_max_as_in_bert_score(reference_bertscore):
    # With MiniLM's last layer no token of "elttob" has a positive cosine to any reference token.
    # bert_score pads each batch of pairs with similarity 0, which then wins the max for a padded
    # row: the same pair scores higher next to a longer one. llmkit keeps that, to equal it.
    cands = ["elttob", "a longer prediction that pads the other"]
    refs = ["What is bottle reversed?", "a much longer reference that pads the first row"]
    alone, batched = bertscore(cands[:1], refs[:1]), bertscore(cands, refs)
    assert batched["per_row"]["f1"][0] > alone["per_row"]["f1"][0] + 0.01
    assert_rows_equal(alone, reference_bertscore(cands[:1], refs[:1], "minilm", num_layers=6))
    assert_rows_equal(batched, reference_bertscore(cands, refs, "minilm", num_layers=6))


def test_model_is_loaded_once():
    import sys

    mod = sys.modules["llmkit.eval.bertscore"]  # llmkit.eval.bertscore is also the function's name
    bertscore(["a"], ["b"], model="minilm")
    cached = dict(mod._MODELS)
    bertscore(["c"], ["d"], model="minilm")
    bertscore(["c"], ["d"], model="minilm", num_layers=6)  # the default layer, named
    assert mod._MODELS == cached


@pytest.mark.parametrize("preds, refs", [
    (["a", "b"], ["a"]),  # different lengths
    ([], []),  # nothing to score
    ("a", "a"),  # a string, not a list
    (["a"], [[]]),  # a row with no reference
])
def test_bad_input_raises(preds, refs):
    with pytest.raises(EvalInputError):
        bertscore(preds, refs, model="minilm")


def test_num_layers_out_of_range_raises():
    from llmkit.errors import ConfigError

    with pytest.raises(ConfigError, match="between 0 and 6"):
        bertscore(["a"], ["b"], model="minilm", num_layers=7)
