"""`llmkit chat MODEL`: talk to a base model, an adapter directory or a merged model in the terminal.

    llmkit chat runs/sft-lora/model --system "Answer in one sentence."

Each reply streams as it is generated (transformers' `TextStreamer`) and the whole conversation goes
through the model's chat template every turn, so the model sees the earlier turns. A model without a
template (a base or tiny model) gets llmkit's plain one, as `llmkit sample` and SFT use. When the
conversation outgrows the model's context, the oldest turns are dropped and a line on stderr says so.

Lines that start with `/` are commands: /reset (forget the conversation), /system TEXT (a new system
prompt; also forgets), /exit. End of input (Ctrl-D, or the end of a piped file) ends the chat too, so
`llmkit chat MODEL < questions.txt` answers one question per line, each seeing the ones before.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import TextIO

import torch
from transformers import TextStreamer

from llmkit.errors import ConfigError

HELP = "commands: /reset  /system TEXT  /exit   (Ctrl-D ends the chat too)"


def check_arguments(*, max_new_tokens: int, temperature: float) -> None:
    """Checked before the model loads, so a typo costs no loading time."""
    if max_new_tokens < 1:
        raise ConfigError(f"--max-new-tokens must be >= 1, got {max_new_tokens}")
    if not math.isfinite(temperature) or temperature < 0:
        raise ConfigError(f"--temperature must be a finite number >= 0 (0: greedy decoding), got {temperature}")


@dataclass
class Conversation:
    """The turns so far; `messages()` is what the chat template renders for the next reply."""

    system: str | None = None
    turns: list[dict] = field(default_factory=list)  # alternating user / assistant messages

    def messages(self, user: str | None = None) -> list[dict]:
        head = [{"role": "system", "content": self.system}] if self.system else []
        tail = [{"role": "user", "content": user}] if user is not None else []
        return head + self.turns + tail

    def reset(self, system: str | None = None) -> None:
        self.turns = []
        if system is not None:
            self.system = system or None


def context_limit(model) -> int | None:
    """The most positions the model takes (None: no fixed limit in its config)."""
    cfg = model.config
    return next((getattr(cfg, k) for k in ("max_position_embeddings", "n_positions") if getattr(cfg, k, None)), None)


def prompt_for(tok, convo: Conversation, user: str, room: int | None) -> tuple[list[int], int]:
    """(token ids of the conversation plus `user`, ready for the reply; how many old turns were dropped).
    Whole user/assistant pairs are dropped from the start until the prompt fits `room` tokens."""
    dropped = 0
    while True:
        ids = tok.apply_chat_template(convo.messages(user), add_generation_prompt=True, tokenize=True,
                                      return_dict=True)["input_ids"]
        if room is None or len(ids) <= room or not convo.turns:
            break
        convo.turns = convo.turns[2:]
        dropped += 1
    if room is not None and len(ids) > room:
        raise ConfigError(f"this message is {len(ids)} tokens with the template; the model takes {room} before "
                          "its reply (lower --max-new-tokens or send a shorter message)")
    return list(ids), dropped


class _Streamer(TextStreamer):
    """TextStreamer that writes to a given stream (the terminal, or a buffer in tests)."""

    def __init__(self, tok, out: TextIO):
        super().__init__(tok, skip_prompt=True, skip_special_tokens=True)
        self.out = out

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        self.out.write(text + ("\n" if stream_end else ""))
        self.out.flush()


def reply(model, tok, ids: list[int], *, max_new_tokens: int, temperature: float, out: TextIO) -> str:
    """Generate one reply to `ids`, streaming its text to `out`; -> the reply's text."""
    x = torch.tensor([ids])
    kw = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
    with torch.no_grad():
        gen = model.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=max_new_tokens,
                             pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                             streamer=_Streamer(tok, out), **kw)
    return tok.decode(gen[0, len(ids):], skip_special_tokens=True).strip()


def chat(model_name: str, *, base: str | None = None, system: str | None = None, max_new_tokens: int = 256,
         temperature: float = 0.0, stdin: TextIO | None = None, stdout: TextIO | None = None,
         stderr: TextIO | None = None) -> list[dict]:
    """Run the chat loop until /exit or end of input; -> the conversation as messages (for tests and logs)."""
    from llmkit.models.loading import set_chat_template
    from llmkit.models.trained import load_causal

    stdin, stdout, stderr = stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr
    check_arguments(max_new_tokens=max_new_tokens, temperature=temperature)
    model, tok = load_causal(model_name, base=base)
    template = set_chat_template(tok)
    limit = context_limit(model)
    room = None if limit is None else limit - max_new_tokens
    if room is not None and room < 1:
        raise ConfigError(f"--max-new-tokens {max_new_tokens} leaves no room for a prompt: the model takes {limit} tokens")
    convo, log = Conversation(system=system or None), []
    interactive = stdin.isatty()
    if interactive:
        stderr.write(f"llmkit chat: {model_name} (chat template: {template}). {HELP}\n")
    while True:
        if interactive:
            stdout.write("you> ")
            stdout.flush()
        line = stdin.readline()
        if not line:  # end of input
            break
        text = line.strip()
        if not text:
            continue
        if text.startswith("/"):
            command, _, arg = text.partition(" ")
            if command in ("/exit", "/quit"):
                break
            if command == "/reset":
                convo.reset()
                stderr.write("(conversation forgotten)\n")
            elif command == "/system":
                convo.reset(system=arg.strip())
                stderr.write(f"(system prompt {'set' if arg.strip() else 'removed'}; conversation forgotten)\n")
            else:
                stderr.write(f"unknown command {command}; {HELP}\n")
            continue
        try:
            ids, dropped = prompt_for(tok, convo, text, room)
        except ConfigError as e:  # one message too long: say so and keep the chat going
            stderr.write(f"llmkit chat: {e}\n")
            continue
        if dropped:
            stderr.write(f"(the {dropped} oldest exchange{'s' if dropped > 1 else ''} dropped to fit the model's "
                         f"{limit}-token context)\n")
        if interactive:
            stdout.write("model> ")
        answer = reply(model, tok, ids, max_new_tokens=max_new_tokens, temperature=temperature, out=stdout)
        convo.turns += [{"role": "user", "content": text}, {"role": "assistant", "content": answer}]
        log.append({"messages": convo.messages(), "prompt_tokens": len(ids)})
    return log
