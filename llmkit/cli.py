"""The `llmkit` command.

    llmkit train RECIPE.yaml [key=value ...]     run a training recipe
    llmkit train RECIPE.yaml --print-config      show the resolved config with each field's help
    llmkit eval SUITE.yaml [key=value ...]       generate and score (BLEU, ROUGE, BERTScore, perplexity, ...)
    llmkit generate RECIPE.yaml [key=value ...]  Self-Instruct: grow an instruction set from seed tasks
    llmkit compare OUT_DIR [OUT_DIR ...]         table + plot comparing finished runs
    llmkit quickstart [--output DIR] [--fast]    the demo: InstructGPT on SmolLM2 + every classification method, one report
    llmkit pipeline PIPELINE.yaml [--output DIR] [--fast] [name=value ...]
                                                 several recipes in a row (recipes/pipelines/), one report
    llmkit merge ADAPTER_DIR --output DIR        fold a LoRA adapter into a standalone model
    llmkit sample MODEL --prompts F --output O   batch generation to JSONL (base, adapter or merged)
    llmkit chat MODEL [--system TEXT]            talk to a model in the terminal, replies streamed
    llmkit tiny ARCH DIR                         build a tiny random-init model (bert, gpt2, llama)
    llmkit estimate-memory RECIPE.yaml [options] [key=value ...]
                                                 GPU memory per strategy (DDP, ZeRO-1/2/3, offload), before launching

User errors (config, data, paths) print one line and exit with code 2, before any work.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from llmkit.errors import LlmkitError


def _train_epilog() -> str:
    from llmkit.methods import REGISTRY
    from llmkit.recipes import KINDS

    kinds = "\n".join(f"  {k:<14} {summary}" for k, (_, _, summary) in KINDS.items())
    methods = "\n".join(f"  {name:<14} {_first_line(m)}" for name, m in REGISTRY.items())
    return (f"kinds (the `kind:` key of a recipe file; llmkit train runs the first ones, the others name their verb):\n{kinds}\n\nmethods (`method.name`):\n{methods}\n\n"
            "overrides use the YAML's dotted names: train.learning_rate=1e-4 model.name=tiny-bert\n"
            "aliases: learning_rate epochs max_steps batch_size seed (train.*), output_dir (output.dir),\n"
            "         model=NAME (model.name), method=NAME (method.name), data=PATH (data.path)")


def _first_line(obj) -> str:
    doc = sys.modules[obj.__module__].__doc__ or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _printed_config(path, cfg, wanted: bool) -> bool:
    """--print-config: the resolved config with each field's help; True when printed."""
    if wanted:
        from llmkit.config import describe

        print(f"# resolved config of {path} (defaults < YAML < overrides)")
        print(describe(cfg))
    return wanted


