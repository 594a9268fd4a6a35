"""Reward models: load one, read its scalar at the last valid token, evaluate it, calibrate it.

A reward model here is a Hugging Face `AutoModelForSequenceClassification` with `num_labels=1`
(the head `score` is a bias-free linear map, hidden size H -> 1), saved either as full weights or
as a PEFT adapter (task_type SEQ_CLS, `score` in `modules_to_save`) that names its base, with
`reward_calibration.json` beside it:

    {"offset": b, "scale": s, "num_demonstrations": n, "base_model": ..., ...}

The raw reward r(x, y) is the head's output at the last valid token of build_sequence(x, y),
which is the EOS that ends the response (reward_data.build_sequence). The calibrated reward is
r(x, y) - b, with b the mean raw reward of SFT demonstrations, so a demonstration scores about 0
(InstructGPT section 3.5; "N+ implementation details" detail 15, arXiv:2403.17031). HF heads have
no bias, so b lives in the JSON sidecar rather than in the weights.

The last valid token is found from the attention mask, not from pad ids, and position ids are
the cumulative sum of the mask, so a left-padded batch scores exactly like a right-padded one
(brief pitfalls P3, P4; TRL #2778).

    model, tokenizer, offset = load_reward_model("runs/reward-lora/model")
    score_texts(model, tokenizer, prompts, responses, offset)      # calibrated rewards
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import torch

from llmkit.errors import ConfigError, LlmkitError
from llmkit.models.loading import distinct_pad_token
from llmkit.rlhf.reward_data import Comparison, Prompt, build_sequence, check_special_tokens

CALIBRATION_FILE = "reward_calibration.json"


# ----------------------------------------------------------------------------- loading


def _is_reward_checkpoint(path: str, **kwargs) -> bool:
    """A checkpoint that already holds a one-output sequence-classification head (an RM to continue)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(path, **kwargs)
    archs = getattr(config, "architectures", None) or []
    return any(a.endswith("ForSequenceClassification") for a in archs) and getattr(config, "num_labels", None) == 1


def init_head(model) -> None:
    """Fresh head ~ N(0, 1/sqrt(H + 1)) (N+ detail 11; the HF default is N(0, initializer_range))."""
    head = reward_head(model)
    with torch.no_grad():
        head.weight.normal_(0.0, 1.0 / math.sqrt(head.in_features + 1))


def load_sequence_classifier(cfg, **extra):
    """A reward model to train, from `cfg.name`: a causal LM (short name, directory or hub id; a new
    head is added), an SFT run's LoRA adapter directory (merged into its base first), or a reward
    model to continue (its head is kept). `cfg` has name, revision, trust_remote_code and dtype."""
    from transformers import AutoModelForSequenceClassification
    from trl.trainer.reward_trainer import suppress_seqcls_warning

    from llmkit.models.loading import _load_kwargs, local_only, unpickled

    source, adapter = resolve_start(cfg)
    kwargs = {**_load_kwargs(cfg), "local_files_only": local_only(source), **extra}
    fresh = not _is_reward_checkpoint(source, trust_remote_code=cfg.trust_remote_code,
                                      local_files_only=kwargs["local_files_only"])
    with suppress_seqcls_warning(), unpickled(source):  # "score.weight newly initialised", "lm_head unused": both expected
        model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=1, **kwargs)
    if adapter is not None:
        model = _merge_adapter(model, adapter)
    if fresh:
        init_head(model)
    return model


def resolve_start(cfg) -> tuple[str, Path | None]:
    """-> (what from_pretrained loads, the SFT adapter directory to merge or None) for `cfg.name`."""
    from llmkit.models.loading import resolve_model
    from llmkit.models.trained import _base_name, adapter_info

    path = Path(cfg.name)
    info = adapter_info(path) if path.is_dir() else None
    if info is None:
        return resolve_model(cfg.name, cfg.revision), None
    return resolve_model(_base_name(info, path)), path


def _merge_adapter(model, path: Path):
    """Fold an SFT LoRA adapter (saved for a causal LM) into the weights of a sequence classifier:
    both share the trunk's module names (`model.layers.N...`), so the adapter applies as is."""
    from peft import PeftConfig, PeftModel

    from llmkit.models.trained import adapter_info

    info = adapter_info(path)
    if info.get("peft_type") != "LORA":
        kind = info.get("llmkit_method") or info.get("peft_type")
        raise LlmkitError(f"{path}: a reward model can start from a full model or a LoRA adapter, not a {kind} "
                          f"adapter; train the SFT model with method=full or method=lora")
    config = PeftConfig.from_pretrained(str(path))
    config.task_type = None  # a plain PeftModel: the causal-LM wrapper expects generation methods
    return PeftModel.from_pretrained(model, str(path), config=config).merge_and_unload()


