"""`llmkit eval SUITE.yaml [key=value ...]`: generate from a model and score, or score files.

A suite names a model (base, merged, or a run's adapter directory), a dataset of prompts with
references, the metrics, and optionally texts for perplexity:

    kind: eval
    name: instructions
    metrics: [bleu, rouge, bertscore, exact_match, perplexity]
    model: {name: runs/sft-lora/model}
    data: {path: instructions, split: test, max_samples: 200}
    perplexity: {texts: eval/data/texts.jsonl}

With a model, prompts are generated in batches (left padding, greedy unless generate.temperature
> 0) and the predictions are appended to `predictions.partial.jsonl` batch by batch, so a killed
run started again with the same command continues from the last finished batch. Without a model,
`predictions.path` names a file of predictions (a `prediction` column, and `reference` or
`references` columns, or references from data.path row by row) and only scoring runs. Writes
`predictions.jsonl` (each row with its per-row scores), `metrics.json`, `report.md` and
`scores.png` in output.dir. Every metric is computed by `llmkit.eval` (see each module).
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from llmkit import faults
from llmkit.config import build, expand_aliases, load_yaml, merge, opt, parse_overrides, to_dict
from llmkit.errors import ConfigError, DataError
from llmkit.eval import suite_report
from llmkit.eval.fewshot import FewShotConfig
from llmkit.recipes import Compared, Recipe

GENERATION_METRICS = ("bleu", "rouge", "bertscore", "exact_match", "reward")
METRICS = GENERATION_METRICS + ("perplexity",)
ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum", "rougeS", "rougeSU")


@dataclass
class EvalModelConfig:
    name: str | None = opt(None, "Model to evaluate: short name (pico-llama), model directory, merged model, or a run's adapter directory (base + adapter). Empty: score predictions.path only.")
    base: str | None = opt(None, "Base model for an adapter directory that does not name one.")
    chat_template: str | None = opt(None, "Jinja chat template (text or .jinja path); default: the tokenizer's, else llmkit's plain one.")


@dataclass
class EvalDataConfig:
    path: str | None = opt(None, "Prompts with references: bundled name (instructions), JSONL/CSV/Parquet file, or directory of split files.")
    split: str = opt("test", "Split to evaluate (a single file is one split, used whatever its name).")
    format: Literal["auto", "messages", "prompt_completion"] = opt("auto", "messages (reference: the last assistant turn) or prompt + completion (reference: completion, a string or a list of strings).")
    messages_column: str = opt("messages", "Conversation column (messages format).")
    prompt_column: str = opt("prompt", "Prompt column (prompt_completion format).")
    reference_column: str = opt("completion", "Reference column (prompt_completion format): a string or a list of strings.")
    max_samples: int | None = opt(None, "Evaluate only the first N rows.")


@dataclass
class PredictionsConfig:
    path: str | None = opt(None, "Score this file of predictions instead of generating (JSONL, CSV or Parquet).")
    column: str = opt("prediction", "Column with the predictions (a run's generations.jsonl: finetuned or base).")
    reference_column: str = opt("reference", "Column with the references (a string or a list of strings); when absent, references come from data.path row by row.")


@dataclass
class GenerateConfig:
    max_new_tokens: int = opt(64, "Tokens to generate per prompt.")
    batch_size: int = opt(16, "Prompts per generation batch.")
    temperature: float = opt(0.0, "0: greedy decoding; > 0: sampling at this temperature.")
    seed: int = opt(42, "Seed for sampling.")


@dataclass
class PerplexityConfig:
    texts: str | None = opt(None, "Texts to score: JSONL/CSV/Parquet file or bundled name, with a text column.")
    text_column: str = opt("text", "Column with the texts.")
    max_length: int | None = opt(None, "Sliding-window size in tokens (default: the model's maximum).")
    stride: int | None = opt(None, "Tokens between window ends (default: max_length // 2).")
    batch_size: int = opt(8, "Windows per forward pass.")
    max_samples: int | None = opt(None, "Score only the first N texts.")


@dataclass
class BleuConfig:
    tokenize: str = opt("13a", "sacrebleu tokenizer (13a, intl, char, zh, ja-mecab, none, ...).")
    lowercase: bool = opt(False, "Lowercase before scoring.")


@dataclass
class RougeConfig:
    types: list[str] = opt(factory=lambda: list(ROUGE_TYPES), help="ROUGE variants: rouge1, rouge2, rougeN, rougeL, rougeLsum, rougeS, rougeSU.")
    use_stemmer: bool = opt(False, "Porter-stem words before matching (rouge_score's option).")
    skip_gap: int | None = opt(None, "Maximum gap between skip-bigram words for rougeS/rougeSU (None: any).")


@dataclass
class BertScoreConfig:
    model: str = opt("minilm", "Encoder: short name (minilm, the embedded all-MiniLM-L6-v2) or a local model directory.")
    num_layers: int | None = opt(None, "Hidden layer whose embeddings are matched (default: the last).")
    idf: bool = opt(False, "Weight tokens by inverse document frequency over the references.")
    baseline: str | None = opt(None, "bert_score baseline CSV for rescaling (none: raw scores).")
    batch_size: int = opt(64, "Sentences per encoder batch.")


@dataclass
class RewardScoreConfig:
    model: str | None = opt(None, "Reward model directory (`llmkit train recipes/rlhf/reward.yaml` writes one); metric `reward` is its score of each prompt + prediction, minus its calibration offset.")
    batch_size: int = opt(32, "Sequences per reward-model forward.")


@dataclass
class EvalOutputConfig:
    dir: str = opt("runs/eval-{name}", "Output directory; {name} is the suite's name.")
    overwrite: bool = opt(False, "Allow writing over a finished evaluation in the same directory.")
    examples: int = opt(5, "Best and worst rows shown in report.md.")


@dataclass
class SuiteConfig:
    kind: str = opt("eval", "Must be `eval` for an evaluation suite.")
    name: str = opt("eval", "Suite name (used in the output directory and report title).")
    metrics: list[str] = opt(factory=lambda: list(GENERATION_METRICS), help=f"Metrics to compute: {', '.join(METRICS)}.")
    model: EvalModelConfig = opt(factory=EvalModelConfig)
    data: EvalDataConfig = opt(factory=EvalDataConfig)
    predictions: PredictionsConfig = opt(factory=PredictionsConfig)
    generate: GenerateConfig = opt(factory=GenerateConfig)
    perplexity: PerplexityConfig = opt(factory=PerplexityConfig)
    bleu: BleuConfig = opt(factory=BleuConfig)
    rouge: RougeConfig = opt(factory=RougeConfig)
    bertscore: BertScoreConfig = opt(factory=BertScoreConfig)
    reward: RewardScoreConfig = opt(factory=RewardScoreConfig)
    fewshot: FewShotConfig = opt(factory=FewShotConfig)
    output: EvalOutputConfig = opt(factory=EvalOutputConfig)

    def validate(self) -> None:
        if self.kind != "eval":
            raise ConfigError(f"`kind` is {self.kind!r}; an evaluation suite needs `kind: eval` (training recipes run with `llmkit train`)")
        if not self.metrics:
            raise ConfigError("`metrics` is empty; choose from: " + ", ".join(METRICS))
        for m in self.metrics:
            if m not in METRICS:
                import difflib

                near = difflib.get_close_matches(m, METRICS, n=1)
                raise ConfigError(f"`metrics` has unknown metric {m!r}{f' (did you mean `{near[0]}`?)' if near else ''}; "
                                  f"choose from: {', '.join(METRICS)}")
        gen = [m for m in self.metrics if m in GENERATION_METRICS]
        if gen and not self.predictions.path:
            if not self.model.name:
                raise ConfigError(f"metrics {', '.join(gen)} need predictions: set model.name (to generate) or predictions.path (to score a file)")
            if not self.data.path:
                raise ConfigError(f"metrics {', '.join(gen)} need prompts with references: set data.path")
        if "reward" in self.metrics and not self.reward.model:
            raise ConfigError("metric reward needs a reward model: set reward.model (a directory from `llmkit train recipes/rlhf/reward.yaml`)")
        if "perplexity" in self.metrics:
            if not self.model.name:
                raise ConfigError("metric perplexity needs a model: set model.name")
            if not self.perplexity.texts:
                raise ConfigError("metric perplexity needs texts: set perplexity.texts (a file with a text column)")
        if self.generate.max_new_tokens < 1 or self.generate.batch_size < 1 or self.generate.temperature < 0:
            raise ConfigError("generate.max_new_tokens and generate.batch_size must be >= 1, generate.temperature >= 0")
        for key, v in (("data.max_samples", self.data.max_samples), ("perplexity.max_samples", self.perplexity.max_samples)):
            if v is not None and v < 1:
                raise ConfigError(f"{key} must be >= 1, got {v}")
        if self.fewshot.k and self.predictions.path:
            raise ConfigError("fewshot.k places demonstrations in the prompts the model generates from; with "
                              "predictions.path nothing is generated (set fewshot.k=0)")
        for t in self.rouge.types:
            if t not in ROUGE_TYPES and not (t.startswith("rouge") and t[5:].isdigit()):
                raise ConfigError(f"rouge.types has unknown type {t!r}; choose from rouge1..rouge9, rougeL, rougeLsum, rougeS, rougeSU")


FILE_KEYS = (("data", "path"), ("predictions", "path"), ("perplexity", "texts"), ("bertscore", "baseline"), ("reward", "model"),
             ("fewshot", "path"))


def _relative_to(raw: dict, base: Path) -> None:
    """File paths written in a suite are relative to the suite file (when the file is there)."""
    for section, key in FILE_KEYS:
        value = raw.get(section, {}).get(key) if isinstance(raw.get(section), dict) else None
        if isinstance(value, str) and not Path(value).is_absolute() and (base / value).exists():
            raw[section][key] = str(base / value)


def load_suite(path: str | Path, overrides: list[str] = ()) -> SuiteConfig:
    """dataclass defaults < suite YAML < overrides -> SuiteConfig. Raises ConfigError."""
    raw = expand_aliases(load_yaml(path))
    _relative_to(raw, Path(path).parent)
    merged = merge(raw, expand_aliases(parse_overrides(list(overrides))))
    merged.setdefault("name", Path(path).stem)
    cfg = build(SuiteConfig, merged)
    cfg.validate()
    cfg.output.dir = cfg.output.dir.format(name=cfg.name)
    return cfg


# ----------------------------------------------------------------------------- inputs


def _rows(path: str, split: str | None, max_samples: int | None) -> tuple[list[dict], str]:
    from llmkit.data.loading import load_splits

    splits = load_splits(path)
    if len(splits) == 1:
        name, table = next(iter(splits.items()))
    elif split in splits:
        name, table = split, splits[split]
    else:
        raise DataError(f"{path}: no split `{split}`; it has: {', '.join(splits)} (set data.split)")
    source = f"{path} [{name}]" if len(splits) > 1 else path
    rows = list(table)[:max_samples or None]
    if not rows:
        raise DataError(f"{source}: no rows to evaluate")
    return rows, source


def _references(value, where: str) -> list[str]:
    if isinstance(value, str) and value.strip():
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    raise DataError(f"{where}: reference must be a non-empty string or a list of strings, got {value!r:.60}")


def read_examples(cfg: EvalDataConfig, task_column: str = "task", split: str | None = None,
                  max_samples: int | None = -1) -> tuple[list[dict], str]:
    """-> ([{"prompt": str or messages, "references": [str, ...], "task": the row's task_column value
    or None}], source name) of `split` (default cfg.split), the first max_samples rows (default cfg's)."""
    from llmkit.data.sft import _check_messages

    rows, source = _rows(cfg.path, split or cfg.split, cfg.max_samples if max_samples == -1 else max_samples)
    fmt = cfg.format
    if fmt == "auto":
        cols = set(rows[0])
        if cfg.messages_column in cols:
            fmt = "messages"
        elif cfg.prompt_column in cols and cfg.reference_column in cols:
            fmt = "prompt_completion"
        else:
            raise DataError(f"{source}: cannot tell the format from columns {', '.join(cols)}; expected `{cfg.messages_column}` "
                            f"or `{cfg.prompt_column}` + `{cfg.reference_column}` (set data.format and the column names)")
    out = []
    for i, row in enumerate(rows):
        where = f"{source}: row {i + 1}"
        if fmt == "messages":
            msgs = row.get(cfg.messages_column)
            _check_messages(msgs, where)
            last = max(j for j, m in enumerate(msgs) if m["role"] == "assistant")
            out.append({"prompt": [{"role": m["role"], "content": m["content"]} for m in msgs[:last]],
                        "references": [msgs[last]["content"]], "task": row.get(task_column)})
        else:
            for col in (cfg.prompt_column, cfg.reference_column):
                if col not in row:
                    raise DataError(f"{where}: missing column `{col}`")
            prompt = row[cfg.prompt_column]
            if not (isinstance(prompt, str) and prompt.strip()) and not isinstance(prompt, list):
                raise DataError(f"{where}: empty or missing prompt in column `{cfg.prompt_column}`")
            out.append({"prompt": prompt, "references": _references(row[cfg.reference_column], where),
                        "task": row.get(task_column)})
    return out, source


def add_demonstrations(examples: list[dict], source: str, cfg: SuiteConfig) -> list[dict]:
    """fewshot.k demonstrations in every prompt, drawn from a split the suite does not score."""
    from dataclasses import replace

    from llmkit.eval import fewshot

    f = cfg.fewshot
    demo_data = replace(cfg.data, path=f.path or cfg.data.path)
    pool_rows, pool_source = read_examples(demo_data, f.task_column, split=f.split, max_samples=None)
    if pool_source == source:
        raise ConfigError(f"fewshot: the demonstrations would come from the evaluated rows themselves ({source}); "
                          f"set fewshot.split to another split of data.path, or fewshot.path to another file")
    if f.same_task:
        for name, rows in ((source, examples), (pool_source, pool_rows)):
            i = next((i for i, r in enumerate(rows) if r["task"] is None), None)
            if i is not None:
                raise DataError(f"{name}: row {i + 1}: no `{f.task_column}` column for fewshot.same_task "
                                f"(set fewshot.task_column, or fewshot.same_task=false)")
    pool = [{"prompt": r["prompt"], "reference": r["references"][0], "task": r["task"]} for r in pool_rows]
    return fewshot.apply(examples, pool, f)


def read_predictions(cfg: SuiteConfig) -> tuple[list[dict], str]:
    """Score-only mode: -> ([{"prompt", "references", "prediction"}], source)."""
    rows, source = _rows(cfg.predictions.path, None, cfg.data.max_samples)
    col, ref_col = cfg.predictions.column, cfg.predictions.reference_column
    refs_from_data = ref_col not in rows[0] and "references" not in rows[0]
    data = read_examples(cfg.data)[0] if refs_from_data and cfg.data.path else None
    if refs_from_data and data is None:
        raise DataError(f"{source}: no `{ref_col}` column and no data.path to take references from "
                        f"(set predictions.reference_column or data.path)")
    if data is not None and len(data) != len(rows):
        raise DataError(f"{source}: {len(rows)} predictions but {cfg.data.path} has {len(data)} references; they must pair up row by row")
    out = []
    for i, row in enumerate(rows):
        where = f"{source}: row {i + 1}"
        if col not in row:
            raise DataError(f"{where}: missing column `{col}` (set predictions.column)")
        if not isinstance(row[col], str):
            raise DataError(f"{where}: prediction in `{col}` is {type(row[col]).__name__}, expected a string")
        if data is not None:
            prompt, refs = data[i]["prompt"], data[i]["references"]
        else:
            prompt = row.get("prompt")
            refs = _references(row[ref_col] if ref_col in row else row["references"], where)
        out.append({"prompt": prompt, "references": refs, "prediction": row[col]})
    return out, source


def read_texts(cfg: PerplexityConfig) -> tuple[list[str], str]:
    rows, source = _rows(cfg.texts, "test", cfg.max_samples)
    texts = []
    for i, row in enumerate(rows):
        t = row.get(cfg.text_column)
        if not isinstance(t, str) or not t.strip():
            raise DataError(f"{source}: row {i + 1}: empty or missing text in column `{cfg.text_column}` (set perplexity.text_column)")
        texts.append(t)
    return texts, source


# ----------------------------------------------------------------------------- generation


def _prompt_ids(prompt, tokenizer) -> list[int]:
    if isinstance(prompt, list):
        out = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=True)
        return list(out["input_ids"])
    return tokenizer(prompt)["input_ids"]


