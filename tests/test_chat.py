"""`llmkit chat`: streamed replies equal plain greedy generation, earlier turns reach the model through the
chat template, the system prompt and the commands work, long conversations drop their oldest turns, and
bad arguments exit 2 before the model loads."""

import io
import subprocess
import sys

import pytest
import torch
from test_merge_sample import trained_adapter

from llmkit.chat import Conversation, chat, prompt_for
from llmkit.errors import ConfigError
from llmkit.models.loading import set_chat_template
from llmkit.models.trained import load_causal

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def greedy(model, tok, messages, n):
    ids = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    with torch.no_grad():
        out = model.generate(input_ids=torch.tensor([ids]), max_new_tokens=n, do_sample=False,
                             pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    return tok.decode(out[0, len(ids):], skip_special_tokens=True).strip()


def run_chat(model, lines, **kw):
    out, err = io.StringIO(), io.StringIO()
    log = chat(model, stdin=io.StringIO("".join(line + "\n" for line in lines)), stdout=out, stderr=err, **kw)
    return log, out.getvalue(), err.getvalue()


def test_replies_stream_and_see_the_earlier_turns(tmp_path):
    trained_adapter("lora", tmp_path / "adapter", r=4)
    log, out, err = run_chat(str(tmp_path / "adapter"), ["hello there", "", "and again"], system="Be brief.",
                             max_new_tokens=6)
    assert len(log) == 2  # the empty line is no turn
    model, tok = load_causal(str(tmp_path / "adapter"))
    set_chat_template(tok)
    first = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello there"}]
    a1 = greedy(model, tok, first, 6)
    second = first + [{"role": "assistant", "content": a1}, {"role": "user", "content": "and again"}]
    a2 = greedy(model, tok, second, 6)
    assert log[1]["messages"] == second + [{"role": "assistant", "content": a2}]
    # what streamed to the terminal is the reply, turn by turn
    assert [line.strip() for line in out.splitlines()] == [a1, a2]
    assert log[1]["prompt_tokens"] > log[0]["prompt_tokens"]  # the second prompt holds the first exchange


def test_commands_reset_and_replace_the_system_prompt():
    log, _, err = run_chat("tiny-llama", ["one", "/reset", "two", "/system Talk like a pirate.", "three", "/nope",
                                          "/exit", "never read"], system="First.", max_new_tokens=3)
    assert [entry["messages"][0] for entry in log] == [{"role": "system", "content": "First."}] * 2 + [
        {"role": "system", "content": "Talk like a pirate."}]
    assert [len(entry["messages"]) for entry in log] == [3, 3, 3]  # each reset forgot the turns before it
    assert "unknown command /nope" in err and len(log) == 3  # /exit stopped before "never read"


def test_a_long_conversation_drops_its_oldest_exchanges():
    model, tok = load_causal("tiny-llama")
    set_chat_template(tok)
    convo = Conversation(system="S")
    for i in range(6):
        convo.turns += [{"role": "user", "content": f"question {i} " * 5}, {"role": "assistant", "content": f"answer {i} " * 5}]
    full, _ = prompt_for(tok, Conversation(system="S", turns=list(convo.turns)), "last", None)
    ids, dropped = prompt_for(tok, convo, "last", len(full) - 10)
    assert dropped == 1 and len(convo.turns) == 10 and len(ids) <= len(full) - 10
    assert convo.turns[0]["content"].startswith("question 1")  # the oldest pair went, the system prompt stays
    assert tok.decode(ids).count("S") >= 1
    with pytest.raises(ConfigError, match="this message is .* tokens"):
        prompt_for(tok, Conversation(), "word " * 50, 5)


def test_cli_pipes_questions_and_refuses_bad_arguments(tmp_path):
    cmd = [sys.executable, "-m", "llmkit", "chat", "tiny-llama", "--max-new-tokens", "4"]
    res = subprocess.run(cmd, input="first question\nsecond\n", capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert len(res.stdout.splitlines()) == 2
    for flags, needle in ((["--max-new-tokens", "0"], "--max-new-tokens must be >= 1"),
                          (["--temperature", "-1"], "--temperature must be a finite number")):
        res = subprocess.run(cmd[:5] + flags, input="hi\n", capture_output=True, text=True, cwd=ROOT, timeout=300)
        assert res.returncode == 2 and needle in res.stderr, res.stderr[-2000:]
    res = subprocess.run(cmd[:4] + [str(tmp_path / "missing")], input="hi\n", capture_output=True, text=True,
                         cwd=ROOT, timeout=300)
    assert res.returncode == 2 and "missing" in res.stderr, res.stderr[-2000:]
