"""`llmkit generate RECIPE.yaml`: Self-Instruct (Wang et al. 2022, arXiv 2212.10560) as four stages
over append-only JSONL files in one output directory.

    bootstrap   seed + machine instructions in a numbered list -> new instructions; filters, then
                ROUGE-L novelty against the pool            -> instructions.jsonl, rejected.jsonl
    classify    is each kept instruction a classification task? -> classification.jsonl
    instances   input-first (or output-first for classification) examples per task, parsed and
                filtered                                     -> instances.jsonl
    export      tasks with instances (plus the seeds) in the sft recipe's `messages` format
                                                             -> finetune.jsonl, stats.json, report.md

Crash safety and resume: every record is appended and flushed as it is produced. Bootstrap works
in rounds of `bootstrap.prompts_per_round` prompts; a prompt's records carry (round, prompt) and a
line in prompts.jsonl marks the prompt done after them. Started again, a run drops the records of
a prompt that has no done line (cut by the kill), regenerates that round (its prompts are sampled
from the seeds and the machine instructions of earlier rounds only, with a per-round seed, so they
are the same prompts) and skips the prompts already done: no kept instruction is lost or written
twice. Classify and instances skip the instructions they have a record for. `num_instructions`
ends the run; starting it again with a larger number continues it.

Reference defaults (brief: ../shared/briefs/self-instruct.md) are the dataclass defaults here: 6 seed
+ 2 machine instructions per prompt, up to 7 new ones, temperature 0.7, top-p 0.5, presence
penalty 2; classification at temperature 0; instances at temperature 0 with presence penalty 1.5,
at most 5 per task. Where llmkit departs from the reference: instructions are not lower-cased
(`str.capitalize` quirk), a reply cut at the token limit loses only its last item, and the novelty
check uses the exact, fast `NoveltyIndex` (same decisions as rouge_score).
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from llmkit import faults
from llmkit.config import build, expand_aliases, load_yaml, merge, opt, parse_overrides, to_dict
from llmkit.errors import ConfigError, LlmkitError
from llmkit.recipes import Recipe
from llmkit.selfinstruct import report
from llmkit.selfinstruct.backends import BackendConfig
from llmkit.selfinstruct.filters import FilterConfig
from llmkit.tracking import prepare_output_dir, run_kind

STAGES = ("bootstrap", "classify", "instances", "export")


@dataclass
class BootstrapConfig:
    num_seed: int = opt(6, "Seed instructions per prompt.")
    num_machine: int = opt(2, "Machine-generated instructions per prompt (from earlier rounds; seeds fill in while there are fewer).")
    max_new: int = opt(7, "New instructions asked for per prompt (the stop strings end the list after them).")
    prompts_per_round: int = opt(8, "Prompts generated together; the pool grows between rounds.")
    max_tokens: int = opt(256, "Token limit per reply.")
    temperature: float = opt(0.7, "Sampling temperature.")
    top_p: float = opt(0.5, "Nucleus sampling.")
    presence_penalty: float = opt(2.0, "OpenAI-style additive presence penalty.")
    classification_only: bool = opt(False, "Show only classification seeds and ask for classification tasks.")
    drop_truncated: bool = opt(True, "Drop the last item of a reply cut at the token limit (probably unfinished).")
    patience: int = opt(20, "Stop after this many rounds in a row that keep nothing (a model that cannot follow the format).")


@dataclass
class ClassifyStageConfig:
    num_demos: int | None = opt(None, "Demonstrations in the yes/no prompt (None: all 14; fewer for short-context models).")
    max_tokens: int = opt(3, "Token limit per answer.")


@dataclass
class InstanceStageConfig:
    num_demos: int | None = opt(None, "Demonstrations in the instance prompt (None: all 6; fewer for short-context models). With 0, the prompt ends in the first marker (`Output:`, or `Class label:` for classification), so even a model that never saw the layout answers in it.")
    max_tokens: int = opt(350, "Token limit per reply (the reference: 300 for classification, 350 otherwise).")
    presence_penalty: float = opt(1.5, "OpenAI-style additive presence penalty.")


@dataclass
class ExportConfig:
    include_seeds: bool = opt(True, "Also export the seed tasks' instances (as the reference does).")
    join_input: str = opt("\n\n", "Text between an instruction and its input in the user turn.")


@dataclass
class GenerateOutputConfig:
    dir: str = opt("runs/self-instruct", "Output directory (a run started again in it continues).")
    overwrite: bool = opt(False, "Delete what the directory holds and start afresh.")


@dataclass
class SelfInstructConfig:
    kind: str = opt("self_instruct", "Must be `self_instruct`.")
    seeds: str = opt("llmkit", "Seed tasks: `llmkit` (the project's own set) or a JSONL file in the reference format.")
    num_instructions: int = opt(100, "Stop when this many machine instructions are kept.")
    seed: int = opt(42, "Random seed (prompt sampling, generation, instance sampling).")
    stages: list[str] = opt(factory=lambda: list(STAGES), help=f"Stages to run, in order: {', '.join(STAGES)}.")
    backend: BackendConfig = opt(factory=BackendConfig)
    bootstrap: BootstrapConfig = opt(factory=BootstrapConfig)
    classify: ClassifyStageConfig = opt(factory=ClassifyStageConfig)
    instances: InstanceStageConfig = opt(factory=InstanceStageConfig)
    filters: FilterConfig = opt(factory=FilterConfig)
    export: ExportConfig = opt(factory=ExportConfig)
    output: GenerateOutputConfig = opt(factory=GenerateOutputConfig)

    def validate(self) -> None:
        if self.kind != "self_instruct":
            raise ConfigError(f"`kind` is {self.kind!r}; `llmkit generate` runs `kind: self_instruct` recipes")
        if self.num_instructions < 0:
            raise ConfigError(f"num_instructions must be >= 0, got {self.num_instructions}")
        for s in self.stages:
            if s not in STAGES:
                raise ConfigError(f"`stages` has unknown stage {s!r}; choose from: {', '.join(STAGES)}")
        b = self.bootstrap
        if b.num_seed < 1 or b.num_machine < 0 or b.max_new < 1 or b.prompts_per_round < 1 or b.patience < 1:
            raise ConfigError("bootstrap: num_seed, max_new, prompts_per_round and patience must be >= 1, num_machine >= 0")


def load_config(path: str | Path, overrides: list[str] = ()) -> SelfInstructConfig:
    merged = merge(expand_aliases(load_yaml(path)), expand_aliases(parse_overrides(list(overrides))))
    cfg = build(SelfInstructConfig, merged)
    cfg.validate()
    return cfg


# ----------------------------------------------------------------------------- files


class Log:
    """An append-only JSONL file: one record per line, flushed as written. Reading skips a last
    line cut by a kill (and removes it, so the next append starts on a fresh line)."""

    def __init__(self, path: Path):
        self.path = path

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        rows, good_bytes = [], 0
        with open(self.path, "rb") as fh:
            for raw in fh:
                try:
                    rows.append(json.loads(raw))
                except json.JSONDecodeError:
                    break
                good_bytes += len(raw)
        if good_bytes < self.path.stat().st_size:
            with open(self.path, "r+b") as fh:
                fh.truncate(good_bytes)
        return rows

    def rewrite(self, rows: list[dict]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        tmp.replace(self.path)

    def append(self, row: dict) -> None:
        with open(self.path, "a") as fh:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            fh.flush()
        faults.point("train")  # a record is safe: a run killed now resumes after it


@dataclass
class Files:
    out: Path

    def __post_init__(self):
        self.instructions = Log(self.out / "instructions.jsonl")
        self.rejected = Log(self.out / "rejected.jsonl")
        self.prompts = Log(self.out / "prompts.jsonl")
        self.classification = Log(self.out / "classification.jsonl")
        self.instances = Log(self.out / "instances.jsonl")


# ----------------------------------------------------------------------------- stage 1: bootstrap


def _round_prompts(cfg: SelfInstructConfig, seeds: list, kept: list[dict], rnd: int) -> list[dict]:
    """The prompts of round `rnd`: a function of the seed, the round and the instructions kept in
    earlier rounds only, so a resumed round gets the very same prompts."""
    from llmkit.selfinstruct.prompts import bootstrap_prompt

    b = cfg.bootstrap
    rng = random.Random(f"{cfg.seed}:bootstrap:{rnd}")
    pool_seeds = [s for s in seeds if s.is_classification] if b.classification_only else seeds
    machine = [k for k in kept if k["round"] < rnd]
    out = []
    for p in range(b.prompts_per_round):
        m = rng.sample(machine, min(b.num_machine, len(machine)))
        s = rng.sample(pool_seeds, min(b.num_seed + b.num_machine - len(m), len(pool_seeds)))
        items = [("seed", x.id, x.instruction) for x in s] + [("machine", x["id"], x["instruction"]) for x in m]
        rng.shuffle(items)
        out.append({"round": rnd, "prompt": p, "seed_ids": [i for kind, i, _ in items if kind == "seed"],
                    "machine_ids": [i for kind, i, _ in items if kind == "machine"],
                    "text": bootstrap_prompt([t for _, _, t in items], classification_only=b.classification_only),
                    "num_in_context": len(items)})
    return out


def bootstrap(cfg: SelfInstructConfig, backend, seeds: list, files: Files, index) -> None:
    from tqdm.auto import tqdm

    from llmkit.selfinstruct.filters import instruction_rejection
    from llmkit.selfinstruct.prompts import bootstrap_stop, parse_bootstrap

    b = cfg.bootstrap
    done = {(r["round"], r["prompt"]) for r in files.prompts.read()}
    kept = [r for r in files.instructions.read() if (r["round"], r["prompt"]) in done]
    rejected = [r for r in files.rejected.read() if r.get("stage") != "bootstrap" or (r["round"], r["prompt"]) in done]
    files.instructions.rewrite(kept)  # drop what a killed prompt left half-written
    files.rejected.rewrite(rejected)
    for k in kept:
        index.add(k["instruction"], force=True)
    n_rejected = sum(r.get("stage") == "bootstrap" for r in rejected)
    if kept or done:
        print(f"resuming bootstrap: {len(kept)} kept, {n_rejected} rejected, {len(done)} prompts done", file=sys.stderr)
    rnd = max((r for r, _ in done), default=-1)
    if rnd >= 0 and all((rnd, p) in done for p in range(b.prompts_per_round)):
        rnd += 1
    rnd = max(rnd, 0)
    idle = 0
    bar = tqdm(total=cfg.num_instructions, initial=min(len(kept), cfg.num_instructions), desc="bootstrap", unit="instr")
    bar.set_postfix(kept=len(kept), rejected=n_rejected)
    while len(kept) < cfg.num_instructions and idle < b.patience:
        prompts = _round_prompts(cfg, seeds, kept, rnd)
        replies = backend.complete([p["text"] for p in prompts], max_tokens=b.max_tokens, temperature=b.temperature,
                                   top_p=b.top_p, stop=bootstrap_stop(prompts[0]["num_in_context"], b.max_new),
                                   presence_penalty=b.presence_penalty, seed=cfg.seed * 1_000_003 + rnd)
        before = len(kept)
        for p, reply in zip(prompts, replies):
            if (rnd, p["prompt"]) in done or len(kept) >= cfg.num_instructions:
                continue
            items = parse_bootstrap(reply.text, p["num_in_context"] + 1,
                                    reply.finish_reason if b.drop_truncated else "stop")
            where = {"round": rnd, "prompt": p["prompt"]}
            for text in items:
                reason = instruction_rejection(text, cfg.filters)
                score = None
                if reason is None:
                    added, score = index.check_add(text)
                    if added:
                        rec = {"id": f"machine_{len(kept)}", "instruction": text, **where, "max_rouge_l": round(score, 6),
                               "seed_ids": p["seed_ids"], "machine_ids": p["machine_ids"], "model": backend.name}
                        files.instructions.append(rec)
                        kept.append(rec)
                        if len(kept) >= cfg.num_instructions:
                            break
                        continue
                    reason = "rouge_similar"
                files.rejected.append({"stage": "bootstrap", "instruction": text, "reason": reason, **where,
                                       **({"rouge_l": round(score, 6)} if score is not None else {})})
                n_rejected += 1
            files.prompts.append({**where, "seed_ids": p["seed_ids"], "machine_ids": p["machine_ids"],
                                  "finish_reason": reply.finish_reason, "items": len(items), "reply": reply.text})
            done.add((rnd, p["prompt"]))
            bar.n = min(len(kept), cfg.num_instructions)
            bar.set_postfix(kept=len(kept), rejected=n_rejected)
        idle = idle + 1 if len(kept) == before else 0
        rnd += 1
    bar.close()
    if len(kept) < cfg.num_instructions:
        print(f"bootstrap stopped after {b.patience} rounds in a row kept nothing: {len(kept)} of "
              f"{cfg.num_instructions} instructions (see rejected.jsonl for why; a larger model follows the "
              f"list format better)", file=sys.stderr)


# ----------------------------------------------------------------------------- stages 2 and 3


def _pending(files: Files, log: Log) -> tuple[list[dict], dict]:
    done = {r["id"]: r for r in log.read()}
    return [k for k in files.instructions.read() if k["id"] not in done], done


def classify(cfg: SelfInstructConfig, backend, files: Files) -> None:
    from tqdm.auto import tqdm

    from llmkit.selfinstruct.prompts import CLASSIFY_STOP, classify_prompt, parse_classify

    todo, _ = _pending(files, files.classification)
    step = max(1, getattr(cfg.backend, "batch_size", 8))
    for i in tqdm(range(0, len(todo), step), desc="classify", unit="batch", disable=not todo):
        chunk = todo[i:i + step]
        replies = backend.complete([classify_prompt(k["instruction"], cfg.classify.num_demos) for k in chunk],
                                   max_tokens=cfg.classify.max_tokens, temperature=0.0, stop=CLASSIFY_STOP)
        for k, r in zip(chunk, replies):
            files.classification.append({"id": k["id"], "is_classification": parse_classify(r.text), "raw": r.text})


def _prime(is_classification: bool, num_demos: int | None) -> str:
    """Zero-shot instance prompts end in the layout's first marker; the reply continues it."""
    return ("Class label:" if is_classification else "Output:") if num_demos == 0 else ""