def generate_predictions(model, tokenizer, examples: list[dict], cfg: SuiteConfig, out: Path) -> list[str]:
    """Batched generation, appended to predictions.partial.jsonl as each batch finishes; rows already
    there (from a killed run of the same suite) are kept and not generated again."""
    import torch
    from tqdm.auto import tqdm

    from llmkit.eval.heldout import generate

    partial = out / "predictions.partial.jsonl"
    done: list[str] = []
    if partial.exists():
        for line in partial.read_text().splitlines():
            try:
                done.append(json.loads(line)["prediction"])
            except (json.JSONDecodeError, KeyError):
                break  # a line cut by the kill: generate from here
        partial.write_text("".join(json.dumps({"prediction": p}) + "\n" for p in done))
        if done:
            print(f"resuming generation: {len(done)} of {len(examples)} predictions already in {partial}", file=sys.stderr)
    g = cfg.generate
    ids = [_prompt_ids(e["prompt"], tokenizer) for e in examples]
    bar = tqdm(total=len(examples), initial=len(done), desc="generate", unit="prompt")
    with open(partial, "a") as fh:
        for start in range(len(done), len(examples), g.batch_size):
            if g.temperature > 0:
                torch.manual_seed(g.seed + start)
            preds = generate(model, tokenizer, ids[start:start + g.batch_size], g.max_new_tokens, g.batch_size,
                             temperature=g.temperature, progress=False)
            fh.writelines(json.dumps({"prediction": p}) + "\n" for p in preds)
            fh.flush()
            faults.point("train")  # a batch is safe: a run killed now resumes after it
            done += preds
            bar.update(len(preds))
    bar.close()
    return done


