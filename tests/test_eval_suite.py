"""`llmkit eval`: a model finetuned by the sft recipe evaluated end to end with the shipped suite,
scoring a predictions file without a model, resuming generation, bad input, and the metrics as
Hugging Face `evaluate` modules loaded offline from local paths."""

import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT

from llmkit.eval import bertscore, bleu, rouge

SUITE = ROOT / "eval" / "instructions.yaml"
SMALL = ["data.max_samples=6", "perplexity.max_samples=12", "generate.max_new_tokens=6", "generate.batch_size=4",
         "perplexity.max_length=32", "perplexity.stride=16"]


@pytest.fixture(scope="module")
def sft_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("sft") / "run"
    res = subprocess.run([sys.executable, "-m", "llmkit", "train", str(ROOT / "recipes/sft/lora.yaml"), "model=tiny-llama",
                          "data.max_train_samples=16", "data.max_test_samples=4", "train.max_steps=2", "train.batch_size=8",
                          "eval.num_generate=2", "eval.max_new_tokens=4", f"output_dir={out}"],
                         capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return out


def test_suite_evaluates_an_sft_adapter_end_to_end(sft_model, tmp_path, run_cli):
    out = tmp_path / "ev"
    res = run_cli("eval", SUITE, f"model.name={sft_model / 'model'}", *SMALL, f"output.dir={out}")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "bleu=" in res.stdout and "perplexity=" in res.stdout
    m = json.loads((out / "metrics.json").read_text())
    for key in ("bleu", "rouge1", "rouge2", "rougeL", "rougeLsum", "rougeS", "rougeSU", "bertscore_f1", "exact_match",
                "perplexity", "bits_per_token"):
        assert isinstance(m[key], float), key
    assert m["num_examples"] == 6 and m["perplexity"] > 1
    rows = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and all(isinstance(r["prediction"], str) and r["references"] for r in rows)
    assert not (out / "predictions.partial.jsonl").exists()
    # The headline figures are the metrics of the saved predictions.
    preds, refs = [r["prediction"] for r in rows], [r["references"] for r in rows]
    assert m["bleu"] == pytest.approx(bleu(preds, refs)["bleu"], abs=1e-9)
    assert m["rougeL"] == pytest.approx(rouge(preds, refs, rouge_types=("rougeL",))["rougeL"]["f1"], abs=1e-9)
    assert m["bertscore_f1"] == pytest.approx(bertscore(preds, refs)["f1"], abs=1e-6)
    assert [r["scores"]["rougeL"] for r in rows] == pytest.approx(rouge(preds, refs, per_row=True)["per_row"]["rougeL"])
    report = (out / "report.md").read_text()
    for section in ("| BLEU |", "| Perplexity |", "## Best rows", "## Worst rows", "scores.png", "sacrebleu `nrefs:1"):
        assert section in report, section
    assert (out / "scores.png").stat().st_size > 1000
    # A finished evaluation is not overwritten by accident.
    again = run_cli("eval", SUITE, f"model.name={sft_model / 'model'}", *SMALL, f"output.dir={out}")
    assert again.returncode == 2 and "output.overwrite=true" in again.stderr


def test_generation_resumes_from_the_partial_file(sft_model, tmp_path, run_cli):
    ref = tmp_path / "ref"
    args = [f"model.name={sft_model / 'model'}", "metrics=[exact_match,rouge]", *SMALL]
    assert run_cli("eval", SUITE, *args, f"output.dir={ref}").returncode == 0
    full = [json.loads(x)["prediction"] for x in (ref / "predictions.jsonl").read_text().splitlines()]
    out = tmp_path / "resumed"
    out.mkdir()
    # What a run killed after its first batch leaves: its config, 4 finished rows, then a line cut mid-write.
    (out / "config.yaml").write_text((ref / "config.yaml").read_text().replace(str(ref), str(out)))
    (out / "predictions.partial.jsonl").write_text("".join(json.dumps({"prediction": p}) + "\n" for p in full[:4]) + '{"predi')
    res = run_cli("eval", SUITE, *args, f"output.dir={out}")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "resuming generation: 4 of 6" in res.stderr
    assert [json.loads(x)["prediction"] for x in (out / "predictions.jsonl").read_text().splitlines()] == full


def test_score_a_predictions_file_without_a_model(tmp_path, write_jsonl, run_cli):
    rows = [{"prediction": "the cat sat on the mat", "reference": "the cat sat on a mat"},
            {"prediction": "", "reference": ["nothing here", "empty"]},
            {"prediction": "Café déjà vu", "reference": "cafe deja vu"}]
    path = write_jsonl("preds.jsonl", rows)
    out = tmp_path / "scored"
    res = run_cli("eval", ROOT / "eval/score_generations.yaml", f"predictions.path={path}", "predictions.column=prediction",
                  f"output.dir={out}")
    assert res.returncode == 0, res.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    preds, refs = [r["prediction"] for r in rows], [r["reference"] for r in rows]
    assert m["bleu"] == pytest.approx(bleu(preds, refs)["bleu"])
    assert m["rougeSU"] == pytest.approx(rouge(preds, refs)["rougeSU"]["f1"])
    assert m["exact_match"] == 0 and m["model"] is None


def test_references_from_the_data_file(tmp_path, write_jsonl, run_cli):
    data = write_jsonl("data.jsonl", [{"prompt": "2+2?", "completion": "4"}, {"prompt": "3+3?", "completion": "6"}])
    preds = write_jsonl("p.jsonl", [{"prediction": "4"}, {"prediction": "7"}])
    out = tmp_path / "o"
    res = run_cli("eval", ROOT / "eval/score_generations.yaml", f"predictions.path={preds}", "predictions.column=prediction",
                  f"data.path={data}", "metrics=[exact_match]", f"output.dir={out}")
    assert res.returncode == 0, res.stderr[-3000:]
    assert json.loads((out / "metrics.json").read_text())["exact_match"] == 0.5


@pytest.mark.parametrize("rows,args,message", [
    ([{"prediction": "a"}], [], "no `reference` column and no data.path"),
    ([{"pred": "a", "reference": "a"}], [], "row 1: missing column `prediction`"),
    ([{"prediction": "a", "reference": ""}], [], "row 1: reference must be a non-empty string"),
    ([{"prediction": "a", "reference": "a"}], ["metrics=[bleu,rogue]"], "unknown metric 'rogue' (did you mean `rouge`?)"),
    ([{"prediction": "a", "reference": "a"}], ["metrics=[perplexity]"], "perplexity needs a model"),
])
def test_bad_input_is_named(rows, args, message, tmp_path, write_jsonl, run_cli):
    path = write_jsonl("bad.jsonl", rows)
    res = run_cli("eval", ROOT / "eval/score_generations.yaml", f"predictions.path={path}", "predictions.column=prediction",
                  *args, f"output.dir={tmp_path / 'o'}")
    assert res.returncode == 2, res.stderr[-2000:]
    assert message in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "o" / "metrics.json").exists()


