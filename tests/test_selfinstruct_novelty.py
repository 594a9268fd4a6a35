"""NoveltyIndex against the Self-Instruct reference rule: rouge_score ROUGE-L F1 against every pool
item, reject when any score > threshold. Decisions must match exactly, scores bit for bit."""

import json
import random
from fractions import Fraction

import pytest
from conftest import REFERENCE_SEEDS as SEED_TASKS  # ../shared/data, never copied into the project
from rouge_score import rouge_scorer

from llmkit.selfinstruct.novelty import NoveltyIndex, rouge_l, rouge_tokens

SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)

ODD_TEXTS = ["", "   ", "!!! ??? ...", "\n\t", "¿Qué pasa?", "naïve café", "日本語のテキスト", "İstanbul İİ", "ǅemal Straße",
             "ﬁne ﬂow", "Ünïcödé — ½ ² ③", "KELVIN K sign", "a", "A a A", "x-y_z 3.14", "don't stop", "e\u0301t\u00e9"]


def ref_score(item: str, candidate: str) -> float:
    return SCORER.score(item, candidate)["rougeL"].fmeasure


def reference(threshold: float, seeds: list[str], candidates: list[str]) -> list[tuple[bool, list[float]]]:
    """The reference loop: per candidate, (kept, its scores against the pool at that point)."""
    pool, out = list(seeds), []
    for cand in candidates:
        scores = [ref_score(item, cand) for item in pool]
        keep = not any(s > threshold for s in scores)
        out.append((keep, scores))
        if keep:
            pool.append(cand)
    return out


def assert_same_as_reference(threshold: float, seeds: list[str], candidates: list[str], index=None) -> NoveltyIndex:
    index = index if index is not None else NoveltyIndex(threshold, seeds)
    plain = NoveltyIndex(threshold, seeds)  # add() must make the same decisions
    for i, (cand, (keep, scores)) in enumerate(zip(candidates, reference(threshold, seeds, candidates))):
        ref_max = max(scores, default=0.0)
        assert index.max_similarity(cand) == ref_max, (i, cand)
        added, score = index.check_add(cand)
        assert added == keep, (i, cand, score, ref_max)
        if added:
            assert score == ref_max, (i, cand)
        else:
            assert score > threshold and score in scores, (i, cand, score)
        assert plain.add(cand) == keep
    assert plain.texts == index.texts[len(index.texts) - len(plain.texts):]  # index may hold more before
    return index


def seed_instructions() -> list[str]:
    if SEED_TASKS is None:
        pytest.skip("../shared/data/self_instruct_seed_tasks.jsonl not found (set LLMKIT_SHARED_DATA)")
    return [json.loads(line)["instruction"] for line in SEED_TASKS.read_text().splitlines() if line.strip()]


def mutate(rng: random.Random, words: list[str], vocab: list[str], rate: float) -> str:
    out = []
    for w in words:
        r = rng.random()
        if r < rate / 3:
            continue  # delete
        if r < 2 * rate / 3:
            out.append(rng.choice(vocab))  # substitute
        else:
            out.append(w)
        if rng.random() < rate / 3:
            out.append(rng.choice(vocab))  # insert
    if len(out) > 2 and rng.random() < rate:
        i = rng.randrange(len(out) - 1)
        out[i], out[i + 1] = out[i + 1], out[i]
    return " ".join(out)


def test_tokens_match_rouge_score():
    texts = ODD_TEXTS + ["Write a Python function: sum(a, b) -> 'a+b'!", "ＦＵＬＬ width ＡＢＣ１２３", "ß ẞ ΣΑΣ"]
    for text in texts:
        assert rouge_tokens(text) == SCORER._tokenizer.tokenize(text), text


def test_rouge_l_formula_is_rouge_scores():
    # rouge_l(L, m, n) must equal rouge_score bit for bit, including where 2L/(m+n) is a different
    # float (the exact-0.7 pairs below score 0.7000000000000001 in rouge_score).
    for m in range(1, 16):
        for n in range(1, 16):
            for lcs in range(0, min(m, n) + 1):
                cand = " ".join(f"w{i}" for i in range(lcs)) + " " + " ".join(f"c{i}" for i in range(m - lcs))
                item = " ".join(f"w{i}" for i in range(lcs)) + " " + " ".join(f"p{i}" for i in range(n - lcs))
                assert rouge_l(lcs, m, n) == ref_score(item, cand)


def test_random_pool_small_vocabulary():
    rng = random.Random(0)
    vocab = ["a", "b", "c", "d", "e", "f", "g", "h"]

    def text():
        return " ".join(rng.choice(vocab) for _ in range(rng.randint(0, 11)))

    seeds = [text() for _ in range(40)]
    candidates = [text() for _ in range(200)]
    for threshold in (0.7, 0.5, 0.85):
        assert_same_as_reference(threshold, seeds, candidates)


