"""The embedded causal LM's pretraining (llmkit/models/pretrain.py), run with a tiny budget: the saved
directory loads with the Auto classes, the chat template renders the corpus format and masks exactly
the assistant replies, generation runs. The full `pico-llama` pretraining is never run here."""

import json

import pytest

from llmkit.data.bundled import make_corpus, make_instructions
from llmkit.models import pretrain as pt

TINY = pt.Spec(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
               num_key_value_heads=2, vocab_size=400, corpus_docs=1500, steps=5, batch_size=4)
CHAT = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "What is 12 + 30?"},
    {"role": "assistant", "content": "42"},
    {"role": "user", "content": "Say hello."},
    {"role": "assistant", "content": "hello there"},
]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("pico") / "model"
    return pt.pretrain(out, spec=TINY, seed=0, progress=False)


@pytest.fixture(scope="module")
def loaded(built):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(built), AutoTokenizer.from_pretrained(built)


def test_directory_holds_safetensors_and_the_pretraining_record(built):
    assert (built / "model.safetensors").is_file() and not list(built.glob("*.bin"))
    record = json.loads((built / "llmkit_pretrain.json").read_text())
    assert record["steps"] == 5 and record["seed"] == 0 and record["corpus_documents"] == 1500
    assert record["spec"]["hidden_size"] == 32 and record["parameters"] > 0
    assert record["corpus_tokens"] > 0 and record["wall_time_s"] > 0
    assert record["final_loss"] < record["first_loss"]  # five steps already lower the loss


def test_loads_with_auto_classes(loaded):
    model, tok = loaded
    assert model.config.model_type == "llama" and model.config.hidden_size == 32
    assert model.config.vocab_size == len(tok)
    assert (tok.bos_token, tok.eos_token, tok.pad_token, tok.unk_token) == ("<s>", "</s>", "<pad>", "<unk>")
    assert model.config.eos_token_id == tok.eos_token_id
    assert model.generation_config.eos_token_id == tok.eos_token_id
    # Byte-level: any text encodes without <unk>; digits are single tokens.
    ids = tok("Crème brûlée ✓ 2024", add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id not in ids and tok.decode(ids) == "Crème brûlée ✓ 2024"
    assert tok.tokenize("2024") == ["2", "0", "2", "4"]
    # A word is the same tokens wherever it stands: after a space, a newline, a quote, at the start.
    word = tok("sock", add_special_tokens=False)["input_ids"]
    for text in (" sock", "\nsock", "'sock'", "said sock."):
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert any(ids[i:i + len(word)] == word for i in range(len(ids))), text
    for tag in pt.ROLE_TOKENS:  # role tags are one token each
        assert len(tok(tag, add_special_tokens=False)["input_ids"]) == 1


def test_chat_template_renders_the_corpus_format(loaded):
    _, tok = loaded
    text = tok.apply_chat_template(CHAT, tokenize=False)
    assert text == make_corpus.render_chat(CHAT) == (
        "<s><|system|>\nAnswer briefly.\n<|user|>\nWhat is 12 + 30?\n<|assistant|>\n42</s>\n"
        "<|user|>\nSay hello.\n<|assistant|>\nhello there</s>\n")
    prompt = tok.apply_chat_template(CHAT[:2], tokenize=False, add_generation_prompt=True)
    assert prompt == "<s><|system|>\nAnswer briefly.\n<|user|>\nWhat is 12 + 30?\n<|assistant|>\n"
    with pytest.raises(Exception, match="roles must be"):
        tok.apply_chat_template([{"role": "tool", "content": "x"}], tokenize=False)


def test_assistant_mask_covers_exactly_the_replies_and_their_eos(loaded):
    _, tok = loaded
    out = tok.apply_chat_template(CHAT, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = out["input_ids"], out["assistant_masks"]
    assert len(ids) == len(mask)
    masked = [i for i, m in zip(ids, mask) if m]
    want = (tok("42", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
            + tok("hello there", add_special_tokens=False)["input_ids"] + [tok.eos_token_id])
    assert masked == want
    # The masked tokens form two contiguous runs, each right after "<|assistant|>\n".
    runs = [i for i in range(len(mask)) if mask[i] and (i == 0 or not mask[i - 1])]
    assistant = tok.convert_tokens_to_ids("<|assistant|>")
    assert len(runs) == 2 and all(ids[i - 2] == assistant for i in runs)


def test_generation_runs_and_exact_match_scores(loaded):
    model, tok = loaded
    records = [r for r in make_instructions.generate()[1][:6]]
    answers = pt.generate_answers(model, tok, [r["messages"][0]["content"] for r in records], max_new_tokens=4)
    assert len(answers) == 6 and all(isinstance(a, str) for a in answers)
    assert tok.padding_side == "right"  # restored after left-padded generation
    total, per_task = pt.exact_match(model, tok, records, max_new_tokens=4)
    assert 0.0 <= total <= 1.0 and set(per_task) == {r["task"] for r in records}


def test_pretraining_is_deterministic(built, tmp_path):
    from safetensors.torch import load_file

    again = pt.pretrain(tmp_path / "again", spec=TINY, seed=0, progress=False)
    assert (again / "tokenizer.json").read_bytes() == (built / "tokenizer.json").read_bytes()
    a, b = load_file(built / "model.safetensors"), load_file(again / "model.safetensors")
    assert a.keys() == b.keys()
    assert all((a[k] == b[k]).all() for k in a)


def test_corpus_is_deterministic_and_never_holds_a_bundled_prompt():
    docs = make_corpus.generate_corpus(3000, seed=1)
    assert docs == make_corpus.generate_corpus(3000, seed=1) != make_corpus.generate_corpus(3000, seed=2)
    assert all(d.startswith("<s>") and d.rstrip("\n").endswith("</s>") for d in docs)
    chats = [d for d in docs if "<|user|>" in d]
    assert 0.3 < len(chats) / len(docs) < 0.5
    train, test = make_instructions.generate()
    bundled = {f"<|user|>\n{r['messages'][0]['content']}\n" for r in train + test}
    assert not [p for p in bundled if any(p in d for d in chats)]


def test_pretrained_model_path_builds_once_into_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("LLMKIT_CACHE", str(tmp_path))
    calls = []

    def fake_pretrain(out_dir, *, spec, progress):
        calls.append(spec)
        (out_dir / "config.json").write_text("{}")
        return out_dir

    monkeypatch.setattr(pt, "pretrain", fake_pretrain)
    path = pt.pretrained_model_path("pico-llama", progress=False)
    assert path == tmp_path / "models" / "pico-llama" and (path / "config.json").is_file()
    assert pt.pretrained_model_path("pico-llama") == path and calls == [pt.PRETRAINED["pico-llama"]]
    assert [p.name for p in (tmp_path / "models").iterdir()] == ["pico-llama"]  # no temp dir left
    with pytest.raises(ValueError, match="pico-llama"):
        pt.pretrained_model_path("nano-llama")
