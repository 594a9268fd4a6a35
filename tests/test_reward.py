"""The reward recipe: preference data (rankings -> grouped pairs, split by prompt, errors name the row),
build_sequence (PPO's tokenisation), padding-invariant scoring, the exact metrics, a tiny Llama that
learns a clear preference through the CLI and reloads to the same accuracy, LoRA reward models
(only the adapter and the head change), and the bundled `preferences` generator."""

import json
import math

import pytest
import torch
from conftest import ROOT

from llmkit.config import ModelConfig
from llmkit.data.sft import DEFAULT_CHAT_TEMPLATE
from llmkit.errors import ConfigError, DataError
from llmkit.models.loading import load_tokenizer
from llmkit.rlhf.reward_data import (
    RewardDataConfig,
    build_sequence,
    check_special_tokens,
    prepare,
    prompt_key,
    ranking_pairs,
    tokenize_pairs,
)
from llmkit.rlhf.reward_model import (
    load_reward_model,
    load_sequence_classifier,
    pad_batch,
    pairwise_metrics,
    save_calibration,
    score,
    score_texts,
    train_head,
)

BUNDLED = ROOT / "llmkit" / "data" / "bundled"
TINY = ModelConfig(name="tiny-llama")


def user(text):
    return [{"role": "user", "content": text}]


@pytest.fixture(scope="module")
def tok():
    t = load_tokenizer(TINY)
    t.chat_template = DEFAULT_CHAT_TEMPLATE
    return t