# ----------------------------------------------------------------------------- scoring


def score(examples: list[dict], cfg: SuiteConfig) -> tuple[dict, dict, dict[str, list]]:
    """-> (headline metrics, details per metric, per-row scores by name)."""
    from llmkit.eval.bertscore import bertscore
    from llmkit.eval.bleu import bleu
    from llmkit.eval.heldout import normalise_answer
    from llmkit.eval.rouge import rouge

    preds = [e["prediction"] for e in examples]
    refs = [e["references"] for e in examples]
    head, details, rows = {}, {}, {}
    if "bleu" in cfg.metrics:
        r = bleu(preds, refs, tokenize=cfg.bleu.tokenize, lowercase=cfg.bleu.lowercase, per_row=True)
        rows["bleu"] = r.pop("per_row")
        head["bleu"] = r["bleu"]
        details["bleu"] = r
    if "rouge" in cfg.metrics:
        r = rouge(preds, refs, rouge_types=tuple(cfg.rouge.types), use_stemmer=cfg.rouge.use_stemmer,
                  skip_gap=cfg.rouge.skip_gap, per_row=True)
        for t, vs in r.pop("per_row").items():
            rows[t] = vs
        head.update({t: v["f1"] for t, v in r.items()})
        details["rouge"] = r
    if "bertscore" in cfg.metrics:
        b = cfg.bertscore
        r = bertscore(preds, refs, model=b.model, num_layers=b.num_layers, idf=b.idf, batch_size=b.batch_size,
                      baseline_path=b.baseline)
        per = r.pop("per_row")
        rows["bertscore_f1"] = per["f1"]
        head.update({f"bertscore_{k}": r[k] for k in ("precision", "recall", "f1")})
        details["bertscore"] = r
    if "exact_match" in cfg.metrics:
        rows["exact_match"] = [float(any(normalise_answer(p) == normalise_answer(x) for x in rs)) for p, rs in zip(preds, refs)]
        head["exact_match"] = sum(rows["exact_match"]) / len(rows["exact_match"])
    if "reward" in cfg.metrics:
        rows["reward"], details["reward"] = reward_scores(examples, cfg.reward)
        head["reward"] = sum(rows["reward"]) / len(rows["reward"])
    return head, details, rows


