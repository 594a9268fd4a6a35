"""`llmkit quickstart --fast` end to end: killed in its third stage and started again, it keeps the
finished stages, resumes the one it was in and finishes; then every stage's output, the key numbers
in report.md, each classifier reloading to its reported accuracy, and report.html as headless
Chromium renders it. (The classify recipes' own smoke runs live here: the quickstart runs six of
them with the same tiny settings.)"""

import json
import re
import subprocess
import sys
import time

import pytest
from chromium import ChromiumUnavailable, dump_dom, ensure_chromium, screenshot
from conftest import ROOT

STAGES = ["self_instruct", "sft", "reward", "ppo", "eval_zeroshot", "eval_fewshot", "eval_sft", "eval_ppo", "classify_feature_based",
          "classify_finetune_last_layers", "classify_finetune_all", "classify_lora", "classify_adapter",
          "classify_prefix", "compare"]
CLASSIFY = [s for s in STAGES if s.startswith("classify_")]


def _kill_tree(proc) -> None:
    import psutil

    tree = [proc.pid] + [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    for pid in tree:
        try:
            psutil.Process(pid).kill()
        except psutil.NoSuchProcess:
            pass
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    out = tmp_path_factory.mktemp("quickstart") / "qs"
    cmd = [sys.executable, "-m", "llmkit", "quickstart", "--fast", "--output", str(out)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not (out / "reward").exists():
        time.sleep(0.1)
    assert proc.poll() is None, "the quickstart ended before its third stage"
    time.sleep(0.3)  # into the reward model's run (it needs ~2 s more)
    _kill_tree(proc)
    assert (out / "sft" / "metrics.json").is_file() and not (out / "reward" / "metrics.json").exists()
    started = time.perf_counter()
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return out, res.stdout, time.perf_counter() - started


def test_resumed_quickstart_keeps_finished_stages_and_prints_a_line_per_stage(quickstart):
    out, stdout, _ = quickstart
    lines = [x for x in stdout.splitlines() if x.startswith("[")]
    assert [x.split("]")[0] for x in lines] == [f"[{i}" + f"/{len(STAGES)}" for i in range(1, len(STAGES) + 1)]
    assert "done before, kept" in lines[0] and "done before, kept" in lines[1]
    assert lines[2].startswith(f"[3/{len(STAGES)}] reward model: resuming ... pairwise accuracy")
    assert all(" ... " in x and x.endswith(" s)") for x in lines[3:])
    record = json.loads((out / "pipeline.json").read_text())
    assert record["fast"] is True and [record["stages"][s]["status"] for s in STAGES] == ["done"] * len(STAGES)
    assert f"report: {out / 'report.md'}" in stdout
    # Started again once more, nothing runs.
    again = subprocess.run([sys.executable, "-m", "llmkit", "quickstart", "--fast", "--output", str(out)], cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and again.stdout.count("done before, kept") == len(STAGES)
    # A full (not --fast) quickstart into the same directory would mix two runs: refused, nothing touched.
    mixed = subprocess.run([sys.executable, "-m", "llmkit", "quickstart", "--output", str(out)], cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
    assert mixed.returncode == 2 and "was made by another command" in mixed.stderr and "delete" in mixed.stderr


def test_every_stage_wrote_its_outputs(quickstart):
    out, _, seconds = quickstart
    assert seconds < 180, f"--fast took {seconds:.0f} s (budget 3 min)"
    for stage in STAGES:
        assert (out / stage / "report.md").is_file() or stage == "compare", stage
        assert (out / f"{stage}.log").read_text().startswith("$ "), stage  # the command, to rerun by hand
    si = json.loads((out / "self_instruct" / "stats.json").read_text())
    assert si["bootstrap"]["kept"] >= 1 and (out / "self_instruct" / "finetune.jsonl").is_file()
    sft = json.loads((out / "sft" / "metrics.json").read_text())
    # the SFT set is the bundled instructions (64 in --fast) plus every Self-Instruct example
    assert sft["num_train"] == 64 + si["export"]["examples"]
    assert (out / "sft" / "model" / "adapter_config.json").is_file()
    rm = json.loads((out / "reward" / "metrics.json").read_text())
    assert 0 <= rm["pairwise_accuracy"] <= 1 and (out / "reward" / "model").is_dir()
    ppo = json.loads((out / "ppo" / "metrics.json").read_text())
    assert ppo["updates"] == 2 and ppo["policy_start"] == str(out / "sft" / "model")
    assert ppo["reward"] == str(out / "reward" / "model")
    for stage, model, shots in (("eval_zeroshot", "tiny-llama", 0), ("eval_fewshot", "tiny-llama", 3),
                                ("eval_sft", out / "sft" / "model", 0), ("eval_ppo", out / "ppo" / "model", 0)):
        m = json.loads((out / stage / "metrics.json").read_text())
        assert m["model"] == str(model) and m["num_examples"] == 16 and m["fewshot_k"] == shots
        for key in ("bleu", "rougeL", "bertscore_f1", "exact_match", "reward") + (("perplexity",) if not shots else ()):
            assert isinstance(m[key], float), (stage, key)
    # the 3-shot prompts hold three solved examples of the same task family before the question
    first = json.loads((out / "eval_fewshot" / "predictions.jsonl").read_text().splitlines()[0])
    zero = json.loads((out / "eval_zeroshot" / "predictions.jsonl").read_text().splitlines()[0])
    assert first["prompt"] == zero["prompt"]  # shown as the question asked, without the demonstrations
    table = (out / "compare" / "compare.md").read_text()
    for method in ("feature_based", "last_layers", "full", "lora", "adapter", "prefix"):
        assert f"| {method} |" in table
    assert (out / "compare" / "compare.png").stat().st_size > 5000


@pytest.mark.parametrize("stage", CLASSIFY)
def test_each_classifier_reloads_to_its_reported_accuracy(quickstart, stage):
    from llmkit.data.classification import ClassifyDataConfig, prepare
    from llmkit.models.classifier import load_classifier, predict

    run = quickstart[0] / stage
    for name in ("config.yaml", "metrics.json", "history.jsonl", "report.md", "confusion.png", "model/classifier.json",
                 "model/head.safetensors"):
        assert (run / name).is_file(), name
    m = json.loads((run / "metrics.json").read_text())
    assert 0 < m["trainable_params"] <= m["total_params"] and m["num_test"] == 128
    model, tok, meta = load_classifier(run / "model")
    data = prepare(ClassifyDataConfig(max_test_samples=128), seed=42)
    preds = predict(model, tok, data.test_texts, meta["max_length"])
    assert sum(p == y for p, y in zip(preds, data.test_labels)) / len(preds) == pytest.approx(m["accuracy"])


def test_report_has_each_stages_key_numbers(quickstart):
    out = quickstart[0]
    report = (out / "report.md").read_text()
    m = {s: json.loads((out / s / ("stats.json" if s == "self_instruct" else "metrics.json")).read_text())
         for s in STAGES if s != "compare"}
    pct = lambda v: f"{100 * v:.1f}%"  # noqa: E731
    expected = [
        f"| Self-Instruct | machine instructions kept |  | {m['self_instruct']['bootstrap']['kept']} (of ",
        f"| SFT (LoRA) | held-out loss on the answer tokens, base -> SFT | {m['sft']['base_eval_loss']:.3f} | {m['sft']['eval_loss']:.3f} |",
        f"| reward model | held-out pairwise accuracy | {m['reward']['base_pairwise_accuracy']:.3f} | {m['reward']['pairwise_accuracy']:.3f} |",
        f"| reward model | held-out accuracy, best vs second-best response (bundled: correct vs near miss) | "
        f"{m['reward']['base_accuracy_by_rank_pair']['1>2']:.3f} | {m['reward']['accuracy_by_rank_pair']['1>2']:.3f} |",
        f"| PPO | KL to the SFT model per response, nats (last fifth; max) |  | {m['ppo']['kl_last']:.3f}; {m['ppo']['kl_max']:.3f} |",
        f"| mean rollout reward (first / last fifth of updates) | {m['ppo']['reward_mean_first']:.3f} | {m['ppo']['reward_mean_last']:.3f} |",
        f"| mean reward (reward model) | {m['eval_zeroshot']['reward']:.3f} | {m['eval_fewshot']['reward']:.3f} | "
        f"{m['eval_sft']['reward']:.3f} | {m['eval_ppo']['reward']:.3f} |",
        f"| exact match | {pct(m['eval_zeroshot']['exact_match'])} | {pct(m['eval_fewshot']['exact_match'])} | "
        f"{pct(m['eval_sft']['exact_match'])} | {pct(m['eval_ppo']['exact_match'])} |",
        f"| BERTScore F1 | {m['eval_zeroshot']['bertscore_f1']:.3f} |",
        f"| perplexity, held-out text (lower is better) | {m['eval_zeroshot']['perplexity']:.3f} | n/a |",
        f"| finetune II (all layers) | {m['classify_finetune_all']['accuracy']:.3f} |",
        "| prompt | reference | base, zero-shot | base, 3-shot | SFT | SFT + PPO |",
    ]
    for line in expected:
        assert line in report, line
    for heading in ("## Results", "## 1. Self-Instruct", "## 2. Supervised finetuning: SFT (LoRA)", "## 3. Reward model",
                    "## 4. PPO", "## 5. Evaluation: base, zero-shot vs base, 3-shot vs SFT vs SFT + PPO",
                    "## 6. Classification: every method side by side", "## Stages"):
        assert heading in report, heading
    # the curves, the evaluation plot and the method comparison, each a real image
    for img in ("ppo/reward_kl.png", "eval.png", "compare/compare.png"):
        assert f"]({img})" in report and (out / img).stat().st_size > 5000, img
    # sample generations: the same prompts, each model's answer from its own predictions file
    rows = [json.loads(x) for x in (out / "eval_ppo" / "predictions.jsonl").read_text().splitlines()]
    assert rows[0]["prompt"][:40] in report


def test_report_html_renders_in_chromium(quickstart, tmp_path):
    try:
        ensure_chromium()
    except ChromiumUnavailable as e:
        pytest.skip(str(e))
    html = quickstart[0] / "report.html"
    text = html.read_text()
    assert "<script" not in text and "http://" not in text and "https://" not in text  # self-contained
    dom = dump_dom(html)
    for heading in ("Results", "1. Self-Instruct", "2. Supervised finetuning: SFT (LoRA)", "3. Reward model", "4. PPO",
                    "5. Evaluation: base, zero-shot vs base, 3-shot vs SFT vs SFT + PPO",
                    "6. Classification: every method side by side"):
        assert re.search(rf"<h2[^>]*>{re.escape(heading)}</h2>", dom), heading
    images = re.findall(r'<img[^>]*src="data:image/png;base64,', dom)
    assert len(images) >= 4  # kept instructions, PPO curves, evaluation, comparison (+ loss curves when logged)
    assert 'class="missing"' not in dom
    shot = screenshot(html, tmp_path / "report.png", width=1200, height=2400)
    assert shot.stat().st_size > 50_000