def reward_head(model):
    """The `score` linear layer (for a PEFT model, the wrapper whose active copy trains)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = getattr(base, "score", None)
    if head is None:
        raise ConfigError(f"{type(base).__name__} has no `score` head; a reward model needs a decoder whose "
                          f"sequence-classification class pools the last token (Llama, GPT-2, Qwen, ...)")
    return head


def train_head(model) -> None:
    """Make the reward head train under any method. A PEFT model gets `score` in `modules_to_save`
    and task_type SEQ_CLS, so the head trains and is saved with the adapter; otherwise the
    randomly initialised head would stay frozen (brief P11; peft `PeftModelForSequenceClassification`)."""
    if type(getattr(reward_head(model), "base_layer", reward_head(model))) is not torch.nn.Linear:
        raise ConfigError(f"the reward head is a {type(reward_head(model)).__name__}, not a plain linear layer "
                          f"(was it quantised?); it must train in full precision")
    config = getattr(model, "peft_config", None)
    if not config:
        reward_head(model).requires_grad_(True)
        return
    from peft.utils.other import set_additional_trainable_modules

    name = model.active_adapter
    pcfg = config[name]
    if pcfg.is_prompt_learning:
        raise ConfigError(f"a {pcfg.peft_type.value} reward model is not supported: the reward is read from the "
                          f"backbone's own tokens; use method=full or method=lora")
    if "score" not in (pcfg.modules_to_save or []):
        base = model.get_base_model()
        if hasattr(base.score, "get_base_layer"):
            # `all-linear` under a task type other than SEQ_CLS also put LoRA on the head: a low-rank
            # update of a random, frozen, unsaved head. Take it off; the whole head trains instead.
            base.score = base.score.get_base_layer()
            if isinstance(pcfg.target_modules, (set, list)):
                pcfg.target_modules = type(pcfg.target_modules)(m for m in pcfg.target_modules if m != "score")
        pcfg.modules_to_save = [*(pcfg.modules_to_save or []), "score"]
        set_additional_trainable_modules(model, pcfg, model.config, name)
    pcfg.task_type = "SEQ_CLS"  # written to adapter_config.json: PEFT reloads it as a reward model


def load_reward_model(path: str | Path, *, device: str | None = None):
    """-> (model in eval mode, tokenizer, calibration offset) from a saved reward model directory.

    Full weights load directly; a PEFT adapter loads onto its base, named by the calibration file
    (the name the recipe was given) or else by adapter_config.json. No calibration file: offset 0.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from llmkit.models.trained import adapter_info

    path = Path(path)
    if not path.is_dir():
        raise LlmkitError(f"reward model directory not found: {path}")
    calib_file = path / CALIBRATION_FILE
    calib = json.loads(calib_file.read_text()) if calib_file.is_file() else {}
    info = adapter_info(path)
    if info is None:
        from llmkit.models.loading import unpickled

        with unpickled(path):
            model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
    else:
        from types import SimpleNamespace

        from peft import PeftModel

        base_name = calib.get("base_model") or info.get("base_model_name_or_path")
        if not base_name:
            raise LlmkitError(f"{path}: the adapter does not name its base model")
        base = load_sequence_classifier(SimpleNamespace(name=base_name, revision=None, trust_remote_code=False,
                                                        dtype="float32"))
        model = PeftModel.from_pretrained(base, str(path))
    tokenizer = AutoTokenizer.from_pretrained(path)
    distinct_pad_token(tokenizer)  # a reward model from elsewhere may pad with its EOS
    check_special_tokens(tokenizer)
    model.config.pad_token_id = tokenizer.pad_token_id
    if device:
        model.to(device)
    return model.eval(), tokenizer, float(calib.get("offset", 0.0))


def save_calibration(out_dir: str | Path, calibration: dict) -> Path:
    path = Path(out_dir) / CALIBRATION_FILE
    path.write_text(json.dumps(calibration, indent=2) + "\n")
    return path


# ----------------------------------------------------------------------------- scoring


def token_values(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, T) head outputs at every position. Positions count valid tokens only, so left padding
    does not shift them."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    trunk = getattr(base, base.base_model_prefix)
    position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)  # (B, T)
    hidden = trunk(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                   use_cache=False).last_hidden_state  # (B, T, H)
    return reward_head(model)(hidden).squeeze(-1).float()  # (B, T)