def reward_scores(examples: list[dict], cfg: RewardScoreConfig) -> tuple[list[float], dict]:
    """The reward model's calibrated score r(prompt, prediction) - offset of every row, as PPO sees it."""
    from llmkit.rlhf.reward_model import load_reward_model, score_texts

    for i, e in enumerate(examples):
        if not e.get("prompt"):
            raise DataError(f"row {i + 1}: metric reward needs the prompt; give predictions a `prompt` column or set data.path")
    model, tok, offset = load_reward_model(cfg.model)
    scores = score_texts(model, tok, [e.get("query", e["prompt"]) for e in examples], [e["prediction"] for e in examples],
                         offset=offset, batch_size=cfg.batch_size)
    return scores, {"model": cfg.model, "offset": offset}


# ----------------------------------------------------------------------------- run


def _load_model(cfg: SuiteConfig):
    from llmkit.models.loading import set_chat_template
    from llmkit.models.trained import load_causal

    model, tok = load_causal(cfg.model.name, base=cfg.model.base)
    set_chat_template(tok, cfg.model.chat_template)
    return model, tok


def run(cfg: SuiteConfig) -> dict:
    from llmkit.data.sft import prompt_text
    from llmkit.tracking import prepare_output_dir, write_json

    out = Path(cfg.output.dir)
    t0 = time.perf_counter()
    # Inputs are read and checked before any model loads.
    gen_metrics = [m for m in cfg.metrics if m in GENERATION_METRICS]
    examples, source = ([], None)
    if gen_metrics:
        examples, source = read_predictions(cfg) if cfg.predictions.path else read_examples(cfg.data, cfg.fewshot.task_column)
        if cfg.fewshot.k:
            examples = add_demonstrations(examples, source, cfg)
    texts, text_source = read_texts(cfg.perplexity) if "perplexity" in cfg.metrics else ([], None)
    model = tok = None
    if cfg.model.name and ((gen_metrics and not cfg.predictions.path) or texts):
        model, tok = _load_model(cfg)
    prepare_output_dir(out, to_dict(cfg), overwrite=cfg.output.overwrite)  # once the inputs and the model are good
    timings = {}
    if gen_metrics and not cfg.predictions.path:
        t = time.perf_counter()
        preds = generate_predictions(model, tok, examples, cfg, out)
        timings["generate_seconds"] = round(time.perf_counter() - t, 2)
        for e, p in zip(examples, preds):
            e["prediction"] = p

    metrics: dict = {"suite": cfg.name, "model": cfg.model.name, "data": source,
                     "predictions_from": cfg.predictions.path or ("generated" if gen_metrics else None),
                     "num_examples": len(examples), "fewshot_k": cfg.fewshot.k,
                     "fewshot_same_task": cfg.fewshot.same_task if cfg.fewshot.k else None}
    details, per_row = {}, {}
    if gen_metrics:
        t = time.perf_counter()
        head, details, per_row = score(examples, cfg)
        timings["score_seconds"] = round(time.perf_counter() - t, 2)
        metrics.update(head)
    if texts:
        from llmkit.eval.perplexity import perplexity

        p = cfg.perplexity
        t = time.perf_counter()
        r = perplexity(model, tok, texts, stride=p.stride, max_length=p.max_length, batch_size=p.batch_size)
        timings["perplexity_seconds"] = round(time.perf_counter() - t, 2)
        metrics.update({"perplexity": r["perplexity"], "nll": r["nll"], "bits_per_token": r["bits_per_token"],
                        "perplexity_tokens": r["num_tokens"], "perplexity_texts": text_source})
        details["perplexity"] = r
    metrics.update(timings, seconds=round(time.perf_counter() - t0, 2), details=details)

    if examples:
        with open(out / "predictions.jsonl", "w") as fh:
            for i, e in enumerate(examples):
                row = {"prompt": prompt_text(e.get("query", e["prompt"])), "references": e["references"], "prediction": e["prediction"],
                       "scores": {k: vs[i] for k, vs in per_row.items()}}
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    suite_report.write_report(out, cfg, metrics, examples, per_row)
    write_json(out / "metrics.json", metrics)  # last: its presence marks a finished evaluation
    (out / "predictions.partial.jsonl").unlink(missing_ok=True)  # kept till here: a kill before loses no generation
    return metrics


def headline(metrics: dict) -> str:
    keys = [k for k in ("bleu", "rouge1", "rouge2", "rougeL", "rougeLsum", "rougeS", "rougeSU", "bertscore_f1",
                        "exact_match", "reward", "perplexity") if k in metrics]
    parts = []
    for k in keys:
        v = metrics[k]
        parts.append(f"{k}={v:.4g}" if isinstance(v, float) and math.isfinite(v) else f"{k}={v}")
    return "  ".join(parts)


RECIPE = Recipe(kind="eval", verb="eval", config_cls=SuiteConfig, run=run, load=load_suite,
                summary_line=suite_report.summary_line, section=suite_report.pipeline_section, grouped=True,
                headline=suite_report.headline,
                compare=Compared(("exact_match", "rougeL", "bleu", "bertscore_f1", "reward"), True,
                                 tuple((k, k) for k in ("exact_match", "rouge1", "rouge2", "rougeL", "bleu", "bertscore_f1",
                                                        "reward", "perplexity", "seconds")), costs=False))