def cmd_train(args) -> int:
    from llmkit.recipes import load_config

    recipe, cfg = load_config(args.recipe, args.overrides)
    if _printed_config(args.recipe, cfg, args.print_config):
        return 0
    out = Path(cfg.output.dir)
    metrics = recipe.run(cfg, out)
    if _is_main():
        shown = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        print("  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items()))
        print(f"wrote {out}/ (metrics.json, report.md)")
    return 0


def _is_main() -> bool:
    return os.environ.get("RANK", "0") == "0"


def cmd_eval(args) -> int:
    from llmkit.eval.suite import headline, load_suite, run

    cfg = load_suite(args.suite, args.overrides)
    if _printed_config(args.suite, cfg, args.print_config):
        return 0
    print(headline(run(cfg)))
    print(f"wrote {cfg.output.dir}/ (metrics.json, report.md, predictions.jsonl)")
    return 0


def cmd_generate(args) -> int:
    from llmkit.selfinstruct.pipeline import load_config, run, summary

    cfg = load_config(args.recipe, args.overrides)
    if _printed_config(args.recipe, cfg, args.print_config):
        return 0
    stats = run(cfg)
    if "bootstrap" in stats:
        print(summary(stats))
    print(f"wrote {cfg.output.dir}/ (instructions.jsonl, rejected.jsonl, finetune.jsonl, stats.json, report.md)")
    return 0


def cmd_compare(args) -> int:
    from llmkit.compare import compare

    path = compare(args.runs, args.output)
    print(f"wrote {path}")
    return 0


def cmd_quickstart(args) -> int:
    from llmkit.quickstart import quickstart

    quickstart(main, args.output, fast=args.fast)
    return 0


def cmd_pipeline(args) -> int:
    import shlex

    from llmkit.quickstart import run

    if args.print_config:
        from llmkit.pipeline import load_pipeline

        p = load_pipeline(args.pipeline, output=args.output, fast=args.fast, var_overrides=args.overrides)
        print(f"# {p.name}: {len(p.stages)} stages into {p.output}/ (variables: "
              + ", ".join(f"{k}={v}" for k, v in p.vars.items()) + ")")
        for s in p.stages:
            launch = shlex.join(["accelerate", "launch", "--config_file", str(s.launch), *s.launch_args, "-m"]) + " " if s.launch else ""
            print(f"{s.name}: {launch}llmkit {shlex.join(s.command())}")
        return 0
    run(args.pipeline, main, output=args.output, fast=args.fast, var_overrides=args.overrides)
    return 0


def cmd_merge(args) -> int:
    from llmkit.models.trained import merge

    print(f"wrote {merge(args.adapter_dir, args.output, base=args.base)}")
    return 0


def cmd_sample(args) -> int:
    from llmkit.sample import sample

    n = sample(args.model, args.prompts, args.output, base=args.base, max_new_tokens=args.max_new_tokens,
               batch_size=args.batch_size, temperature=args.temperature, overwrite=args.overwrite, raw=args.raw)
    print(f"wrote {n} generations to {args.output}")
    return 0


def cmd_chat(args) -> int:
    from llmkit.chat import chat

    chat(args.model, base=args.base, system=args.system, max_new_tokens=args.max_new_tokens,
         temperature=args.temperature)
    return 0


def cmd_tiny(args) -> int:
    from llmkit.models.tiny import ARCHS, build_tiny

    if args.arch not in ARCHS:
        raise LlmkitError(f"unknown architecture {args.arch!r}; choose one of {', '.join(ARCHS)}")
    print(build_tiny(args.arch, args.dir))
    return 0


def cmd_estimate_memory(args) -> int:
    import json

    from llmkit.memory import estimate_recipe

    if args.print_config:
        from llmkit.recipes import load_config

        _printed_config(args.recipe, load_config(args.recipe, args.overrides)[1], True)
        return 0
    est = estimate_recipe(args.recipe, args.overrides, num_gpus=args.num_gpus, zero_stage=args.zero_stage,
                          offload=args.offload, gpu_memory_gib=args.gpu_memory,
                          gradient_checkpointing=args.gradient_checkpointing, precision=args.precision)
    print(json.dumps(est.to_json(), indent=2) if args.json else est.table())
    return 0


def _config_command(sub, name: str, arg: str, arg_help: str, func, **parser_kwargs) -> argparse.ArgumentParser:
    """A verb that takes one YAML file plus key=value overrides, and --print-config."""
    p = sub.add_parser(name, **parser_kwargs)
    p.add_argument(arg, help=arg_help)
    p.add_argument("overrides", nargs="*", help="key=value overrides with the YAML's dotted names")
    p.add_argument("--print-config", action="store_true", help="print the resolved config with each field's help, then exit")
    p.set_defaults(func=func)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmkit", description="Adapt pretrained language models from one CLI.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _config_command(sub, "train", "recipe", "recipe YAML file (see recipes/)", cmd_train, help="run a training recipe",
                    epilog=_train_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter,
                    description="Run a training recipe: llmkit train RECIPE.yaml [key=value ...]")
    _config_command(sub, "eval", "suite", "suite YAML file (see eval/)", cmd_eval,
                    help="evaluate a model or a predictions file with an evaluation suite",
                    description="Evaluate: llmkit eval SUITE.yaml [key=value ...] (suites in eval/). Generates from "
                                "model.name, or scores predictions.path; writes metrics.json, report.md, predictions.jsonl.")
    _config_command(sub, "generate", "recipe", "generation recipe YAML (kind: self_instruct)", cmd_generate,
                    help="Self-Instruct: generate an instruction dataset from seed tasks",
                    description="Self-Instruct: llmkit generate RECIPE.yaml [key=value ...] (see recipes/data/). "
                                "Started again with the same command, a run continues where it stopped.")

    p = _config_command(sub, "estimate-memory", "recipe", "training recipe YAML (see recipes/)", cmd_estimate_memory,
                        help="estimate GPU memory per strategy (DDP, ZeRO-1/2/3, offload) before launching a recipe",
                        description="Estimate per-GPU memory of a training recipe without loading weights: "
                                    "llmkit estimate-memory RECIPE.yaml [options] [key=value ...]. The models are "
                                    "built on the meta device; formulas and sources in llmkit/memory.py.")
    p.add_argument("--num-gpus", type=int, default=1, help="GPUs (processes) to shard over (default 1)")
    p.add_argument("--zero-stage", type=int, choices=[0, 1, 2, 3], default=None,
                   help="show one ZeRO stage (0 = DDP); default: all of them")
    p.add_argument("--offload", action="store_true",
                   help="offload optimizer states (stage 2/3) and, at stage 3, parameters to CPU")
    p.add_argument("--gpu-memory", type=float, default=None, metavar="GB",
                   help="memory per GPU in GiB as nvidia-smi counts it (e.g. 80): report which strategies fit")
    p.add_argument("--gradient-checkpointing", action=argparse.BooleanOptionalAction, default=None,
                   help="recompute activations in backward (default: the recipe's train.gradient_checkpointing)")
    p.add_argument("--precision", choices=["bf16", "fp16", "fp32"], default="bf16",
                   help="bf16/fp16 mixed precision (2+2+12 bytes per trainable parameter) or fp32 (4+4+8); default bf16")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON instead of the table")

    p = sub.add_parser("compare", help="compare finished runs: Markdown table and PNG plot")
    p.add_argument("runs", nargs="+", help="output directories of finished runs")
    p.add_argument("--output", default="runs/compare", help="where to write compare.md and compare.png")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("quickstart", help="the demo: InstructGPT on SmolLM2 and the classification methods, one report",
                       description="Self-Instruct -> SFT -> reward model -> PPO -> the base model zero-shot and 3-shot vs "
                                   "SFT vs PPO on the same held-out prompts, then "
                                   "feature-based, finetune I/II, LoRA, adapters and prefix tuning compared; runs "
                                   "recipes/pipelines/instructgpt_smollm2.yaml. Started again, it keeps finished stages.")
    p.add_argument("--output", default="runs/quickstart", help="output directory (default runs/quickstart)")
    p.add_argument("--fast", action="store_true", help="the same stages on tiny random models, a few steps each (~1 min)")
    p.set_defaults(func=cmd_quickstart)

    p = sub.add_parser("pipeline", help="run a pipeline file (several recipes in a row) and write one report",
                       description="llmkit pipeline PIPELINE.yaml [--output DIR] [--fast] [name=value ...]: each stage "
                                   "runs in its own process into OUTPUT/<stage>/; name=value sets the file's variables. "
                                   "Started again, it keeps finished stages and resumes the one it was in.")
    p.add_argument("pipeline", help="pipeline YAML (kind: pipeline; see recipes/pipelines/)")
    p.add_argument("overrides", nargs="*", help="name=value for the pipeline's variables (e.g. model=path/to/model)")
    p.add_argument("--output", default=None, help="output directory (default: the file's `output`)")
    p.add_argument("--fast", action="store_true", help="the file's fast settings: tiny models, a few steps")
    p.add_argument("--print-config", action="store_true", help="print every stage's command, then exit")
    p.set_defaults(func=cmd_pipeline)

    p = sub.add_parser("merge", help="fold a LoRA adapter into its base model and save a standalone model")
    p.add_argument("adapter_dir", help="a PEFT LoRA adapter directory (e.g. runs/sft-lora/model) or a classify run's model/")
    p.add_argument("--output", required=True, help="directory for the merged model")
    p.add_argument("--base", default=None, help="base model (default: the one the adapter names)")
    p.set_defaults(func=cmd_merge)

    p = sub.add_parser("sample", help="generate from a prompts file with a base, adapter or merged model")
    p.add_argument("model", help="model directory (full, merged or adapter), short name or hub id")
    p.add_argument("--prompts", required=True, help="JSONL with `prompt` or `messages` per line, or a .txt file, one prompt per line")
    p.add_argument("--output", required=True, help="JSONL to write: one {prompt, output} per line")
    p.add_argument("--base", default=None, help="base model for an adapter directory (default: the one it names)")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--temperature", type=float, default=0.0, help="0 for greedy decoding")
    p.add_argument("--overwrite", action="store_true", help="replace --output if it exists (never the prompts file)")
    p.add_argument("--raw", action="store_true", help="text prompts as they are, without the model's chat template")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("chat", help="talk to a base, adapter or merged model in the terminal (replies streamed)",
                       description="llmkit chat MODEL: each line you type is a user turn; the reply streams as it is "
                                   "generated, and the whole conversation goes through the chat template each turn. "
                                   "Commands: /reset, /system TEXT, /exit (or Ctrl-D). With piped input it answers "
                                   "one line after another.")
    p.add_argument("model", help="model directory (full, merged or adapter), short name or hub id")
    p.add_argument("--system", default=None, help="system prompt for the conversation")
    p.add_argument("--base", default=None, help="base model for an adapter directory (default: the one it names)")
    p.add_argument("--max-new-tokens", type=int, default=256, help="longest reply, in tokens (default 256)")
    p.add_argument("--temperature", type=float, default=0.0, help="0 for greedy decoding (default)")
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("tiny", help="build a tiny random-init model with its tokenizer (for smoke runs)")
    p.add_argument("arch", help="bert, gpt2 or llama")
    p.add_argument("dir", help="output directory")
    p.set_defaults(func=cmd_tiny)
    return parser


def _quiet_libraries() -> None:
    """Keep the libraries' load reports and per-file bars out of the way (LLMKIT_VERBOSE=1 keeps them)."""
    if os.environ.get("LLMKIT_VERBOSE"):
        return
    # read when transformers is first imported (importing it here would cost every command a second)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if getattr(args, "overrides", None) is not None:  # key=value may follow flags too
        args.overrides += [e for e in extra if "=" in e and not e.startswith("-")]
        extra = [e for e in extra if not ("=" in e and not e.startswith("-"))]
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    _quiet_libraries()
    import shlex

    # what every report quotes as the command that made it (llmkit.report.provenance)
    os.environ["LLMKIT_COMMAND"] = shlex.join(["llmkit", *(sys.argv[1:] if argv is None else map(str, argv))])
    try:
        return args.func(args)
    except LlmkitError as e:
        if os.environ.get("RANK", "0") == "0":  # under a launcher every rank meets the same error: say it once
            print(f"llmkit: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("llmkit: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    finally:
        os.environ.pop("LLMKIT_COMMAND", None)


if __name__ == "__main__":
    sys.exit(main())