def test_mismatched_reference_count_is_named(tmp_path, write_jsonl, run_cli):
    data = write_jsonl("data.jsonl", [{"prompt": "q", "completion": "a"}] * 3)
    preds = write_jsonl("p.jsonl", [{"prediction": "a"}] * 2)
    res = run_cli("eval", ROOT / "eval/score_generations.yaml", f"predictions.path={preds}", "predictions.column=prediction",
                  f"data.path={data}", f"output.dir={tmp_path / 'o'}")
    assert res.returncode == 2 and "2 predictions but" in res.stderr and "3 references" in res.stderr


def test_every_shipped_suite_parses(run_cli):
    for suite in sorted((ROOT / "eval").glob("*.yaml")):
        extra = ["predictions.path=x.jsonl"] if suite.stem == "score_generations" else []
        res = run_cli("eval", suite, *extra, "--print-config")
        assert res.returncode == 0, (suite, res.stderr[-1000:])


def test_evaluate_modules_load_offline_from_local_paths(tmp_path):
    """evaluate.load("bleu") fetches a script from the hub; llmkit's modules load from a path, with
    the network off, and combine like any evaluate metric."""
    code = """
import evaluate, json
from llmkit.eval import module_path
preds, refs = ["the cat sat on the mat", "hello world"], [["the cat sat on a mat", "a cat"], ["hello there world"]]
out = {"bleu": evaluate.load(module_path("bleu")).compute(predictions=preds, references=refs)["bleu"]}
combo = evaluate.combine([evaluate.load(module_path("rouge")), evaluate.load(module_path("exact_match"))])
out.update(combo.compute(predictions=["the cat", "b"], references=["the cat", "a"]))
out["bertscore"] = evaluate.load(module_path("bertscore")).compute(predictions=preds, references=refs)["f1"]
print(json.dumps(out))
"""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "HF_DATASETS_OFFLINE": "1"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    preds, refs = ["the cat sat on the mat", "hello world"], [["the cat sat on a mat", "a cat"], ["hello there world"]]
    assert got["bleu"] == pytest.approx(bleu(preds, refs)["bleu"])
    assert got["rougeL"]["f1"] == 0.5 and got["exact_match"] == 0.5
    assert got["bertscore"] == pytest.approx(bertscore(preds, refs)["f1"], abs=1e-6)


