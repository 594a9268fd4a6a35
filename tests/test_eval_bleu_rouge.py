"""BLEU and ROUGE: equal to the reference implementations (sacrebleu, rouge_score) on varied text,
and ROUGE-S / ROUGE-SU equal to values worked out by hand from Lin (2004)."""

import pytest
import sacrebleu
from rouge_score import rouge_scorer

from llmkit.errors import EvalInputError
from llmkit.eval.bleu import bleu
from llmkit.eval.rouge import rouge

PREDS = [
    "The café served crème brûlée, naïvely!",
    "東京は 晴れです 。",
    "I love it 😀 so much.",
    "",
    "Hello, world... isn't it (really) great?",
    "the cat sat on the mat",
]
REFS = [  # rows have 1, 2 or 3 references
    ["The café served crème brûlée naively.", "A café served crème brûlée!"],
    ["東京は 晴れです 。"],
    ["I love it 😀 very much.", "I like it 😀 a lot.", "Love it so much!"],
    ["something was expected here"],
    ["Hello, world... is it not (really) great?", "Hello world, isn't it great?"],
    "the cat is on the mat",  # a bare string is one reference
]


def _streams(refs):
    rows = [[r] if isinstance(r, str) else r for r in refs]
    return [[r[k] if k < len(r) else None for r in rows] for k in range(max(map(len, rows)))]


# ---------------------------------------------------------------- BLEU

@pytest.mark.parametrize("lowercase", [False, True])
@pytest.mark.parametrize("tokenize", ["13a", "intl", "zh"])
def test_bleu_equals_sacrebleu(tokenize, lowercase):
    out = bleu(PREDS, REFS, tokenize=tokenize, lowercase=lowercase, per_row=True)
    ref = sacrebleu.corpus_bleu(PREDS, _streams(REFS), tokenize=tokenize, lowercase=lowercase)
    assert out["bleu"] == pytest.approx(ref.score, abs=1e-6)
    assert out["precisions"] == pytest.approx(ref.precisions, abs=1e-6)
    assert out["brevity_penalty"] == pytest.approx(ref.bp, abs=1e-6)
    assert (out["sys_len"], out["ref_len"]) == (ref.sys_len, ref.ref_len)
    assert out["signature"].startswith("nrefs:var|")  # rows differ in their number of references
    assert f"tok:{tokenize}" in out["signature"]
    rows = [[r] if isinstance(r, str) else r for r in REFS]
    want = [sacrebleu.sentence_bleu(p, r, tokenize=tokenize, lowercase=lowercase).score for p, r in zip(PREDS, rows)]
    assert out["per_row"] == pytest.approx(want, abs=1e-6)
    assert 0 < out["bleu"] < 100


def test_bleu_identical_text_is_100_and_single_reference_signature():
    texts = ["the quick brown fox jumps over the lazy dog", "a second, longer sentence to score here"]
    out = bleu(texts, texts, per_row=True)
    assert out["bleu"] == pytest.approx(100.0, abs=1e-9)
    assert out["per_row"] == pytest.approx([100.0, 100.0], abs=1e-9)
    assert out["brevity_penalty"] == 1.0
    assert out["signature"].startswith("nrefs:1|")
    assert "per_row" not in bleu(texts, texts)


def test_bleu_missing_references_are_dropped_not_empty():
    # Row 2 has one reference. Padding its second stream with "" would add an empty reference of
    # length 0, the closest to the empty prediction, giving BP = 1; padded with None it is dropped
    # and the empty prediction is compared with "b c" (length 2).
    preds, refs = ["a b c d", ""], [["a b c d", "a b c d e"], ["b c"]]
    out = bleu(preds, refs)
    ref = sacrebleu.corpus_bleu(preds, [["a b c d", "b c"], ["a b c d e", None]])
    assert (out["sys_len"], out["ref_len"]) == (4, 6)
    assert out["bleu"] == pytest.approx(ref.score, abs=1e-6)
    padded_empty = sacrebleu.corpus_bleu(preds, [["a b c d", "b c"], ["a b c d e", ""]])
    assert padded_empty.ref_len == 4  # what the wrong padding would report


# ---------------------------------------------------------------- ROUGE vs rouge_score

LIB_TYPES = ["rouge1", "rouge2", "rouge3", "rougeL", "rougeLsum"]
ROUGE_PREDS = PREDS + [
    "the gunman was killed by police\npolice kill the gunman",  # two sentences: rougeLsum != rougeL
    "Running runners ran quickly to the stations.",
]
ROUGE_REFS = REFS + [
    ["police killed the gunman\npolice shot him the gunman", "the gunman ran"],
    "The runner runs quickly to the station",
]


