"""A tiny Gemma 3 model built offline, for smoke tests and throughput checks.

``build_tiny_model`` trains a word-level tokenizer on the given texts (no Hub access)
and saves a randomly initialised Gemma 3 causal LM beside it, so the trainers can be
exercised end to end in seconds on a CPU. ``gemma3_270m_config`` is the real Gemma 3
270M shape, for benchmarks that need the true cost without downloading weights.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

SPECIAL_TOKENS = ["<pad>", "<bos>", "<eos>", "<unk>"]


# The judge's tags as single tokens, so a model of a few thousand parameters can learn the format.
TAG_TOKENS = ["<think>", "</think>", "<answer>", "</answer>"]


def train_tokenizer(texts: Iterable[str], vocab_size: int = 2000):
    """A whitespace+punctuation word-level tokenizer wrapped for transformers (no chat template)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    # Split on whitespace but keep it as tokens, so decode(encode(x)) == x for the answer tags.
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"\s+|[<>/()\[\].,!?;:#]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.train_from_iterator(list(texts), trainers.WordLevelTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS))
    tok.add_tokens(TAG_TOKENS)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>", unk_token="<unk>"
    )


def gemma3_270m_config(vocab_size: int = 262144, **overrides):
    """The Gemma 3 270M architecture (18 layers, width 640, 1 KV head, 5:1 local/global)."""
    from transformers import Gemma3TextConfig

    layers = overrides.pop("num_hidden_layers", 18)
    shape = dict(
        vocab_size=vocab_size,
        hidden_size=640,
        intermediate_size=2048,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=256,
        sliding_window=512,
        max_position_embeddings=32768,
        query_pre_attn_scalar=256,
        layer_types=["full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(layers)],
    )
    shape.update(overrides)
    return Gemma3TextConfig(**shape)


def build_tiny_model(folder: str | Path, texts: Iterable[str], *, hidden: int = 64, layers: int = 2, seed: int = 0):
    """Save a tiny random Gemma 3 model and its freshly trained tokenizer into ``folder``."""
    import torch
    from transformers import Gemma3ForCausalLM

    folder = Path(folder)
    tokenizer = train_tokenizer(texts)
    config = gemma3_270m_config(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=hidden // 2,
        query_pre_attn_scalar=hidden // 2,
        sliding_window=128,
        max_position_embeddings=4096,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    model = Gemma3ForCausalLM(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
