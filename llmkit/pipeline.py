"""`llmkit pipeline FILE.yaml`: several recipes in a row, each stage a normal llmkit run.

A pipeline file (`kind: pipeline`) names variables and stages. Each stage runs one command,
`llmkit train|generate|eval RECIPE key=value ...` or `llmkit compare RUN ...`, in its own process,
into `OUTPUT/<stage name>/`; the command line is printed in the stage's log (`OUTPUT/<stage>.log`),
so any stage can be run again by hand. In the overrides, `{var}` is a variable of the file (or
of the command line, `name=value`) and `{stage}` is an earlier stage's output directory:

    kind: pipeline
    name: InstructGPT in miniature
    output: runs/quickstart
    vars: {model: pico-llama}
    fast_vars: {model: tiny-llama}            # with --fast
    stages:
      - {name: sft, title: SFT (LoRA), run: train, recipe: ../sft/lora.yaml, set: ["model={model}"]}
      - {name: ppo, run: train, recipe: ../rlhf/ppo.yaml, set: ["model.name={sft}/model"],
         fast: ["train.num_updates=2"]}       # appended with --fast

Every stage's configuration is built and checked before the first one starts, so a typo in the
last stage stops the pipeline at once, not after an hour. A stage is finished when its run wrote
its last file (`metrics.json`, Self-Instruct's `stats.json`, `compare.json`); started again, the
pipeline keeps finished stages and runs the rest, and a stage that was killed half-way resumes
from its own checkpoints (every llmkit run does). `pipeline.json` in the output directory records
each stage's command, status and time; a finished stage whose command changed (other variables,
--fast against a full run) stops the pipeline with a message rather than mixing two runs.

On Linux a stage is a fork of the pipeline's process after it imported torch, transformers, PEFT,
TRL and the recipes once (`preload()`): a fresh interpreter spends ~10 s importing them (measured:
bitsandbytes alone compiles its kernels through torch.compile on import), which a 14-stage
pipeline would pay 14 times. The parent runs no torch op before forking, so the child starts as a
new process would; each stage still has its own memory and its own peak. Stages with a `launch`
(accelerate), other systems, and LLMKIT_PIPELINE_FORK=0 start `python -m llmkit` instead.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from llmkit import recipes
from llmkit.config import load_yaml, to_dict
from llmkit.errors import ConfigError, LlmkitError

STAGE_KEYS = {"name", "title", "run", "recipe", "set", "fast", "runs", "launch"}
TOP_KEYS = {"kind", "name", "description", "output", "vars", "fast_vars", "launch", "stages"}
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass
class Stage:
    name: str
    title: str
    run: str
    recipe: Path | None
    overrides: list[str]
    runs: list[str]  # compare: earlier stages' names
    launch: Path | None  # an accelerate config: `accelerate launch --config_file ...`
    launch_args: list[str] = field(default_factory=list)  # more `accelerate launch` flags (--num_processes 4)
    kind: str = ""  # the recipe's kind (classify, sft, reward, ppo, self_instruct, eval, compare)
    out: Path = field(default_factory=Path)

    def command(self) -> list[str]:
        if self.recipe is None:  # compare: the runs it reads, no recipe file
            return [self.run, *map(str, self.runs), "--output", str(self.out)]
        out_key = "output_dir" if self.run == "train" else "output.dir"  # (the alias, as pipeline.json has recorded it)
        return [self.run, str(self.recipe), *self.overrides, f"{out_key}={self.out}"]

    def argv(self) -> list[str]:
        if self.launch is not None:
            return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(self.launch),
                    *self.launch_args, "-m", "llmkit", *self.command()]
        return [sys.executable, "-m", "llmkit", *self.command()]

    def done(self) -> bool:
        return (self.out / recipes.get(self.kind).done_file).is_file()


@dataclass
class Pipeline:
    path: Path
    name: str
    description: str
    output: Path
    fast: bool
    vars: dict
    stages: list[Stage]

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)


def _fill(text: str, values: dict, where: str) -> str:
    def sub(m):
        if m.group(1) not in values:
            raise ConfigError(f"{where}: `{{{m.group(1)}}}` is neither a variable ({', '.join(values['__vars__']) or 'none'}) "
                              f"nor an earlier stage ({', '.join(values['__stages__']) or 'none yet'})")
        return str(values[m.group(1)])

    return PLACEHOLDER.sub(sub, text)


def _strings(value, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, dict):  # `set: {model: x}` reads as ["model=x"]
        value = [f"{k}={json.dumps(v) if isinstance(v, (list, dict)) else v}" for k, v in value.items()]
    if isinstance(value, list):  # a list inside the list (a YAML anchor) is spliced in
        value = [x for v in value for x in (v if isinstance(v, list) else [v])]
    if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) for v in value):
        raise ConfigError(f"{where} must be a list of key=value strings, got {value!r:.80}")
    return [str(v) for v in value]


def _path(value: str, base: Path) -> Path:
    """A path in the file, relative to the file; shown relative to the working directory when inside it."""
    p = Path(value)
    p = p if p.is_absolute() else (base / p).resolve()
    try:
        return p.relative_to(Path.cwd())
    except ValueError:
        return p


def load_pipeline(path: str | Path, *, output: str | Path | None = None, fast: bool = False,
                  var_overrides: list[str] = ()) -> Pipeline:
    """Read, fill in and check a pipeline file: every stage's recipe is loaded with its overrides
    (unknown keys, wrong types and bad values stop here). Raises ConfigError."""
    path = _path(str(path), Path.cwd())
    raw = load_yaml(path)
    src = str(path)
    if raw.get("kind") != "pipeline":
        raise ConfigError(f"{src}: `kind` is {raw.get('kind')!r}; a pipeline file needs `kind: pipeline`")
    if unknown := set(raw) - TOP_KEYS:
        raise ConfigError(f"{src}: unknown key(s) {', '.join(sorted(unknown))}; a pipeline has: {', '.join(sorted(TOP_KEYS))}")
    variables = dict(raw.get("vars") or {})
    if fast:
        bad = set(raw.get("fast_vars") or {}) - set(variables)
        if bad:
            raise ConfigError(f"{src}: fast_vars names {', '.join(sorted(bad))}, not in vars")
        variables.update(raw.get("fast_vars") or {})
    for item in var_overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"`{item}` is not name=value (pipeline variables: {', '.join(variables)})")
        if key not in variables:
            import difflib

            near = difflib.get_close_matches(key, list(variables), n=1)
            raise ConfigError(f"{src}: no variable `{key}`{f' (did you mean `{near[0]}`?)' if near else ''}; "
                              f"its variables: {', '.join(variables) or 'none'}")
        variables[key] = value
    out = Path(output) if output is not None else Path(raw.get("output") or f"runs/{path.stem}")
    base = path.parent
    default_launch = raw.get("launch")
    stages_raw = raw.get("stages")
    if not isinstance(stages_raw, list) or not stages_raw:
        raise ConfigError(f"{src}: `stages` must be a non-empty list")
    values = {**variables, "__vars__": list(variables), "__stages__": []}
    stages: list[Stage] = []
    for i, s in enumerate(stages_raw, 1):
        where = f"{src}: stage {i}"
        if not isinstance(s, dict):
            raise ConfigError(f"{where} must be a mapping with name, run and recipe")
        if unknown := set(s) - STAGE_KEYS:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; a stage has: {', '.join(sorted(STAGE_KEYS))}")
        name = s.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ConfigError(f"{where}: `name` must be an identifier (letters, digits, _), got {name!r}")
        where = f"{src}: stage `{name}`"
        if name in values["__stages__"] or name in variables:
            raise ConfigError(f"{where}: the name is already used by a {'stage' if name in values['__stages__'] else 'variable'}")
        run = s.get("run")
        if run not in recipes.verbs():
            raise ConfigError(f"{where}: `run` must be one of {', '.join(recipes.verbs())}, got {run!r}")
        overrides = [_fill(o, values, where) for o in _strings(s.get("set"), f"{where}: `set`")]
        if fast:
            overrides += [_fill(o, values, where) for o in _strings(s.get("fast"), f"{where}: `fast`")]
        runs: list[str] = []
        recipe = None
        if run != "train" and recipes.for_verb(run).config_cls is None:  # compare: it reads earlier stages' runs
            runs = _compared_runs(s, values, out, where)
        else:
            if not isinstance(s.get("recipe"), str):
                raise ConfigError(f"{where}: `recipe` (a recipe file, relative to the pipeline file) is missing")
            recipe = _path(_fill(s["recipe"], values, where), base)
            if not recipe.is_file():
                raise ConfigError(f"{where}: recipe file not found: {recipe}")
        launch, launch_args = _launcher(s.get("launch", default_launch) if run == "train" else None, values, base, where)
        stage = Stage(name=name, title=str(s.get("title") or name), run=run, recipe=recipe, overrides=overrides,
                      runs=runs, launch=launch, launch_args=launch_args, out=out / name)
        stage.kind = _check_stage(stage, where, out)
        stages.append(stage)
        values[name] = stage.out
        values["__stages__"].append(name)
    return Pipeline(path=path, name=str(raw.get("name") or path.stem), description=str(raw.get("description") or ""),
                    output=out, fast=fast, vars=variables, stages=stages)


def _compared_runs(s: dict, values: dict, out: Path, where: str) -> list[str]:
    runs_raw = s.get("runs")
    if not isinstance(runs_raw, list) or not runs_raw:
        raise ConfigError(f"{where}: `runs` must list earlier stages to compare")
    for r in runs_raw:
        if r not in values["__stages__"]:
            raise ConfigError(f"{where}: `runs` names {r!r}, not an earlier stage")
    return [str(out / r) for r in runs_raw]


def _launcher(launch_raw, values: dict, base: Path, where: str) -> tuple[Path | None, list[str]]:
    """A stage's `launch`, "CONFIG.yaml [accelerate launch flags]" with the config relative to the
    pipeline file -> (config path, flags); (None, []) for none."""
    if not launch_raw:
        return None, []
    config, *launch_args = shlex.split(_fill(str(launch_raw), values, where))
    launch = _path(config, base)
    if not launch.is_file():
        raise ConfigError(f"{where}: accelerate config not found: {launch}")
    return launch, launch_args


def _check_stage(stage: Stage, where: str, output: Path) -> str:
    """Build the stage's config as its command will (without running anything) and check the files it
    names exist, unless an earlier stage makes them; -> its kind."""
    try:
        if stage.run == "train":
            cfg = recipes.load_config(stage.recipe, stage.overrides)[1]
        else:
            rec = recipes.for_verb(stage.run)
            cfg = rec.load(stage.recipe, stage.overrides) if rec.load is not None else None
            if cfg is None:
                return rec.kind
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
    for key, value in _file_values(to_dict(cfg)):
        path = Path(os.path.expanduser(value))
        if not path.exists() and output.resolve() not in path.resolve().parents:
            raise ConfigError(f"{where}: {key}={value}: not found (every stage's files are checked before the first "
                              f"stage runs)")
    return cfg.kind


def _file_values(d: dict, prefix: str = ""):
    """(dotted key, value) of each string that names a file: a path (/, ./, ../, ~) or a data file name."""
    from llmkit.data.loading import EXTENSIONS

    for k, v in d.items():
        if isinstance(v, dict):
            yield from _file_values(v, f"{prefix}{k}.")
        elif isinstance(v, str) and (v.startswith(("/", "./", "../", "~")) or Path(v).suffix.lower() in EXTENSIONS):
            yield f"{prefix}{k}", v


# ----------------------------------------------------------------------------- running


def _record_path(p: Pipeline) -> Path:
    return p.output / "pipeline.json"


def read_record(p: Pipeline) -> dict:
    path = _record_path(p)
    return json.loads(path.read_text()) if path.is_file() else {}


def _save_record(p: Pipeline, record: dict) -> None:
    tmp = _record_path(p).with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, _record_path(p))


def _check_unchanged(p: Pipeline, record: dict) -> None:
    for s in p.stages:
        prev = record.get("stages", {}).get(s.name)
        if s.done() and prev and prev.get("command") != s.command():
            raise LlmkitError(
                f"{s.out} was made by another command than this pipeline's (was: llmkit {shlex.join(prev['command'])}; "
                f"now: llmkit {shlex.join(s.command())}); use another --output, or delete {p.output} to start over")


PRELOAD = ("torch", "transformers", "peft", "trl", "accelerate", "datasets", "matplotlib.pyplot")  # + every kind's module


def forking() -> bool:
    return sys.platform == "linux" and os.environ.get("LLMKIT_PIPELINE_FORK", "1") != "0"


def preload() -> None:
    """Import what every stage imports, once, before the stages are forked (no torch op runs here)."""
    import contextlib
    import importlib
    import io

    if forking():
        with contextlib.redirect_stderr(io.StringIO()):  # bitsandbytes' notice about optional kernels
            for name in PRELOAD:
                importlib.import_module(name)
            for kind in recipes.KINDS:
                recipes.get(kind)


def _run_stage(s: Stage, log: Path, main) -> int:
    """Run one stage with its output appended to `log`; -> its exit code."""
    with open(log, "a") as fh:
        fh.write(f"$ {shlex.join(s.argv())}\n")
        fh.flush()
        if s.launch is not None or not forking():
            return subprocess.run(s.argv(), stdout=fh, stderr=subprocess.STDOUT, text=True).returncode
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the stage: `llmkit COMMAND` in this process's copy
            code = 1
            try:
                os.dup2(fh.fileno(), 1)
                os.dup2(fh.fileno(), 2)
                sys.argv = ["llmkit", *s.command()]
                code = main(s.command())
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            except BaseException:
                import traceback

                traceback.print_exc()
            finally:
                import atexit

                atexit._run_exitfuncs()
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status)


def run_pipeline(p: Pipeline, main, summarize=None) -> dict:
    """Run the stages in order, keeping finished ones; one progress line per stage. `main(argv) -> exit code`
    is the CLI's entry point a forked stage runs (handed in: the CLI imports this module);
    `summarize(stage) -> str` gives the line's figures. -> the record (also in pipeline.json)."""
    if p.output.is_dir() and any(p.output.iterdir()) and not _record_path(p).is_file():
        held = sorted(f.name for f in p.output.iterdir())
        raise LlmkitError(f"{p.output} holds files that are not a pipeline's ({', '.join(held[:4])}"
                          f"{', ...' if len(held) > 4 else ''}); choose another --output")
    p.output.mkdir(parents=True, exist_ok=True)
    record = read_record(p)
    _check_unchanged(p, record)
    record.update(pipeline=str(p.path), name=p.name, fast=p.fast, vars=p.vars)
    record.setdefault("stages", {})
    n = len(p.stages)
    for i, s in enumerate(p.stages, 1):
        entry = record["stages"].setdefault(s.name, {})
        entry.update(title=s.title, run=s.run, kind=s.kind, command=s.command(), out=str(s.out))
        prefix = f"[{i}/{n}] {s.title}:"
        if s.done():
            entry["status"] = "done"
            _save_record(p, record)
            print(f"{prefix} done before, kept ({summarize(s) if summarize else s.out})", flush=True)
            continue
        resumed = s.out.exists()
        print(f"{prefix} {'resuming' if resumed else 'running'} ... ", end="", flush=True)
        entry["status"] = "running"
        _save_record(p, record)
        t0 = time.perf_counter()
        log = p.output / f"{s.name}.log"
        code = _run_stage(s, log, main)
        seconds = time.perf_counter() - t0
        if code != 0 or not s.done():
            print("failed", flush=True)
            entry["status"] = "failed"
            _save_record(p, record)
            tail = "\n".join(log.read_text().splitlines()[-15:])
            raise LlmkitError(f"stage `{s.name}` failed (exit code {code}); the stages before it are kept and "
                              f"the same command continues from it. Log: {log}\n{tail}")
        entry.update(status="done", seconds=round(entry.get("seconds", 0.0) + seconds, 1))
        _save_record(p, record)
        print(f"{summarize(s) if summarize else 'done'} ({seconds:.0f} s)", flush=True)
    return record
