"""BERTScore (Zhang et al., 2020, https://arxiv.org/abs/1904.09675): precision, recall and F1 of a
prediction against a reference from greedy cosine matching of contextual token embeddings.

Each token of the prediction is matched to its most similar reference token and the other way
round, with embeddings x (prediction) and y (reference) from one hidden layer of an encoder,
L2-normalised, and token weights w (1, or idf):

    P = sum_i w(x_i) max_j x_i . y_j / sum_i w(x_i)      R = sum_j w(y_j) max_i x_i . y_j / sum_j w(y_j)
    F = 2 P R / (P + R)

Why llmkit has its own rather than calling the `bert_score` package: `bert_score.score` reloads
the model on every call, resolves models by hub name, and looks for (or downloads) its baseline
files by hub name and language. This one runs offline with any local encoder (llmkit's short
names, e.g. `minilm`, or a directory), keeps the model loaded between calls, embeds each distinct
sentence once, and batches sentences sorted by token length so little time goes on padding. It
computes what bert_score computes for the same model path and layer, detail for detail (listed in
`bertscore`'s docstring); tests/test_eval_bertscore.py holds it to `bert_score.score` to 1e-6.

    from llmkit.eval.bertscore import bertscore
    bertscore(["the cat sat"], [["a cat sat down", "the cat is sitting"]])["f1"]
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import torch

from llmkit.errors import ConfigError, EvalInputError
from llmkit.eval._inputs import check_pairs

# (path, num_layers, device) -> (tokenizer, truncated model); loading MiniLM takes ~1 s, a
# BERTScore call on a few hundred pairs not much more.
_MODELS: dict[tuple[str, int | None, str], tuple] = {}


def bertscore(predictions: Sequence[str], references: Sequence, *, model: str = "minilm",
              num_layers: int | None = None, idf: bool = False, batch_size: int = 64,
              baseline_path: str | Path | None = None, device: str | None = None) -> dict:
    """BERTScore of each prediction against its reference(s) (a string or a list of strings per row).

    model: an llmkit short name (`minilm`, `tiny-bert`), a local model directory or a cached hub id.
    num_layers: the hidden layer whose output is used (0 = embeddings); the encoder is cut to
        that many layers, as bert_score does. Default: the model's last layer (for `minilm`, 6).
        bert_score's own default for a hub model is a layer tuned on WMT16 (e.g. 17 for
        roberta-large, 9 for bert-base-uncased): pass it here to reproduce its numbers.
    idf: weight tokens by inverse document frequency over the references, log((M + 1) / (df + 1))
        with M the number of references (every reference of every row counts, repeats too) and
        log(M + 1) for a token no reference has. Off: every token weighs 1. Either way [CLS]
        and [SEP] (<s>, </s>) weigh 0 (with idf they are in every reference).
    baseline_path: a bert_score baseline file (header LAYER,P,R,F, then one row per layer;
        comma- or tab-separated): scores are rescaled as (x - b) / (1 - b) with b the row of
        `num_layers`, which spreads the typical 0.8-0.95 raw range over roughly 0-1.

    Returns {"precision", "recall", "f1" (means over rows), "per_row": {"precision": [...],
    "recall": [...], "f1": [...]}, "model", "num_layers", "idf", "rescaled"}.

    Details shared with bert_score 0.3.13 (so the figures agree): text is stripped and tokenized
    with special tokens, truncated at the tokenizer's model_max_length (here also capped at the
    model's max_position_embeddings, where bert_score would crash instead); the model runs in
    float32; a prediction or reference that is empty after stripping is [CLS] [SEP] and scores
    P = R = F = 0 (bert_score 0.3.13 itself raises AttributeError on an empty text under
    transformers 5; this is its behaviour under transformers 4);
    an F whose P + R is 0 (or undefined) is 0; with several references the reported P, R and F
    are each the maximum over the references, taken separately, so they may come from different
    references and F need not be the harmonic mean of the reported P and R. Where all weights
    of a row are 0 (idf with a single reference: every reference token has df = M) P or R is
    NaN, as in bert_score. Also as in bert_score, pairs are matched in batches of `batch_size`
    in input order, and a text shorter than the longest one on its side of the batch is padded
    with positions of cosine 0 that take part in the max: a token whose best real match is
    negative scores 0 instead when its counterpart is padded. So a row's score can depend on
    its neighbours and on batch_size. It matters only for negative best matches, which MiniLM's
    last layer gives on unrelated texts (up to 0.012 F per row, 1e-4 on the mean, on the bundled
    prompt/answer pairs); it is kept so that figures equal published bert_score ones.
    """
    preds, refs = check_pairs(predictions, references, metric="bertscore")
    if batch_size < 1:
        raise EvalInputError(f"bertscore: batch_size must be >= 1, got {batch_size}")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    tok, encoder, n_layers = _load(model, num_layers, device)

    # One (prediction, reference) pair per reference; rows are put back together at the end.
    pair_hyp = [p for p, rs in zip(preds, refs) for _ in rs]
    pair_ref = [r for rs in refs for r in rs]
    texts = list(dict.fromkeys(pair_hyp + pair_ref))
    ids = dict(zip(texts, _encode(tok, encoder, texts)))

    special = {tok.cls_token_id, tok.sep_token_id} - {None}
    if idf:
        df = Counter(t for r in pair_ref for t in set(ids[r]))
        m = len(pair_ref)
        weight = {t: math.log((m + 1) / (c + 1)) for t, c in df.items()}
        unseen = math.log(m + 1)
        weights = {s: torch.tensor([weight.get(t, unseen) for t in ids[s]]) for s in texts}
    else:
        weights = {s: torch.tensor([0.0 if t in special else 1.0 for t in ids[s]]) for s in texts}

    emb = _embed(encoder, [ids[s] for s in texts], tok.pad_token_id or 0, batch_size, device)
    emb = dict(zip(texts, emb))
    scores = _greedy_match([emb[h] for h in pair_hyp], [emb[r] for r in pair_ref],
                           [weights[h] for h in pair_hyp], [weights[r] for r in pair_ref], batch_size)  # (N, 3)

    # Multi-reference: the maximum of each of P, R, F over a row's references (bert_score's rule).
    bounds = torch.tensor([0] + [len(rs) for rs in refs]).cumsum(0).tolist()
    scores = torch.stack([scores[a:b].max(dim=0).values for a, b in zip(bounds, bounds[1:])])
    if baseline_path is not None:
        base = _read_baseline(baseline_path, n_layers)
        scores = (scores - base) / (1 - base)

    p, r, f = (scores[:, k].tolist() for k in range(3))
    return {
        "precision": sum(p) / len(p), "recall": sum(r) / len(r), "f1": sum(f) / len(f),
        "per_row": {"precision": p, "recall": r, "f1": f},
        "model": str(model), "num_layers": n_layers, "idf": bool(idf), "rescaled": baseline_path is not None,
    }


def _load(name: str, num_layers: int | None, device: str):
    """(tokenizer, encoder cut to `num_layers` layers, num_layers), cached per process."""
    from llmkit.models.loading import local_only, resolve_model

    path = resolve_model(str(name))
    key = (path, num_layers, device)
    if key in _MODELS:
        return _MODELS[key]
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, local_files_only=local_only(path))
    model = AutoModel.from_pretrained(path, local_files_only=local_only(path), dtype=torch.float32)
    if hasattr(model, "encoder") and hasattr(model, "decoder"):  # T5, BART: the encoder alone
        model = model.get_encoder()
    owner, attr = _layer_stack(model)
    total = owner.config.num_hidden_layers if attr == "albert" else len(getattr(owner, attr))
    n = total if num_layers is None else num_layers
    if not 0 <= n <= total:
        raise ConfigError(f"bertscore: num_layers must be between 0 and {total} for {name}, got {num_layers}")
    if attr == "albert":  # ALBERT shares one layer group; the count lives in the config
        owner.config.num_hidden_layers = n
    else:
        setattr(owner, attr, torch.nn.ModuleList(list(getattr(owner, attr))[:n]))
    model.eval().to(device)
    _MODELS[key] = _MODELS[(path, n, device)] = (tok, model, n)  # the default layer is a layer too
    return _MODELS[key]


def _layer_stack(model) -> tuple[torch.nn.Module, str]:
    """Where the encoder keeps its list of layers (the same places bert_score cuts)."""
    encoder = getattr(model, "encoder", None)
    if encoder is not None and hasattr(encoder, "albert_layer_groups"):
        return encoder, "albert"
    for owner in (encoder, getattr(model, "transformer", None), model):
        for attr in ("layer", "block", "layers"):
            if isinstance(getattr(owner, attr, None), torch.nn.ModuleList):
                return owner, attr
    raise ConfigError(f"bertscore: cannot find the layer list of {type(model).__name__} to cut it to num_layers")


def _encode(tok, model, texts: list[str]) -> list[list[int]]:
    """Token ids as bert_score's `sent_encode`: stripped, with special tokens, truncated."""
    from transformers import GPT2Tokenizer, RobertaTokenizer

    max_len = min(tok.model_max_length, getattr(model.config, "max_position_embeddings", None) or math.inf)
    # bert_score passes add_prefix_space for byte-level BPE tokenizers; pass it alike, so whatever
    # the installed transformers makes of it happens to both.
    extra = {"add_prefix_space": True} if isinstance(tok, (GPT2Tokenizer, RobertaTokenizer)) else {}
    # An empty text gets the special tokens alone ([CLS] [SEP]), as bert_score does.
    return tok([t.strip() for t in texts], add_special_tokens=True, truncation=True, max_length=max_len,
               **extra)["input_ids"]