def instances(cfg: SelfInstructConfig, backend, files: Files) -> None:
    from tqdm.auto import tqdm

    from llmkit.selfinstruct.filters import filter_instances
    from llmkit.selfinstruct.prompts import instance_prompt, instance_stop, parse_instances

    clf = {r["id"]: r["is_classification"] for r in files.classification.read()}
    todo, _ = _pending(files, files.instances)
    missing = [k["id"] for k in todo if k["id"] not in clf]
    if missing:
        raise LlmkitError(f"instances: {len(missing)} instructions have no classification yet ({missing[0]}, ...); "
                          f"run the classify stage first (stages=[classify,instances])")
    step = max(1, getattr(cfg.backend, "batch_size", 8))
    s = cfg.instances
    for i in tqdm(range(0, len(todo), step), desc="instances", unit="batch", disable=not todo):
        chunk = todo[i:i + step]
        primes = [_prime(clf[k["id"]], s.num_demos) for k in chunk]
        replies = backend.complete([instance_prompt(k["instruction"], clf[k["id"]], s.num_demos) + p for k, p in zip(chunk, primes)],
                                   max_tokens=s.max_tokens, temperature=0.0, presence_penalty=s.presence_penalty,
                                   stop=instance_stop(cfg.filters.max_instances))
        for k, r, p in zip(chunk, replies, primes):
            parsed = parse_instances(p + r.text, clf[k["id"]])
            kept, dropped = filter_instances(parsed, truncated=r.finish_reason == "length", cfg=cfg.filters,
                                             rng=random.Random(f"{cfg.seed}:instances:{k['id']}"))
            files.instances.append({"id": k["id"], "instances": kept, "parsed": len(parsed), "dropped": dict(dropped),
                                    "finish_reason": r.finish_reason, "raw": r.text})
            if not kept:
                reason = "unparseable" if not parsed else max(dropped, key=dropped.get)
                files.rejected.append({"stage": "instances", "id": k["id"], "instruction": k["instruction"],
                                       "reason": reason})


