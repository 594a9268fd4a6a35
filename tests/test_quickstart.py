"""`llmkit quickstart --fast` end to end, and its resume: a second call keeps finished stages."""

import json

from conftest import ROOT


def test_quickstart_fast_and_resume(tmp_path, run_cli):
    out = tmp_path / "qs"
    res = run_cli("quickstart", "--fast", "--output", out)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    stages = ("feature_based", "finetune_last_layers", "finetune_all")
    for stage in stages:
        m = json.loads((out / stage / "metrics.json").read_text())
        assert {"accuracy", "macro_f1", "trainable_params", "train_seconds", "peak_memory_mb"} <= set(m)
    table = (out / "compare" / "compare.md").read_text()
    for method in ("feature_based", "last_layers", "full"):
        assert f"| {method} |" in table
    assert (out / "compare" / "compare.png").is_file()
    assert "report:" in res.stdout and str(out / "compare" / "compare.md") in res.stdout
    # one progress line per stage
    assert [line.split("]")[0] for line in res.stdout.splitlines() if line.startswith("[") and not line.endswith("training ...")] == ["[1/4", "[2/4", "[3/4", "[4/4"]

    # Started again (as after a kill): finished stages are kept, not re-run.
    (out / "finetune_all" / "metrics.json").unlink()
    res = run_cli("quickstart", "--fast", "--output", out)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.count("already done") == 2 and "finetune II (all layers): training" in res.stdout
    assert (ROOT / "recipes").is_dir()