def test_train_points_a_suite_to_llmkit_eval(run_cli):
    res = run_cli("train", ROOT / "eval/perplexity.yaml")
    assert res.returncode == 2 and "run it with `llmkit eval" in res.stderr


def test_reward_metric_is_the_reward_models_calibrated_score(tmp_path, write_jsonl):
    """metric `reward` scores prompt + prediction with a saved reward model, minus its calibration
    offset; checked against transformers' own sequence-classification forward on the same tokens."""
    import torch

    from llmkit.config import ModelConfig
    from llmkit.data.sft import DEFAULT_CHAT_TEMPLATE
    from llmkit.errors import ConfigError
    from llmkit.eval.suite import load_suite, run
    from llmkit.models.loading import load_tokenizer
    from llmkit.rlhf.reward_data import build_sequence
    from llmkit.rlhf.reward_model import load_sequence_classifier, save_calibration

    torch.manual_seed(0)
    cfg = ModelConfig(name="tiny-llama")
    rm, tok = load_sequence_classifier(cfg), load_tokenizer(cfg)
    tok.chat_template = DEFAULT_CHAT_TEMPLATE
    rm.config.pad_token_id = tok.pad_token_id
    rm_dir = tmp_path / "rm"
    rm.save_pretrained(rm_dir)
    tok.save_pretrained(rm_dir)
    save_calibration(rm_dir, {"offset": 0.25})
    rows = [{"prompt": [{"role": "user", "content": "Add 2 and 3."}], "prediction": "5", "reference": "5"},
            {"prompt": "Reverse abc", "prediction": "cba and more words", "reference": "cba"}]
    preds = write_jsonl("preds.jsonl", rows)
    suite = load_suite(ROOT / "eval/score_generations.yaml", [f"predictions.path={preds}", "predictions.column=prediction",
                                                             "metrics=[exact_match,reward]", f"reward.model={rm_dir}",
                                                             f"output.dir={tmp_path / 'ev'}"])
    m = run(suite)
    with torch.no_grad():
        want = [rm(input_ids=torch.tensor([build_sequence(tok, r["prompt"], r["prediction"])])).logits[0, 0].item() - 0.25
                for r in rows]
    scored = [json.loads(x)["scores"]["reward"] for x in (tmp_path / "ev" / "predictions.jsonl").read_text().splitlines()]
    assert scored == pytest.approx(want, abs=1e-5) and m["reward"] == pytest.approx(sum(want) / 2, abs=1e-5)
    assert m["details"]["reward"]["offset"] == 0.25
    assert "| Mean reward |" in (tmp_path / "ev" / "report.md").read_text()
    with pytest.raises(ConfigError, match="metric reward needs a reward model: set reward.model"):
        load_suite(ROOT / "eval/score_generations.yaml", [f"predictions.path={preds}", "metrics=[reward]"])