# ----------------------------------------------------------------------------- stage 4: export


def export(cfg: SelfInstructConfig, seeds: list, files: Files, out: Path, seconds: dict) -> dict:
    from llmkit.tracking import write_json

    kept = files.instructions.read()
    clf = {r["id"]: r["is_classification"] for r in files.classification.read()}
    inst = {r["id"]: r for r in files.instances.read()}
    rejected = files.rejected.read()
    tasks = [{"id": k["id"], "instruction": k["instruction"], "is_classification": clf.get(k["id"]),
              "instances": inst[k["id"]]["instances"], "source": "machine"}
             for k in kept if k["id"] in inst and inst[k["id"]]["instances"]]
    if cfg.export.include_seeds:
        tasks += [{"id": s.id, "instruction": s.instruction, "is_classification": s.is_classification,
                   "instances": s.instances, "source": "seed"} for s in seeds]
    rows = []
    for t in tasks:
        for x in t["instances"]:
            user = t["instruction"] + (cfg.export.join_input + x["input"] if x["input"].strip() else "")
            rows.append({"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": x["output"]}],
                         "task_id": t["id"], "source": t["source"]})
    Log(out / "finetune.jsonl").rewrite(rows)

    prompts = files.prompts.read()
    reasons = Counter(r["reason"] for r in rejected if r["stage"] == "bootstrap")
    inst_drops = Counter()
    for r in inst.values():
        inst_drops.update(r["dropped"])
    machine_tasks = [t for t in tasks if t["source"] == "machine"]
    result = {
        "model": kept[0]["model"] if kept else None, "seeds": cfg.seeds, "num_seeds": len(seeds),
        "bootstrap": {"prompts": len(prompts), "rounds": len({p["round"] for p in prompts}),
                      "replies_cut_at_limit": sum(p["finish_reason"] == "length" for p in prompts),
                      "candidates": sum(p["items"] for p in prompts), "kept": len(kept),
                      "rejected": sum(reasons.values()), "rejected_by": dict(reasons.most_common())},
        "classify": {"done": len(clf), "classification": sum(clf.values()), "other": len(clf) - sum(clf.values())},
        "instances": {"tasks_done": len(inst), "parsed": sum(r["parsed"] for r in inst.values()),
                      "kept": sum(len(r["instances"]) for r in inst.values()), "dropped_by": dict(inst_drops.most_common()),
                      "tasks_with_instances": len(machine_tasks),
                      "tasks_without": Counter(r["reason"] for r in rejected if r["stage"] == "instances")},
        "export": {"tasks": len(tasks), "machine_tasks": len(machine_tasks), "examples": len(rows),
                   "machine_examples": sum(r["source"] == "machine" for r in rows)},
        "target": cfg.num_instructions, "seconds": seconds,
    }
    report.write_report(out, cfg, result, kept, rejected, machine_tasks)
    write_json(out / "stats.json", result)
    return result


