"""`llmkit sample`: try a finetuned model. Batch generation from a prompts file to JSONL, with a base
model, a base + adapter directory, or a merged model; chat prompts go through the chat template."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from tqdm.auto import tqdm

from llmkit.errors import ConfigError, DataError


def read_prompts(path: str | Path) -> list:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"prompts file not found: {path}")
    if path.suffix == ".txt":
        return [line for line in path.read_text().splitlines() if line.strip()]
    prompts = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: line {i}: not valid JSON ({e.msg})") from None
        if isinstance(row, dict) and isinstance(row.get("messages"), list):
            msgs = row["messages"]
            prompts.append(msgs[:-1] if msgs and msgs[-1].get("role") == "assistant" else msgs)
        elif isinstance(row, dict) and isinstance(row.get("prompt"), (str, list)):
            prompts.append(row["prompt"])
        else:
            raise DataError(f"{path}: line {i}: needs a `prompt` (string or messages) or `messages`")
    if not prompts:
        raise DataError(f"{path}: no prompts")
    return prompts


def check_arguments(prompts_file, output, *, max_new_tokens: int, batch_size: int, temperature: float,
                    overwrite: bool = False) -> None:
    """Every argument checked before the model loads, so a mistake costs no generation."""
    for flag, v in (("--max-new-tokens", max_new_tokens), ("--batch-size", batch_size)):
        if v < 1:
            raise ConfigError(f"{flag} must be >= 1, got {v}")
    if not math.isfinite(temperature) or temperature < 0:
        raise ConfigError(f"--temperature must be a finite number >= 0 (0: greedy decoding), got {temperature}")
    out = Path(output)
    if out.is_dir():
        raise ConfigError(f"--output {out} is a directory; give the path of a .jsonl file to write")
    if out.exists() and out.resolve() == Path(prompts_file).resolve():
        raise ConfigError(f"--output {out} is the prompts file; choose another path")
    if out.exists() and not overwrite:
        raise ConfigError(f"--output {out} already exists; choose another path or pass --overwrite")


def prompt_ids(tok, prompts: list, raw: bool = False) -> list[list[int]]:
    """Token ids of each prompt. Messages go through the chat template. A text prompt does too, as one
    user turn, when the model has a chat template of its own (an instruct model answers a bare string as
    text to continue: SmolLM2-Instruct gave "The word toy starts with c" where the templated prompt gives
    the answer) and `raw` is off; a model without one (a base model) continues the text as it is."""
    from llmkit.models.loading import set_chat_template

    chat = bool(getattr(tok, "chat_template", None)) and not raw
    set_chat_template(tok)  # llmkit's plain template for messages when the model has none
    return [tok.apply_chat_template(p if isinstance(p, list) else [{"role": "user", "content": p}],
                                    add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
            if isinstance(p, list) or chat else tok(p)["input_ids"] for p in prompts]


def sample(model_name: str, prompts_file: str, output: str, *, base: str | None = None, max_new_tokens: int = 64,
           batch_size: int = 16, temperature: float = 0.0, overwrite: bool = False, raw: bool = False) -> int:
    from llmkit.models.trained import load_causal

    check_arguments(prompts_file, output, max_new_tokens=max_new_tokens, batch_size=batch_size,
                    temperature=temperature, overwrite=overwrite)
    prompts = read_prompts(prompts_file)
    model, tok = load_causal(model_name, base=base)
    ids = prompt_ids(tok, prompts, raw)
    outs = []
    with torch.no_grad():
        for i in tqdm(range(0, len(ids), batch_size), desc="sample"):
            chunk = ids[i:i + batch_size]
            width = max(map(len, chunk))
            x = torch.full((len(chunk), width), tok.pad_token_id)
            mask = torch.zeros_like(x)
            for j, p in enumerate(chunk):  # left padding
                x[j, width - len(p):], mask[j, width - len(p):] = torch.tensor(p), 1
            kw = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
            gen = model.generate(input_ids=x, attention_mask=mask, max_new_tokens=max_new_tokens,
                                 pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, **kw)
            outs += tok.batch_decode(gen[:, width:], skip_special_tokens=True)
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    with open(output, "w") as fh:
        for p, o in zip(prompts, outs):
            fh.write(json.dumps({"prompt": p, "output": o}) + "\n")
    return len(outs)
