"""Config: precedence, aliases, and every bad-input path (exit code 2, one message, no traceback)."""

import subprocess
import sys

import pytest
import yaml
from conftest import ROOT

from llmkit.config import load_yaml
from llmkit.errors import ConfigError
from llmkit.recipes import load_config

RECIPE = "kind: classify\nmethod:\n  name: last_layers\n  trainable_layers: 1\ntrain:\n  learning_rate: 0.001\n"


@pytest.fixture
def recipe(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(RECIPE)
    return path


def test_precedence_default_yaml_cli(recipe):
    _, cfg = load_config(recipe)
    assert cfg.train.learning_rate == 0.001  # YAML over default 5e-5
    assert cfg.train.batch_size == 32  # default kept
    assert cfg.method.trainable_layers == 1
    _, cfg = load_config(recipe, ["train.learning_rate=1e-4", "method.trainable_layers=2", "train.batch_size=8"])
    assert cfg.train.learning_rate == 1e-4 and isinstance(cfg.train.learning_rate, float)
    assert cfg.method.trainable_layers == 2 and cfg.train.batch_size == 8


def test_aliases_and_scalar_sections(recipe):
    _, cfg = load_config(recipe, ["learning_rate=3e-4", "epochs=2", "model=tiny-bert", "output_dir=x/y", "seed=7"])
    assert (cfg.train.learning_rate, cfg.train.epochs, cfg.model.name, cfg.output.dir, cfg.train.seed) == (3e-4, 2.0, "tiny-bert", "x/y", 7)
    _, cfg = load_config(recipe, ["method=full"])
    assert cfg.method.name == "full" and not hasattr(cfg.method, "trainable_layers")


def test_output_dir_template(recipe):
    _, cfg = load_config(recipe)
    assert cfg.output.dir == "runs/classify-last_layers"


@pytest.mark.parametrize("override, needle", [
    (["train.lerning_rate=1"], "unknown key `train.lerning_rate` (did you mean `train.learning_rate`?)"),
    (["trian.learning_rate=1"], "unknown key `trian` (did you mean `train.learning_rate`?)"),  # a mistyped section
    (["lerning_rate=1"], "did you mean `learning_rate`?"),
    (["method.trainable_layer=1"], "did you mean `method.trainable_layers`?"),
    (["train.batch_size=abc"], "`train.batch_size` must be an integer, got 'abc'"),
    (["train.batch_size=2.5"], "`train.batch_size` must be an integer"),
    (["train.learning_rate=fast"], "`train.learning_rate` must be a number"),
    (["train.resume=maybe"], "`train.resume` must be true or false"),
    (["train.lr_scheduler=cosin"], "did you mean `cosine`?"),
    (["train.learning_rate=-1"], "train.learning_rate must be > 0"),
    (["method=lora_typo"], "`method.name` has bad value 'lora_typo'"),
    (["model.pooling=avg"], "`model.pooling` has bad value 'avg'"),
    (["data.test_size=1.5"], "data.test_size must be in (0, 1)"),
    (["trainbatch_size=3"], "unknown key `trainbatch_size`"),
    (["kind=sft"], "`kind` cannot be overridden"),
    (["novalue"], "is not key=value"),
    (["train=3"], "`train` is a section"),
])
def test_bad_inputs_name_the_key(recipe, override, needle):
    with pytest.raises(ConfigError) as e:
        load_config(recipe, override)
    assert needle in str(e.value)


def test_bad_recipe_files(tmp_path):
    with pytest.raises(ConfigError, match="recipe file not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: classify\n  oops: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    nokind = tmp_path / "nokind.yaml"
    nokind.write_text("train:\n  epochs: 1\n")
    with pytest.raises(ConfigError, match="no `kind:` key"):
        load_config(nokind)
    typo = tmp_path / "typo.yaml"
    typo.write_text("kind: clasify\n")
    with pytest.raises(ConfigError, match="did you mean `classify`"):
        load_config(typo)


def test_cli_bad_input_exit_code_2_no_traceback(recipe, run_cli, tmp_path):
    for args in ([recipe, "train.lerning_rate=1e-4"], [tmp_path / "nope.yaml"], [recipe, "data.path=missing.jsonl", f"output_dir={tmp_path / 'o'}"]):
        res = run_cli("train", *args)
        assert res.returncode == 2, res.stderr
        assert "Traceback" not in res.stderr
        lines = [line for line in res.stderr.splitlines() if line.startswith("llmkit: error:")]
        assert len(lines) == 1, res.stderr
    assert "did you mean `train.learning_rate`" in run_cli("train", recipe, "train.lerning_rate=1").stderr
    assert not (tmp_path / "o" / "metrics.json").exists()


def test_a_recipe_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("kind: classify\n# r\xe9sum\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1.yaml: not UTF-8 text \(byte 18: b'\\xe9'\); save the recipe as UTF-8"):
        load_yaml(path)


def test_cli_help_and_print_config(recipe, run_cli):
    res = run_cli("train", "--help")
    assert res.returncode == 0 and "classify" in res.stdout
    for name in ("feature_based", "last_layers", "full"):
        assert name in res.stdout
    res = run_cli("train", recipe, "--print-config", "train.epochs=5")
    assert res.returncode == 0, res.stderr
    assert "learning_rate: 0.001  # Peak learning rate" in res.stdout
    assert "epochs: 5.0" in res.stdout
    assert "trainable_layers: 1  # How many of the last transformer blocks" in res.stdout
    body = "\n".join(line for line in res.stdout.splitlines() if not line.startswith("#"))
    assert yaml.safe_load(body)["method"]["name"] == "last_layers"


def test_global_batch_is_kept_across_world_sizes(recipe):
    _, cfg = load_config(recipe, ["train.batch_size=32", "train.micro_batch_size=4"])
    assert cfg.train.batch_plan(1) == (4, 8) and cfg.train.batch_plan(2) == (4, 4) and cfg.train.batch_plan(8) == (4, 1)
    # micro_batch_size is a ceiling: 16 processes share 32 examples 2 each, not 4 (which would need 64)
    assert cfg.train.batch_plan(16) == (2, 1)
    _, cfg = load_config(recipe, ["train.batch_size=32"])
    assert cfg.train.batch_plan(1) == (32, 1) and cfg.train.batch_plan(4) == (8, 1)
    _, cfg = load_config(recipe, ["train.batch_size=30", "train.micro_batch_size=4"])
    with pytest.raises(ConfigError, match="not a multiple"):
        cfg.train.batch_plan(1)


@pytest.mark.parametrize("argv", [
    ["--help"], ["train", "--help"],
    *[["train", str(r), "--print-config"] for r in sorted((ROOT / "recipes").glob("[!dp]*/*.yaml"))],
    ["generate", str(ROOT / "recipes/data/self_instruct.yaml"), "--print-config"],
    ["eval", str(ROOT / "eval/instructions.yaml"), "--print-config"],
    ["pipeline", str(ROOT / "recipes/pipelines/instructgpt_smollm2.yaml"), "--print-config"],
])
def test_help_and_print_config_import_neither_torch_nor_transformers(argv):
    """What keeps `llmkit --help` and `--print-config` quick (0.26 s and 0.3-0.6 s on the 2-core host,
    from 2.7 s and 7 s): the CLI edge imports no torch, transformers or nltk (issue 16)."""
    code = ("import sys, contextlib, io\nfrom llmkit.cli import main\n"
            f"with contextlib.redirect_stdout(io.StringIO()):\n    try:\n        code = main({argv!r})\n"
            "    except SystemExit as e:\n        code = e.code\n"
            "heavy = sorted(m for m in ('torch', 'transformers', 'nltk', 'scipy', 'datasets') if m in sys.modules)\n"
            "print(code, heavy)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.stdout.strip() in ("0 []", "None []"), res.stdout + res.stderr[-2000:]
