"""train.report_to: every training kind sends its history.jsonl rows to TensorBoard and W&B (offline).
Checked by reading what the trackers wrote: TensorBoard's event files through TensorBoard's own reader,
W&B's offline run file (LevelDB log records of W&B protobufs) record by record."""

import json
from pathlib import Path

import pytest
from conftest import ROOT
from test_kill_resume import KINDS

from llmkit.errors import ConfigError

TRAINING = ("classify", "sft", "reward", "ppo")


def wandb_records(path: Path):
    """The protobuf records of a W&B `.wandb` file: a 7-byte W&B header, then LevelDB's log format
    (32 KiB blocks; each chunk: crc32 (4), length (2, little-endian), type (1): 1 full, 2 first, 3 middle, 4 last)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, pending = 7, 32768, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # a block's tail too short for a header is zero padding
            pos += left
            continue
        length, kind = int.from_bytes(data[pos + 4:pos + 6], "little"), data[pos + 6]
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(pending)
            yield record
            pending = b""


def numeric(row: dict, key: str = "step") -> dict:
    return {k: float(v) for k, v in row.items() if k != key and isinstance(v, (int, float)) and not isinstance(v, bool)}


@pytest.mark.parametrize("kind", TRAINING)
def test_every_kind_logs_its_history_to_tensorboard(kind, tmp_path, run_cli):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    argv = list(KINDS[kind][0])
    prefs = tmp_path / "prefs"
    if kind == "reward":
        from test_reward import clear_preferences

        clear_preferences(prefs, n_train=12, n_test=8)
    out = tmp_path / "run"
    trackers = "[tensorboard,wandb]" if kind == "sft" else "[tensorboard]"
    res = run_cli(*[str(a).format(prefs=prefs) for a in argv], f"train.report_to={trackers}", f"output_dir={out}")
    assert res.returncode == 0, res.stderr[-3000:]
    history = [json.loads(x) for x in (out / "history.jsonl").read_text().splitlines()]
    assert len(history) >= 2
    events = EventAccumulator(str(out / "tensorboard" / "run"))
    events.Reload()
    for tag in numeric(history[0]):
        got = [(e.step, e.value) for e in events.Scalars(tag)]
        want = [(row["step"], numeric(row)[tag]) for row in history if tag in numeric(row)]
        assert [s for s, _ in got] == [s for s, _ in want], tag
        assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-6), tag  # TensorBoard keeps float32
    if kind == "sft":
        check_wandb(out, history)


def check_wandb(out: Path, history: list[dict]):
    (run_file,) = (out / "wandb").glob("offline-run-*/run-*.wandb")
    rows, config = [], {}
    for record in wandb_records(run_file):
        which = record.WhichOneof("record_type")
        if which == "history":
            rows.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item})
        elif which == "config":
            config.update({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.config.update})
    assert [r["_step"] for r in rows] == [h["step"] for h in history]
    for row, want in zip(rows, history):
        assert {k: row[k] for k in numeric(want)} == pytest.approx(numeric(want), rel=1e-9)
    resolved = json.loads(json.dumps(__import__("yaml").safe_load((out / "config.yaml").read_text())))
    assert config["train.learning_rate"] == resolved["train"]["learning_rate"]
    assert config["model.name"] == "tiny-llama"


@pytest.mark.parametrize("value, needle", [
    ("[tensorbord]", "did you mean `tensorboard`"),
    ("[wandb,wandb]", "names a tracker twice"),
    ("[mlflow]", "choose from: tensorboard, wandb"),
])
def test_bad_report_to_stops_before_work(value, needle, run_cli, tmp_path):
    res = run_cli("train", ROOT / "recipes/sft/lora.yaml", "model=tiny-llama", f"train.report_to={value}",
                  f"output_dir={tmp_path / 'run'}")
    assert res.returncode == 2 and needle in res.stderr, res.stderr[-2000:]
    assert "Traceback" not in res.stderr and not (tmp_path / "run").exists()


def test_a_tracker_without_its_package_says_what_to_install(monkeypatch):
    from llmkit import trackers

    monkeypatch.setitem(trackers.PACKAGES, "tensorboard", "llmkit_no_such_package")
    with pytest.raises(ConfigError, match="pip install llmkit_no_such_package"):
        trackers.check(["tensorboard"])
    trackers.check(["none"])  # transformers' spelling of no tracker