def last_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B,) index of the last position whose mask is 1, for left or right padding."""
    positions = torch.arange(attention_mask.shape[-1], device=attention_mask.device)
    return (positions * attention_mask.long()).argmax(-1)


def score(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """(B,) raw rewards: the head's output at each row's last valid token."""
    values = token_values(model, input_ids, attention_mask)  # (B, T)
    return values.gather(1, last_index(attention_mask)[:, None]).squeeze(1)


def pad_batch(seqs: Sequence[Sequence[int]], pad_id: int, side: str = "right") -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention mask), both (B, T_max)."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        span = slice(width - len(s), width) if side == "left" else slice(0, len(s))
        ids[i, span] = torch.tensor(list(s), dtype=torch.long)
        mask[i, span] = 1
    return ids, mask


@torch.no_grad()
def score_sequences(model, seqs: Sequence[Sequence[int]], pad_id: int, batch_size: int = 32) -> list[float]:
    """Raw rewards of token sequences, in their order (batched by length to pad little)."""
    model.eval()
    device = next(model.parameters()).device
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    out = [0.0] * len(seqs)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        ids, mask = pad_batch([seqs[i] for i in idx], pad_id)
        for i, r in zip(idx, score(model, ids.to(device), mask.to(device)).tolist()):
            out[i] = r
    return out


def score_texts(model, tokenizer, prompts: Sequence[Prompt], responses: Sequence[str | Sequence[int]],
                offset: float = 0.0, batch_size: int = 32) -> list[float]:
    """Calibrated rewards r(x, y) - offset of (prompt, response) pairs, built by build_sequence."""
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    seqs = [build_sequence(tokenizer, p, r) for p, r in zip(prompts, responses)]
    return [r - offset for r in score_sequences(model, seqs, tokenizer.pad_token_id, batch_size)]


def calibrate(model, tokenizer, prompts: Sequence[Prompt], responses: Sequence[str], batch_size: int = 32) -> dict:
    """Offset (mean) and scale (standard deviation) of the raw rewards of demonstrations."""
    raw = score_texts(model, tokenizer, prompts, responses, 0.0, batch_size)
    mean = sum(raw) / len(raw)
    std = math.sqrt(sum((r - mean) ** 2 for r in raw) / len(raw))
    return {"offset": mean, "scale": std, "num_demonstrations": len(raw)}


# ----------------------------------------------------------------------------- evaluation


def pairwise_metrics(chosen: Sequence[float], rejected: Sequence[float]) -> dict:
    """Exact figures over all pairs (not a mean of batch means, as TRL logs):
    pairwise_accuracy = P[r+ > r-], a tie counting 1/2 (so a constant scorer gets 0.5);
    mean_margin = mean(r+ - r-); log_loss = mean(-log sigmoid(r+ - r-)) (the Bradley-Terry loss)."""
    if not chosen or len(chosen) != len(rejected):
        raise ValueError("pairwise_metrics needs equally many chosen and rejected scores, at least one")
    diffs = torch.tensor(chosen, dtype=torch.float64) - torch.tensor(rejected, dtype=torch.float64)
    acc = ((diffs > 0).double() + 0.5 * (diffs == 0).double()).mean()
    return {"pairwise_accuracy": acc.item(), "mean_margin": diffs.mean().item(),
            "log_loss": torch.nn.functional.softplus(-diffs).mean().item(), "ties": int((diffs == 0).sum())}


def score_comparisons(model, tokenizer, records: list[Comparison], max_length: int,
                      batch_size: int = 32) -> list[list[float] | None]:
    """Raw reward of every response of every record (None for a record with a response longer
    than max_length, which training would have dropped too). Each sequence is scored once."""
    seqs, where = [], []
    for k, c in enumerate(records):
        ids = [build_sequence(tokenizer, c.prompt, r) for r in c.responses]
        if max(len(s) for s in ids) <= max_length:
            where.append(k)
            seqs += ids
    flat = score_sequences(model, seqs, tokenizer.pad_token_id, batch_size)
    out: list[list[float] | None] = [None] * len(records)
    pos = 0
    for k in where:
        n = len(records[k].responses)
        out[k], pos = flat[pos:pos + n], pos + n
    return out


def evaluate_comparisons(model, tokenizer, records: list[Comparison], max_length: int,
                         batch_size: int = 32) -> tuple[dict, list[list[float] | None]]:
    """-> (metrics over all held-out pairs, per-record raw scores). Metrics: pairwise_accuracy,
    mean_margin, log_loss, ties, num_pairs, skipped_records, accuracy_by_task (records with a `task`) and
    accuracy_by_rank_pair ("1>2": the best response against the second, ...; pairwise data is all "1>2")."""
    scores = score_comparisons(model, tokenizer, records, max_length, batch_size)
    chosen, rejected, tasks, ranks = [], [], [], []
    for c, s in zip(records, scores):
        if s is None:
            continue
        for better, worse, _ in c.pairs:
            chosen.append(s[better])
            rejected.append(s[worse])
            tasks.append(c.task)
            ranks.append(f"{better + 1}>{worse + 1}")
    if not chosen:
        raise LlmkitError(f"no held-out pair fits in model.max_length={max_length}")
    metrics = {**pairwise_metrics(chosen, rejected), "num_pairs": len(chosen),
               "skipped_records": sum(s is None for s in scores)}
    for name, keys in (("accuracy_by_task", tasks), ("accuracy_by_rank_pair", ranks)):
        groups = {}
        for i, key in enumerate(keys):
            if key is not None:
                groups.setdefault(key, []).append(i)
        if groups:
            metrics[name] = {key: pairwise_metrics([chosen[i] for i in idx], [rejected[i] for i in idx])["pairwise_accuracy"]
                             for key, idx in sorted(groups.items())}
    return metrics, scores
