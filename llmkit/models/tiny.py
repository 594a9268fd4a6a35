"""Tiny random-init models (BERT, GPT-2, Llama) with a byte-level BPE tokenizer trained in a second.

Used by the tests and for smoke runs of any recipe: `model.name=tiny-bert` (or tiny-gpt2,
tiny-llama). The first use builds the model into llmkit's cache (`$LLMKIT_CACHE/models/`); later
uses load it from there like any local Hugging Face directory. Building is deterministic.

    python -c "from llmkit.models.tiny import build_tiny; print(build_tiny('llama', 'out/tiny'))"
"""

from __future__ import annotations

from pathlib import Path

ARCHS = ("bert", "gpt2", "llama")

# Sizes small enough that a forward/backward takes milliseconds on one CPU core. Every linear
# layer's input width is a multiple of 64, so bitsandbytes' CPU 4-bit kernels (64-wide blocks) work.
HIDDEN, LAYERS, HEADS, KV_HEADS, FFN, POSITIONS, VOCAB = 64, 2, 4, 2, 128, 1024, 512
BUILD = f"h{HIDDEN}-l{LAYERS}-f{FFN}-v{VOCAB}-p{POSITIONS}-2"  # part of the cache path: a change rebuilds

# A small English corpus for the tokenizer, so common words become single tokens. Byte-level BPE
# still encodes any text (every byte is in the base alphabet), so nothing maps to <unk>.
_CORPUS = """
The quick brown fox jumps over the lazy dog. A model learns from data, and data comes in many forms.
Please write a short answer to the question below. What is the capital of France? Paris is the capital.
I loved this product, it works great and the battery lasts all day. The service was slow and the food was cold.
The hotel room was clean but the staff were rude. This book is a wonderful story about friendship and courage.
Translate the sentence into French. Summarize the paragraph in one sentence. Classify the sentiment as positive or negative.
Instruction: list three fruits. Response: apple, banana, cherry. Give the answer as a number between 0 and 100.
Numbers: 0 1 2 3 4 5 6 7 8 9 10 11 12 20 50 100 1000. Words: good bad great terrible fine okay excellent poor.
Once upon a time there was a small village near the sea where people fished and told stories in the evening.
""".strip()


def train_tokenizer(arch: str, texts: list[str] | None = None, vocab_size: int = VOCAB):
    """A byte-level BPE `PreTrainedTokenizerFast` with the special tokens the architecture expects."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if arch == "bert":
        specials = {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]",
                    "sep_token": "[SEP]", "mask_token": "[MASK]"}
    else:
        specials = {"pad_token": "<pad>", "unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>"}
    tok = Tokenizer(models.BPE(unk_token=specials["unk_token"]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=list(specials.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    corpus = (texts or []) + _CORPUS.splitlines() * 4
    tok.train_from_iterator(corpus, trainer=trainer)
    if arch == "bert":
        cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
            special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
        )
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=POSITIONS, **specials)
    if arch != "bert":
        fast.padding_side = "right"
    return fast


def tiny_config(arch: str, tokenizer):
    from transformers import BertConfig, GPT2Config, LlamaConfig

    vocab = len(tokenizer)
    if arch == "bert":
        return BertConfig(vocab_size=vocab, hidden_size=HIDDEN, num_hidden_layers=LAYERS,
                          num_attention_heads=HEADS, intermediate_size=FFN,
                          max_position_embeddings=POSITIONS, pad_token_id=tokenizer.pad_token_id)
    if arch == "gpt2":
        return GPT2Config(vocab_size=vocab, n_embd=HIDDEN, n_layer=LAYERS, n_head=HEADS,
                          n_inner=FFN, n_positions=POSITIONS, bos_token_id=tokenizer.bos_token_id,
                          eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    if arch == "llama":
        return LlamaConfig(vocab_size=vocab, hidden_size=HIDDEN, intermediate_size=FFN,
                           num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                           num_key_value_heads=KV_HEADS, max_position_embeddings=POSITIONS,
                           bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                           pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)
    raise ValueError(f"unknown tiny architecture {arch!r}; choose one of {', '.join(ARCHS)}")


def build_tiny(arch: str, out_dir: str | Path, *, seed: int = 0, texts: list[str] | None = None) -> Path:
    """Build a random-init tiny model + tokenizer and save both to `out_dir` (safetensors)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

    tokenizer = train_tokenizer(arch, texts)
    config = tiny_config(arch, tokenizer)
    torch.manual_seed(seed)
    auto = AutoModelForMaskedLM if arch == "bert" else AutoModelForCausalLM
    model = auto.from_config(config)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    if arch == "bert":
        _add_pooler(out_dir / "model.safetensors", config, seed)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def _add_pooler(weights, config, seed: int) -> None:
    """Real BERT checkpoints carry the pretrained pooler (dense + tanh over [CLS]) that
    BertForSequenceClassification and `pooling: pooler` use; a masked-LM model saves none, so every
    load would draw a new random one. Drawn here once, with BERT's init (N(0, 0.02), zero bias)."""
    import torch
    from safetensors.torch import load_file, save_file

    state = load_file(str(weights))
    g = torch.Generator().manual_seed(seed + 1)
    state["bert.pooler.dense.weight"] = torch.randn(config.hidden_size, config.hidden_size, generator=g) * config.initializer_range
    state["bert.pooler.dense.bias"] = torch.zeros(config.hidden_size)
    save_file(state, str(weights), metadata={"format": "pt"})


def tiny_model_path(name: str) -> Path:
    """`tiny-bert` / `tiny-gpt2` / `tiny-llama` -> a cached directory, built on first use."""
    from llmkit.hub import build_once, cache_dir

    arch = name.removeprefix("tiny-")
    if arch not in ARCHS:
        raise ValueError(f"unknown tiny model {name!r}; choose one of {', '.join('tiny-' + a for a in ARCHS)}")
    return build_once(cache_dir() / "models" / f"{name}-{BUILD}", lambda tmp: build_tiny(arch, tmp))
