"""Load a causal LM and its tokenizer by hub name or local path, and build tiny offline Phi-3s for tests.

Every model, real or tiny, goes through the same ``from_pretrained`` calls, so what the tests prove on a tiny
Phi-3 is the code path that loads ``microsoft/Phi-3-mini-4k-instruct`` on a GPU.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    BitsAndBytesConfig,
    Phi3Config,
    Phi3ForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from lit_transfer.finetune import warm
from lit_transfer.resources import looks_like_path

Quantization = Literal["none", "nf4"]

# Phi-3's own chat template: the tiny tokenizers carry it so tests exercise the chat-template prompt path.
PHI3_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ '<|system|>\n' + message['content'] + '<|end|>\n' }}"
    "{% elif message['role'] == 'user' %}{{ '<|user|>\n' + message['content'] + '<|end|>\n' }}"
    "{% elif message['role'] == 'assistant' %}{{ '<|assistant|>\n' + message['content'] + '<|end|>\n' }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)
SPECIAL_TOKENS = [
    "<unk>",
    "<s>",
    "<|endoftext|>",
    "<|pad|>",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|end|>",
]


def _dtype(name: str) -> torch.dtype | str:
    if name == "auto":
        return "auto"
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"unknown dtype {name!r}; use auto, float32, bfloat16 or float16")
    return dtype


def load_tokenizer(name_or_path: str) -> PreTrainedTokenizerBase:
    """Load a tokenizer (once per process) and make sure it can pad (decoder-only tokenizers often cannot)."""
    return warm.tokenizer(("tokenizer", str(name_or_path)), lambda: _load_tokenizer(name_or_path))


class ModelNotFoundError(ValueError):
    """A model name that is neither a local folder nor available from the hub."""


def check_model(name_or_path: str) -> None:
    """Fail early, naming the model, when a local path is missing or a hub id cannot be resolved offline."""
    path = Path(str(name_or_path)).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelNotFoundError(f"{path}: a folder without config.json, not a saved model")
        return
    name = str(name_or_path)
    if path.exists() or looks_like_path(name):
        raise ModelNotFoundError(f"{name}: no such model folder")


def _from_pretrained(load, name_or_path: str, **kwargs):
    check_model(name_or_path)
    try:
        return load(name_or_path, **kwargs)
    except OSError as err:  # transformers reports a missing hub repo or an offline cache miss as OSError
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelNotFoundError(
            f"{name_or_path}: not a local model folder, and not loadable from the hub ({first})"
        ) from None


def _load_tokenizer(name_or_path: str) -> PreTrainedTokenizerBase:
    tokenizer = _from_pretrained(AutoTokenizer.from_pretrained, name_or_path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token if tokenizer.eos_token is not None else tokenizer.unk_token
    return tokenizer


def load_causal_lm(
    name_or_path: str,
    quantization: Quantization = "none",
    dtype: str = "float32",
    attn_implementation: str = "sdpa",
) -> PreTrainedModel:
    """Load a causal LM; with ``quantization="nf4"`` the base weights are 4-bit NF4 (QLoRA) via bitsandbytes.

    Unquantized models are read from disk once per process and copied for each run (``warm``); NF4 weights are
    loaded each time, as bitsandbytes' quantized tensors are not meant to be deep-copied."""
    if quantization == "none":
        key = ("model", str(name_or_path), dtype, attn_implementation)
        return warm.model(key, lambda: _load_causal_lm(name_or_path, quantization, dtype, attn_implementation))
    return _load_causal_lm(name_or_path, quantization, dtype, attn_implementation)


def _load_causal_lm(
    name_or_path: str, quantization: Quantization, dtype: str, attn_implementation: str
) -> PreTrainedModel:
    kwargs: dict = {"dtype": _dtype(dtype), "attn_implementation": attn_implementation}
    if quantization == "nf4":
        compute = _dtype(dtype)
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.float32 if compute == "auto" else compute,
        )
    elif quantization != "none":
        raise ValueError(f"unknown quantization {quantization!r}; use 'none' or 'nf4'")
    model = _from_pretrained(AutoModelForCausalLM.from_pretrained, name_or_path, **kwargs)
    model.config.use_cache = False  # training never reuses a KV cache; keeping it wastes memory
    return model


def train_tokenizer(texts: Iterable[str], vocab_size: int = 512, chat_template: bool = True) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer in memory, with Phi-3's special tokens (and chat template)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="<|endoftext|>",
        pad_token="<|pad|>",
        additional_special_tokens=SPECIAL_TOKENS[4:],
    )
    if chat_template:
        tokenizer.chat_template = PHI3_CHAT_TEMPLATE
    return tokenizer


def tiny_phi3_config(
    tokenizer: PreTrainedTokenizerBase,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    intermediate_size: int | None = None,
    max_position_embeddings: int = 512,
) -> Phi3Config:
    """A Phi-3-architecture config sized for CPU, with special-token ids taken from ``tokenizer``."""
    return Phi3Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 4 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=max_position_embeddings,
        original_max_position_embeddings=max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )


def build_tiny_phi3(
    out_dir: str | Path,
    texts: Iterable[str],
    vocab_size: int = 512,
    chat_template: bool = True,
    seed: int = 0,
    **config_kwargs,
) -> Path:
    """Write a random tiny Phi-3 and its tokenizer with ``save_pretrained``; load them back by path."""
    out_dir = Path(out_dir)
    tokenizer = train_tokenizer(texts, vocab_size=vocab_size, chat_template=chat_template)
    torch.manual_seed(seed)
    model = Phi3ForCausalLM(tiny_phi3_config(tokenizer, **config_kwargs))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