@pytest.fixture
def one_thread(monkeypatch):
    """One OpenMP thread, here and in CLI subprocesses: on a 2-core machine that another process keeps
    busy, two spinning threads made these runs 10-20x slower (measured); one loses little on a tiny model."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def rm():
    torch.manual_seed(0)
    model = load_sequence_classifier(TINY)
    model.config.pad_token_id = 0
    return model.eval()


# ----------------------------------------------------------------------------- data


def test_ranking_becomes_all_pairs_kept_together_per_prompt(write_jsonl, tok):
    assert ranking_pairs(3) == [(0, 1, 1.0), (0, 2, 2.0), (1, 2, 1.0)]
    rows = [{"prompt": user(f"q{i}"), "responses": ["best", "good", "bad", "worst"]} for i in range(30)]
    # the same prompt twice in pairwise data: both records must land on the same side
    rows += [{"prompt": "shared", "chosen": "a", "rejected": "b"}, {"prompt": "shared", "chosen": "a", "rejected": "c"}]
    with pytest.raises(DataError, match="chosen.*rejected.*ranking|cannot tell"):
        prepare(RewardDataConfig(path=str(write_jsonl("mixed.jsonl", [{"x": 1}] * 3))))
    data = prepare(RewardDataConfig(path=str(write_jsonl("rank.jsonl", rows[:30])), test_size=0.2))
    assert data.format == "ranking" and (len(data.train), len(data.test)) == (24, 6)
    assert data.num_train_pairs == 24 * 6 and data.num_test_pairs == 6 * 6
    train_keys, test_keys = ({prompt_key(c.prompt) for c in s} for s in (data.train, data.test))
    assert not train_keys & test_keys
    pairs = tokenize_pairs(data.train, tok, max_length=64, margin=0.5)
    assert len(pairs.rows) == 144 and pairs.dropped == 0
    assert [r["margin"] for r in pairs.rows[:6]] == [0.5, 1.0, 1.5, 0.5, 1.0, 0.5]  # margin x rank gap
    # a prompt's pairs are contiguous, and the sampler keeps them so
    runs = [g for i, g in enumerate(pairs.groups) if i == 0 or pairs.groups[i - 1] != g]
    assert len(runs) == len(set(runs)) == 24
    from llmkit.recipes.reward import GroupedSampler

    sampler = GroupedSampler(pairs.groups, seed=1)
    order = list(sampler)
    assert sorted(order) == list(range(144))
    seen = [pairs.groups[i] for i in order]
    assert len([g for i, g in enumerate(seen) if i == 0 or seen[i - 1] != g]) == 24
    sampler.set_epoch(1)
    assert list(sampler) != order and list(GroupedSampler(pairs.groups, seed=1)) == order
    assert tokenize_pairs(data.train, tok, max_length=8).dropped == 144  # too long: dropped and counted
    pw = prepare(RewardDataConfig(path=str(write_jsonl("pw.jsonl", rows[30:] + [
        {"prompt": f"p{i}", "chosen": "x", "rejected": "y", "margin": 2} for i in range(8)])), test_size=0.5))
    sides = [{c.group for c in s if c.prompt == "shared"} for s in (pw.train, pw.test)]
    assert sorted(len(s) for s in sides) == [0, 1]  # both "shared" records on one side
    assert all(c.pairs[0][2] == 2.0 for c in pw.train + pw.test if c.prompt != "shared")


@pytest.mark.parametrize("row,message", [
    ({"prompt": user("q"), "responses": ["only one"]}, "at least 2 responses"),
    ({"prompt": user("q"), "responses": ["a", "b", "a"]}, "repeats a response"),
    ({"prompt": "", "responses": ["a", "b"]}, "empty prompt"),
    ({"prompt": [{"role": "robot", "content": "hi"}], "responses": ["a", "b"]}, "message 1 has role 'robot'"),
    ({"prompt": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "responses": ["a", "b"]},
     "ends with an assistant message"),
    ({"prompt": user("q"), "responses": ["a", {"role": "user"}]}, r"responses\[1\]. must be a string"),
])
def test_bad_ranking_records_name_file_and_row(write_jsonl, row, message):
    good = {"prompt": user("fine"), "responses": ["a", "b"]}
    path = write_jsonl("bad.jsonl", [good, good, row, good])
    with pytest.raises(DataError, match=rf"bad.jsonl: row 3: .*{message}"):
        prepare(RewardDataConfig(path=str(path)))


@pytest.mark.parametrize("row,message", [
    ({"prompt": "q", "chosen": "same", "rejected": "same"}, "are the same response"),
    ({"prompt": "q", "chosen": "a", "rejected": "b", "margin": "big"}, "must be a finite number"),
    ({"prompt": "q", "chosen": "a"}, "missing column `rejected`"),
    ({"chosen": "a", "rejected": "b"}, "missing column `prompt`"),
])
def test_bad_pairwise_records_name_file_and_row(write_jsonl, row, message):
    good = {"prompt": "fine", "chosen": "a", "rejected": "b"}
    path = write_jsonl("bad.jsonl", [good, row, good])
    with pytest.raises(DataError, match=rf"bad.jsonl: row 2: .*{message}"):
        prepare(RewardDataConfig(path=str(path), format="pairwise"))


def test_implicit_prompt_and_message_responses(write_jsonl):
    convos = [user("hi"), user("hello")]
    rows = [{"chosen": convos[i % 2] + [{"role": "assistant", "content": f"good {i}"}],
             "rejected": convos[i % 2] + [{"role": "assistant", "content": f"bad {i}"}]} for i in range(4)]
    data = prepare(RewardDataConfig(path=str(write_jsonl("implicit.jsonl", rows)), test_size=0.5))
    assert len(data.train) == len(data.test) == 2  # two prompts: one per side, each with both its records
    for side in (data.train, data.test):
        assert side[0].prompt == side[1].prompt in convos and side[0].group == side[1].group
        assert all(c.responses[0].startswith("good") and c.responses[1].startswith("bad") for c in side)
    with pytest.raises(DataError, match="implicit.jsonl: needs at least 2 distinct prompts"):
        prepare(RewardDataConfig(path=str(write_jsonl("implicit.jsonl", rows[::2]))))
    msgs = [{"prompt": user(f"q{i}"), "responses": [[{"role": "assistant", "content": "a"}], "b"]} for i in range(4)]
    assert prepare(RewardDataConfig(path=str(write_jsonl("msgs.jsonl", msgs)))).train[0].responses == ["a", "b"]


# ----------------------------------------------------------------------------- tokenisation and scoring


def test_build_sequence_is_template_plus_response_plus_eos(tok):
    assert tok.pad_token_id == 0 and tok.eos_token_id == 3  # pad != eos: the reward's EOS is not padding
    prompt = user("What is 2 + 3?")
    ids = build_sequence(tok, prompt, "5 apples")
    head = tok.apply_chat_template(prompt, tokenize=True, add_generation_prompt=True, return_dict=True)["input_ids"]
    assert ids == list(head) + tok("5 apples", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert build_sequence(tok, prompt, "") == list(head) + [tok.eos_token_id]  # an empty reply is just EOS
    reply = tok("5 apples", add_special_tokens=False)["input_ids"]
    assert build_sequence(tok, prompt, reply) == ids  # token ids (a PPO rollout) build the same sequence
    assert build_sequence(tok, prompt, reply + [tok.eos_token_id]) == ids  # ... and an EOS is not doubled
    assert build_sequence(tok, "Q: 2+3? A:", " 5") == tok("Q: 2+3? A:")["input_ids"] + tok(" 5", add_special_tokens=False)["input_ids"] + [3]
    bad = load_tokenizer(TINY)
    bad.pad_token = bad.eos_token
    with pytest.raises(ConfigError, match="pads with its EOS"):
        check_special_tokens(bad)


def test_score_does_not_depend_on_padding_side(rm, tok):
    seqs = [build_sequence(tok, user(q), r) for q, r in
            [("What is 2 + 3?", "5"), ("Name a colour.", "The sky is blue today, mostly."), ("Hi", "")]]
    right = score(rm, *pad_batch(seqs, tok.pad_token_id, "right"))
    left = score(rm, *pad_batch(seqs, tok.pad_token_id, "left"))
    alone = torch.cat([score(rm, *pad_batch([s], tok.pad_token_id)) for s in seqs])
    torch.testing.assert_close(left, right, rtol=0, atol=1e-5)
    torch.testing.assert_close(alone, right, rtol=0, atol=1e-5)
    ids, mask = pad_batch(seqs, tok.pad_token_id, "right")
    torch.testing.assert_close(rm(input_ids=ids, attention_mask=mask).logits.squeeze(-1), right, rtol=0, atol=1e-5)
    assert len(set(right.tolist())) == 3
    no_eos = score(rm, *pad_batch([seqs[0][:-1]], tok.pad_token_id))  # the EOS is what gets scored
    assert abs(no_eos.item() - right[0].item()) > 1e-4
    assert score_texts(rm, tok, [user("What is 2 + 3?")], ["5"], offset=1.5)[0] == pytest.approx(right[0].item() - 1.5, abs=1e-5)


def test_pairwise_metrics_by_hand():
    m = pairwise_metrics([2.0, 0.0, 1.0], [1.0, 0.0, 3.0])  # differences 1, 0, -2
    assert m["pairwise_accuracy"] == pytest.approx(0.5)  # 1 + 1/2 (the tie) + 0, over 3
    assert m["mean_margin"] == pytest.approx(-1 / 3)
    log_loss = (math.log(1 + math.exp(-1)) + math.log(2) + math.log(1 + math.exp(2))) / 3
    assert m["log_loss"] == pytest.approx(log_loss, rel=1e-12) and m["ties"] == 1


def test_lora_reward_model_trains_adapter_and_head_only(rm, tok, tmp_path, one_thread):
    from llmkit.methods import get_method, save_trained

    lora = get_method("lora")
    model = lora.apply(rm, lora.config_cls(dropout=0.0))
    train_head(model)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or ".score." in n for n in trainable)
    assert any(".score." in n for n in trainable) and not any("score" in n and "lora_" in n for n in trainable)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    chosen = [build_sequence(tok, user(f"q{i}"), "yes") for i in range(4)]
    rejected = [build_sequence(tok, user(f"q{i}"), "no, never") for i in range(4)]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.0)
    model.train()
    for _ in range(3):
        loss = -torch.nn.functional.logsigmoid(score(model, *pad_batch(chosen, 0)) - score(model, *pad_batch(rejected, 0))).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    for n, p in model.named_parameters():
        if n in trainable:
            assert not torch.equal(p, before[n]), f"{n} did not move"
        else:
            assert torch.equal(p, before[n]), f"frozen {n} changed"
    # saved as a SEQ_CLS adapter with the head; reloads to the same scores
    save_trained("lora", model, tmp_path / "rm", base_model="tiny-llama")
    tok.save_pretrained(tmp_path / "rm")
    save_calibration(tmp_path / "rm", {"offset": 0.25, "base_model": "tiny-llama"})
    cfg = json.loads((tmp_path / "rm" / "adapter_config.json").read_text())
    assert cfg["task_type"] == "SEQ_CLS" and "score" in cfg["modules_to_save"]
    loaded, ltok, offset = load_reward_model(tmp_path / "rm")
    model.eval()
    expect = score_texts(model, tok, [user("q0")] * 2, ["yes", "no, never"], 0.25)
    assert offset == 0.25
    assert score_texts(loaded, ltok, [user("q0")] * 2, ["yes", "no, never"], offset) == pytest.approx(expect, abs=1e-5)


# ----------------------------------------------------------------------------- the recipe through the CLI


def clear_preferences(directory, n_train=240, n_test=40):
    """Bundled prompts with three ranks that differ in format (correct > chatter > irrelevant): a
    clear preference that a random-init tiny model learns in a few dozen steps."""
    directory.mkdir()
    for split, n in (("train", n_train), ("test", n_test)):
        rows = [json.loads(x) for x in (BUNDLED / "preferences" / f"{split}.jsonl").read_text().splitlines()[:n]]
        (directory / f"{split}.jsonl").write_text("".join(
            json.dumps({"prompt": r["prompt"], "responses": [r["responses"][i] for i in (0, 2, 3)], "task": r["task"]}) + "\n"
            for r in rows))
    return directory


def test_tiny_llama_learns_a_clear_preference_and_reloads(tmp_path, run_cli, one_thread):
    data = clear_preferences(tmp_path / "prefs")
    out = tmp_path / "run"
    res = run_cli("train", ROOT / "recipes/rlhf/reward.yaml", "model=tiny-llama", f"data={data}", "train.batch_size=12",
                  "train.learning_rate=3e-3", "train.epochs=2", "train.logging_steps=5", "calibration.num_samples=32",
                  "eval.num_examples=3", f"output_dir={out}")
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    for name in ("config.yaml", "metrics.json", "history.jsonl", "report.md", "report.html", "loss.png",
                 "model/adapter_model.safetensors", "model/adapter_config.json", "model/tokenizer.json",
                 "model/reward_calibration.json"):  # the recipe trains LoRA: model/ is a PEFT adapter
        assert (out / name).is_file(), name
    assert not (out / "checkpoints").exists()
    m = json.loads((out / "metrics.json").read_text())
    assert m["num_train_pairs"] == 720 and m["num_test_pairs"] == 120 and m["format"] == "ranking"
    assert abs(m["base_pairwise_accuracy"] - 0.5) < 0.2
    assert m["pairwise_accuracy"] >= 0.9 > m["base_pairwise_accuracy"]
    assert m["mean_margin"] > 0 and m["log_loss"] < m["base_log_loss"]
    for key in ("calibration_offset", "trainable_params", "total_params", "train_seconds", "peak_memory_mb",
                "pairs_per_second", "tokens_per_second", "optimizer_steps"):
        assert m.get(key) is not None, key
    assert m["mean_reward_by_rank"] == sorted(m["mean_reward_by_rank"], reverse=True)
    report = (out / "report.md").read_text()
    assert "loss.png" in report and "Held-out examples" in report
    # the saved reward model reloads and reproduces the recipe's held-out accuracy and calibration
    from llmkit.data.sft import SFTDataConfig
    from llmkit.data.sft import prepare as prepare_sft
    from llmkit.rlhf.reward_model import evaluate_comparisons

    model, tokenizer, offset = load_reward_model(out / "model")
    assert offset == pytest.approx(m["calibration_offset"])
    test = prepare(RewardDataConfig(path=str(data))).test
    again, _ = evaluate_comparisons(model, tokenizer, test, max_length=256)
    assert again["pairwise_accuracy"] == pytest.approx(m["pairwise_accuracy"], abs=1e-12)
    demos = prepare_sft(SFTDataConfig(max_train_samples=32)).train
    calibrated = score_texts(model, tokenizer, [d["messages"][:-1] for d in demos],
                             [d["messages"][-1]["content"] for d in demos], offset)
    assert abs(sum(calibrated) / len(calibrated)) < 1e-4  # demonstrations score 0 on average


# ----------------------------------------------------------------------------- bundled data


def _generator():
    from llmkit.data.bundled import make_preferences

    return make_preferences


@pytest.mark.parametrize("split", ["train", "test"])
def test_bundled_preferences_are_what_the_generator_writes(split):
    mp = _generator()
    train, test = mp.generate()
    assert mp.generate() == (train, test)
    shipped = (BUNDLED / "preferences" / f"{split}.jsonl").read_bytes()
    assert mp.to_jsonl({"train": train, "test": test}[split]).encode() == shipped, (
        f"preferences/{split}.jsonl is stale: run `python -m llmkit.data.bundled.make_preferences`")


def test_bundled_preferences_ranks_and_prompts():
    from llmkit.data.bundled import make_instructions as mi

    mp = _generator()
    train, test = mp.generate()
    assert len(train) == 12 * mp.N_TRAIN_PER_FAMILY and len(test) == 12 * mp.N_TEST_PER_FAMILY
    prompts = [r["prompt"][0]["content"] for r in train + test]
    assert len(set(prompts)) == len(prompts)  # unique across both splits
    instruction_test = {r["messages"][0]["content"] for r in mi.generate()[1]}
    assert not instruction_test & set(prompts)  # PPO is scored on prompts the reward model never saw
    for r in train + test:
        assert len(r["responses"]) == len(set(r["responses"])) == 4
        assert [mi.check(r, x) for x in r["responses"]] == [True, False, False, False]
        assert r["answer"] in r["responses"][2] or r["answer"].lower() in r["responses"][2].lower()
    data = prepare(RewardDataConfig())  # registered as a bundled name
    assert data.format == "ranking" and data.num_train_pairs == 6 * len(train) and data.test_prompts_in_train == 0


# ----------------------------------------------------------------------------- pad == EOS, and the deduplicated forward


def test_distinct_pad_token_for_tokenizers_that_pad_with_eos():
    from llmkit.models.loading import distinct_pad_token

    t = load_tokenizer(TINY)
    assert distinct_pad_token(t)["pad_token_source"] == "tokenizer" and t.pad_token == "<pad>"  # already distinct
    t.pad_token = t.eos_token  # as SmolLM2, Llama 3 and many Qwen builds ship
    choice = distinct_pad_token(t)
    assert choice == {"pad_token": "<unk>", "pad_token_id": t.convert_tokens_to_ids("<unk>"), "pad_token_source": "unk token",
                      "tokenizer_pad_token": "</s>"}
    check_special_tokens(t)  # the EOS is no longer padding
    t.pad_token = t.eos_token
    assert distinct_pad_token(t, "<s>")["pad_token"] == "<s>" and t.pad_token == "<s>"
    for bad, match in (("<nope>", "not in the tokenizer's vocabulary"), ("</s>", "is the EOS token")):
        with pytest.raises(ConfigError, match=match):
            distinct_pad_token(t, bad)
    t.pad_token, t.unk_token = t.eos_token, t.eos_token  # no unk either: a pad-named token of the vocabulary
    assert distinct_pad_token(t) | {"pad_token_id": None} == {"pad_token": "<pad>", "pad_token_id": None,
                                                              "pad_token_source": "vocabulary", "tokenizer_pad_token": "</s>"}


def test_dedup_forward_gives_trl_loss_and_gradients(rm, tok):
    """A batch of ranked pairs (each response in K-1 pairs) runs each distinct sequence once, with the
    loss and gradients of TRL's own compute_loss."""
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    from llmkit.recipes.reward import trainer_class

    rows = []
    for q in range(2):  # 2 prompts x 4 ranked responses -> 12 pairs, 8 distinct sequences
        seqs = [build_sequence(tok, user(f"q{q}"), r) for r in ("4", "5", "The answer is 4.", "")]
        rows += [{"chosen_input_ids": seqs[i], "rejected_input_ids": seqs[j]} for i, j, _ in ranking_pairs(4)]
    args = RewardConfig(output_dir="/tmp/unused", report_to="none", use_cpu=True, center_rewards_coefficient=0.01,
                        disable_dropout=True, per_device_train_batch_size=len(rows))
    calls = []
    rm.score.register_forward_hook(lambda mod, inp, out: calls.append(out.shape[0]))  # rows the trunk ran
    results = []
    for cls in (RewardTrainer, trainer_class([0] * 6 + [1] * 6)):
        trainer = cls(model=rm, args=args, processing_class=tok, train_dataset=Dataset.from_list(rows))
        batch = next(iter(trainer.get_train_dataloader()))
        rm.zero_grad()
        calls.clear()
        loss = trainer.compute_loss(rm, dict(batch))
        loss.backward()
        results.append((loss.detach(), {n: p.grad.clone() for n, p in rm.named_parameters() if p.grad is not None},
                        calls[:]))
    (trl_loss, trl_grads, trl_rows), (loss, grads, rows_run) = results
    assert trl_rows == [24] and rows_run == [8]  # chosen + rejected of 12 pairs, against 8 distinct sequences
    torch.testing.assert_close(loss, trl_loss, rtol=1e-6, atol=1e-7)
    assert grads.keys() == trl_grads.keys() and grads
    for n in grads:
        torch.testing.assert_close(grads[n], trl_grads[n], rtol=1e-4, atol=1e-6)  # fp32 sums in another order
    assert "forward" not in rm.__dict__  # the patch is gone after the step