@pytest.mark.parametrize("use_stemmer", [False, True])
def test_rouge_equals_rouge_score(use_stemmer):
    out = rouge(ROUGE_PREDS, ROUGE_REFS, rouge_types=LIB_TYPES, use_stemmer=use_stemmer, per_row=True)
    scorer = rouge_scorer.RougeScorer(LIB_TYPES, use_stemmer=use_stemmer)
    rows = [scorer.score_multi([r] if isinstance(r, str) else r, p) for p, r in zip(ROUGE_PREDS, ROUGE_REFS)]
    assert set(out) == set(LIB_TYPES) | {"per_row"}
    for t in LIB_TYPES:
        for ours, theirs in [("precision", "precision"), ("recall", "recall"), ("f1", "fmeasure")]:
            want = sum(getattr(r[t], theirs) for r in rows) / len(rows)
            assert out[t][ours] == pytest.approx(want, abs=1e-6), (t, ours)
        assert out["per_row"][t] == pytest.approx([r[t].fmeasure for r in rows], abs=1e-6)
    assert out["per_row"]["rouge1"][3] == 0.0  # the empty prediction
    assert out["per_row"]["rougeLsum"][-2] > out["per_row"]["rougeL"][-2]  # union LCS over lines
    assert 0 < out["rougeLsum"]["f1"] < 1


def test_rouge_default_types_and_stemmer_matters():
    out = rouge(["Running runners ran"], ["the runner runs"])
    assert list(out) == ["rouge1", "rouge2", "rougeL", "rougeLsum", "rougeS", "rougeSU"]
    assert out["rouge1"]["f1"] == 0.0
    # stemmed (Porter, words over 3 characters): run, runner, ran vs the, runner, run
    assert rouge(["Running runners ran"], ["the runner runs"], use_stemmer=True)["rouge1"]["f1"] > 0


# ---------------------------------------------------------------- ROUGE-S / ROUGE-SU by hand

LIN_REF = "police killed the gunman"
# Lin (2004) section 5: the reference has C(4,2) = 6 skip-bigrams
#   police-killed police-the police-gunman killed-the killed-gunman the-gunman
# S2 shares police-the police-gunman the-gunman (3), S3 the-gunman (1), S4 the-gunman police-killed (2).
LIN_CANDIDATES = {"police kill the gunman": 3 / 6, "the gunman kill police": 1 / 6, "the gunman police killed": 2 / 6}


@pytest.mark.parametrize("candidate,f", LIN_CANDIDATES.items())
def test_rouge_s_lin_2004_example(candidate, f):
    out = rouge([candidate], [LIN_REF], rouge_types=["rougeS"])["rougeS"]
    # all four sentences have 4 words, so P = R = F
    assert out == pytest.approx({"precision": f, "recall": f, "f1": f}, abs=1e-12)


def test_rouge_su_by_hand():
    # ROUGE-SU adds the 4 unigrams to the 6 skip-bigrams: denominators C(4,2) + 4 = 10.
    # S2: 3 skip-bigrams + unigrams police, the, gunman (kill != killed) = 6 -> 0.6
    # S3: 1 + the, gunman, police = 4 -> 0.4
    # S4: 2 + all 4 unigrams = 6 -> 0.6
    out = rouge(list(LIN_CANDIDATES), [LIN_REF] * 3, rouge_types=["rougeSU"], per_row=True)
    assert out["per_row"]["rougeSU"] == pytest.approx([0.6, 0.4, 0.6], abs=1e-12)
    assert out["rougeSU"]["f1"] == pytest.approx(1.6 / 3, abs=1e-12)
    # one word each: no skip-bigram (ROUGE-S is 0, not NaN) but one shared unigram (ROUGE-SU 1)
    one = rouge(["Gunman"], ["gunman"], rouge_types=["rougeS", "rougeSU"])
    assert one["rougeS"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert one["rougeSU"]["f1"] == 1.0


def test_rouge_s_unequal_lengths():
    # reference "a b c": a-b a-c b-c (3); candidate "a b": a-b (1); 1 shared.
    # P = 1/1, R = 1/3, F = 2 * 1 * (1/3) / (1 + 1/3) = 0.5
    # SU: + unigrams a, b shared -> 3 hits; P = 3 / (1 + 2) = 1, R = 3 / (3 + 3) = 0.5, F = 2/3
    out = rouge(["a b"], ["a b c"], rouge_types=["rougeS", "rougeSU"])
    assert out["rougeS"] == pytest.approx({"precision": 1.0, "recall": 1 / 3, "f1": 0.5}, abs=1e-12)
    assert out["rougeSU"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3}, abs=1e-12)