@torch.inference_mode()
def _embed(model, ids: list[list[int]], pad_id: int, batch_size: int, device: str) -> list[torch.Tensor]:
    """L2-normalised hidden states of the model's last (kept) layer, one (T_i, D) tensor per text.
    Texts run longest first, so each batch pads only to lengths close to its own."""
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    out: list[torch.Tensor | None] = [None] * len(ids)
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        width = len(ids[chunk[0]])
        x = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for j, i in enumerate(chunk):
            x[j, :len(ids[i])], mask[j, :len(ids[i])] = torch.tensor(ids[i]), 1
        h = model(x.to(device), attention_mask=mask.to(device))[0].float()  # (B, T, D)
        h = h / h.norm(dim=-1, keepdim=True)
        for j, i in enumerate(chunk):
            out[i] = h[j, :len(ids[i])]
    return out


def _pad(rows: list[torch.Tensor]) -> torch.Tensor:
    return torch.nn.utils.rnn.pad_sequence(rows, batch_first=True)


@torch.inference_mode()
def _greedy_match(hyp: list[torch.Tensor], ref: list[torch.Tensor], hyp_w: list[torch.Tensor],
                  ref_w: list[torch.Tensor], batch_size: int) -> torch.Tensor:
    """(N, 3) precision, recall, F1 of each (hypothesis, reference) pair of embedding matrices."""
    out = []
    for s in range(0, len(hyp), batch_size):
        h, r = _pad(hyp[s:s + batch_size]), _pad(ref[s:s + batch_size])  # (B, Th, D), (B, Tr, D)
        hw = _pad(hyp_w[s:s + batch_size]).to(h.device)  # (B, Th); padding weighs 0
        rw = _pad(ref_w[s:s + batch_size]).to(h.device)
        h_len = torch.tensor([len(x) for x in hyp[s:s + batch_size]], device=h.device)
        r_len = torch.tensor([len(x) for x in ref[s:s + batch_size]], device=h.device)
        h_mask = torch.arange(h.shape[1], device=h.device) < h_len[:, None]
        r_mask = torch.arange(r.shape[1], device=h.device) < r_len[:, None]
        sim = torch.bmm(h, r.transpose(1, 2))  # (B, Th, Tr) cosine similarities
        # Padding counts as similarity 0 in the max below: bert_score's behaviour, see bertscore().
        sim = sim.masked_fill(~(h_mask[:, :, None] & r_mask[:, None, :]), 0.0)
        best_for_hyp = sim.max(dim=2).values  # (B, Th); padded rows weigh 0 below
        best_for_ref = sim.max(dim=1).values  # (B, Tr)
        # Weights normalised first, then summed, in bert_score's order (same float32 rounding).
        p = (best_for_hyp * (hw / hw.sum(dim=1, keepdim=True))).sum(dim=1)
        r_ = (best_for_ref * (rw / rw.sum(dim=1, keepdim=True))).sum(dim=1)
        f = 2 * p * r_ / (p + r_)
        f = f.masked_fill(f.isnan(), 0.0)
        # Texts that are only [CLS] [SEP] (empty) score 0; F was taken before, as in bert_score.
        empty = (h_len == 2) | (r_len == 2)
        out.append(torch.stack([p.masked_fill(empty, 0.0), r_.masked_fill(empty, 0.0), f], dim=1).cpu())
    return torch.cat(out)


def _read_baseline(path: str | Path, num_layers: int) -> torch.Tensor:
    """(3,) baseline P, R, F for `num_layers` from a bert_score baseline file."""
    path = Path(path)
    if not path.is_file():
        raise EvalInputError(f"bertscore: baseline file not found: {path}")
    text = path.read_text()
    rows = list(csv.reader(text.splitlines(), delimiter="\t" if "\t" in text.splitlines()[0] else ","))
    header = [c.strip().upper() for c in rows[0]]
    if header[1:4] != ["P", "R", "F"]:
        raise EvalInputError(f"bertscore: {path}: expected a header LAYER,P,R,F, got {','.join(rows[0])}")
    for row in rows[1:]:
        if row and int(float(row[0])) == num_layers:
            return torch.tensor([float(v) for v in row[1:4]], dtype=torch.float32)
    raise EvalInputError(f"bertscore: {path} has no row for layer {num_layers}")