# ----------------------------------------------------------------------------- run


def run(cfg: SelfInstructConfig) -> dict:
    import shutil

    from llmkit.selfinstruct.backends import make_backend
    from llmkit.selfinstruct.novelty import NoveltyIndex
    from llmkit.selfinstruct.seeds import load_seeds

    cfg.filters.validate()
    seeds = load_seeds(cfg.seeds)  # a bad seed file stops here, before any model loads
    out = Path(cfg.output.dir)
    if cfg.output.overwrite and out.exists():
        if run_kind(out) != "self_instruct":  # overwrite deletes a generate run's directory, never anything else
            raise ConfigError(f"output.overwrite=true deletes what output.dir holds, and {out} is not a self_instruct "
                              f"run; choose another output.dir")
        shutil.rmtree(out)
    # a run resumes record by record and may be asked for more (num_instructions, stages): same kind only
    prepare_output_dir(out, to_dict(cfg), overwrite=False, done_file=None, same_settings=False)
    files = Files(out)
    seconds: dict = {}
    needs_model = any(s in cfg.stages for s in ("bootstrap", "classify", "instances"))
    backend = make_backend(cfg.backend) if needs_model else None
    if "bootstrap" in cfg.stages:
        t = time.perf_counter()
        index = NoveltyIndex(cfg.filters.rouge_threshold, texts=[s.instruction for s in seeds])
        bootstrap(cfg, backend, seeds, files, index)
        seconds["bootstrap"] = round(time.perf_counter() - t, 2)
    if "classify" in cfg.stages:
        t = time.perf_counter()
        classify(cfg, backend, files)
        seconds["classify"] = round(time.perf_counter() - t, 2)
    if "instances" in cfg.stages:
        t = time.perf_counter()
        instances(cfg, backend, files)
        seconds["instances"] = round(time.perf_counter() - t, 2)
    if "export" in cfg.stages:
        return export(cfg, seeds, files, out, seconds)
    return {"seconds": seconds}


def summary(stats: dict) -> str:
    b, e = stats["bootstrap"], stats["export"]
    return (f"kept {b['kept']} of {b['candidates']} candidate instructions ({b['rejected']} rejected); "
            f"{e['machine_tasks']} tasks with instances; {e['examples']} finetuning examples "
            f"({e['machine_examples']} machine-generated)")


RECIPE = Recipe(kind="self_instruct", verb="generate", config_cls=SelfInstructConfig, run=run, load=load_config,
                done_file="stats.json", summary_line=report.summary_line, section=report.pipeline_section,
                headline=report.headline)