@pytest.mark.parametrize("big_vocab", [False, True])
def test_near_duplicates_of_seed_instructions(big_vocab):
    seeds = seed_instructions()
    words = [rouge_tokens(s) for s in seeds]
    vocab = sorted({w for ws in words for w in ws})
    rng = random.Random(1)
    candidates = [mutate(rng, rng.choice(words), vocab, rng.choice([0.05, 0.15, 0.3, 0.5, 0.8])) for _ in range(120)]
    candidates += rng.sample(seeds, 5)  # exact duplicates (score 1.0)
    rng.shuffle(candidates)
    pool = seeds[:90]
    index = NoveltyIndex(0.7)
    if big_vocab:
        # One item with 70,000 distinct tokens pushes the pool's token ids past the surrogate block and
        # 0xFFFF, so the seeds' tokens get codes > 0x10000. It shares no token with the texts below, so
        # it scores 0 against each and the reference can leave it out.
        index.add(" ".join(f"zq{i}" for i in range(70_000)), force=True)
        assert max(index._vocab.values()) > 0x10000
    for seed in pool:
        index.add(seed, force=True)
    index = assert_same_as_reference(0.7, pool, candidates, index=index)
    assert 0 < len(index) - len(pool) - big_vocab < len(candidates)  # some kept, some rejected


def _exact_pairs(threshold: float, limit: int = 30) -> list[tuple[int, int, int]]:
    """(L, m, n) with m, n <= limit whose exact 2L/(m+n) is the rational nearest the threshold."""
    target = Fraction(threshold).limit_denominator(100)
    return [(lcs, m, n) for m in range(1, limit + 1) for n in range(1, limit + 1) for lcs in range(1, min(m, n) + 1)
            if Fraction(2 * lcs, m + n) == target]


@pytest.mark.parametrize("threshold", [0.7, 0.5, 0.6, 0.6999999999999999, 0.7000000000000001])
def test_scores_exactly_on_the_threshold(threshold):
    pairs = _exact_pairs(threshold)
    decisions = set()
    for lcs, m, n in pairs:
        # candidate: L shared tokens in order plus m-L of its own; pool item: the same L plus n-L others
        shared = [f"s{i}" for i in range(lcs)]
        cand = " ".join(shared + [f"c{i}" for i in range(m - lcs)])
        item = " ".join([f"p{i}" for i in range(n - lcs)] + shared)
        ref = ref_score(item, cand)
        index = NoveltyIndex(threshold, [item])
        assert index.max_similarity(cand) == ref
        added, score = index.check_add(cand)
        assert added == (not ref > threshold), (lcs, m, n, ref)
        assert score == ref
        decisions.add(added)
    if threshold == 0.7:  # 2L/(m+n) = 0.7 exactly, yet rouge_score's float is sometimes 0.7000000000000001
        assert decisions == {True, False}
        assert NoveltyIndex(0.7, ["a b c d e f g h i j"]).check_add("a b c d e f g x y z") == (True, 0.7)
        assert NoveltyIndex(0.7, ["a b c d e f g h i j k l m"]).check_add("a b c d e f g")[0] is False


@pytest.mark.parametrize("threshold", [0.7, 0.0, 1.0, -0.1, 0.3])
def test_empty_punctuation_and_non_ascii(threshold):
    rng = random.Random(2)
    texts = ODD_TEXTS + ["cafe naive", "istanbul i", "e t", "qu pasa", "k sign kelvin", "3 14 x y z"]
    seeds = texts[:6]
    candidates = [rng.choice(texts) for _ in range(40)] + texts
    assert_same_as_reference(threshold, seeds, candidates)


def test_empty_pool_and_seeds():
    index = NoveltyIndex()
    assert len(index) == 0 and index.max_similarity("anything") == 0.0 and index.most_similar("x") == []
    assert index.check_add("Write a poem.") == (True, 0.0)
    assert index.add("Write a poem!") is False  # identical tokens: score 1.0
    assert index.add("Write a poem!", force=True) is True
    assert index.texts == ["Write a poem.", "Write a poem!"]
    seeded = NoveltyIndex(0.7, ["same text", "same text"])  # seeds go in unconditionally
    assert len(seeded) == 2 and seeded.max_similarity("Same TEXT.") == 1.0
    with pytest.raises(ValueError):
        NoveltyIndex(float("nan"))


def test_most_similar_is_the_reference_top_k():
    seeds = seed_instructions()
    words = [rouge_tokens(s) for s in seeds]
    vocab = sorted({w for ws in words for w in ws})
    rng = random.Random(3)
    pool = seeds + [mutate(rng, rng.choice(words), vocab, 0.3) for _ in range(60)]
    index = NoveltyIndex(0.7, pool)
    for query in [mutate(rng, rng.choice(words), vocab, 0.2) for _ in range(4)] + ["", "zzz unseen words"]:
        ref = sorted((ref_score(item, query) for item in pool), reverse=True)
        for k in (1, 5, 300):
            got = index.most_similar(query, k)
            assert [s for _, s in got] == ref[:k]
            assert all(ref_score(text, query) == s for text, s in got)