def test_rouge_s_skip_gap_by_hand():
    # skip_gap=1: at most one word between the pair (positions i < j <= i + 2), as ROUGE-1.5.5 -2 1.
    # reference: police-killed police-the killed-the killed-gunman the-gunman (5; police-gunman is gone)
    # S2 "police kill the gunman": police-kill police-the kill-the kill-gunman the-gunman -> shares 2 -> 2/5
    # S3 "the gunman kill police": the-gunman the-kill gunman-kill gunman-police kill-police -> 1 -> 1/5
    # S4 "the gunman police killed": the-gunman the-police gunman-police gunman-killed police-killed -> 2/5
    out = rouge(list(LIN_CANDIDATES), [LIN_REF] * 3, rouge_types=["rougeS", "rougeSU"], skip_gap=1, per_row=True)
    assert out["per_row"]["rougeS"] == pytest.approx([0.4, 0.2, 0.4], abs=1e-12)
    # SU with the gap: unigrams count regardless, denominators 5 + 4 = 9; S2 (2 + 3) / 9
    assert out["per_row"]["rougeSU"] == pytest.approx([5 / 9, 4 / 9, 6 / 9], abs=1e-12)
    # a gap bigger than the sentence changes nothing
    assert rouge(["the gunman police killed"], [LIN_REF], rouge_types=["rougeS"], skip_gap=10)["rougeS"]["f1"] == pytest.approx(2 / 6)


def test_rouge_s_gap_zero_is_rouge2():
    out = rouge(ROUGE_PREDS, ROUGE_REFS, rouge_types=["rouge2", "rougeS"], skip_gap=0, per_row=True)
    assert out["rougeS"] == pytest.approx(out["rouge2"], abs=1e-12)
    assert out["per_row"]["rougeS"] == pytest.approx(out["per_row"]["rouge2"], abs=1e-12)


def test_rouge_s_counts_repeated_words_with_clipping():
    # reference "the cat the cat": the-cat x3, the-the, cat-the, cat-cat (6)
    # candidate "the the cat":     the-the, the-cat x2 (3)
    # shared: min(3, 2) the-cat + min(1, 1) the-the = 3 -> P = 3/3, R = 3/6, F = 2/3
    out = rouge(["the the cat"], ["the cat the cat"], rouge_types=["rougeS"])["rougeS"]
    assert out == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3}, abs=1e-12)
    # candidate "the cat": the-cat x1 of the reference's 3 -> P = 1, R = 1/6, F = 2/7
    assert rouge(["the cat"], ["the cat the cat"], rouge_types=["rougeS"])["rougeS"]["f1"] == pytest.approx(2 / 7)


def test_rouge_s_multi_reference_takes_best_f_and_empty_prediction():
    # against S3's order the candidate scores 1/6; against an identical reference 1
    out = rouge(["police killed the gunman", ""], [["the gunman kill police", LIN_REF], ["a b c", "d"]],
                rouge_types=["rougeS", "rougeSU"], per_row=True)
    assert out["per_row"]["rougeS"] == [1.0, 0.0]
    assert out["per_row"]["rougeSU"] == [1.0, 0.0]
    assert out["rougeS"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5})


def test_rouge_s_uses_rouge_score_tokenizer_and_stemmer():
    # punctuation and case are dropped; with the stemmer "killed" and "kill" both become "kill"
    assert rouge(["POLICE, killed the gunman!"], [LIN_REF], rouge_types=["rougeS"])["rougeS"]["f1"] == 1.0
    assert rouge(["police kill the gunman"], [LIN_REF], rouge_types=["rougeS"], use_stemmer=True)["rougeS"]["f1"] == 1.0


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("metric", [bleu, rouge])
@pytest.mark.parametrize("preds,refs,message", [
    (["a", "b"], ["a"], "2 predictions but 1 references"),
    ([], [], "empty list"),
    (["a"], [["x", 3]], "reference at row 0"),
    (["a"], [[]], "reference at row 0"),
    ([None], ["a"], "prediction at row 0"),
    ("a", "a", "not one string"),
])
def test_bad_input(metric, preds, refs, message):
    with pytest.raises(EvalInputError, match=message):
        metric(preds, refs)


@pytest.mark.parametrize("types", [["rouge1", "rougeW"], ["rouge0"], ["rouge10"], []])
def test_unknown_rouge_type(types):
    with pytest.raises(EvalInputError, match="valid ones are rouge1 ... rouge9, rougeL, rougeLsum, rougeS, rougeSU"):
        rouge(["a"], ["a"], rouge_types=types)


@pytest.mark.parametrize("gap", [-1, 1.5, True])
def test_bad_skip_gap(gap):
    with pytest.raises(EvalInputError, match="skip_gap"):
        rouge(["a"], ["a"], skip_gap=gap)


def test_unknown_bleu_tokenizer():
    with pytest.raises(EvalInputError, match="unknown tokenize 'bogus'.*13a"):
        bleu(["a"], ["a"], tokenize="bogus")
