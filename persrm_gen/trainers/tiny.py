"""Small random models built offline, for tests, smoke runs and throughput checks.

``build_random_model`` is the one builder: it trains a word-level tokenizer on the given
texts (no Hub access) and saves a randomly initialised Gemma 3 causal LM beside it, tiny by
default (the trainers run end to end in seconds on a CPU, the local backend answers in
milliseconds) or in the real Gemma 3 270M shape (``gemma3_270m_config``) for benchmarks
that need the true cost without downloading weights. ``can_end=False`` gives a model that
can never emit its end token, so every generation runs to its token limit unless a stop
rule ends it: what the local backend's batching and stop tests need.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

SPECIAL_TOKENS = ["<pad>", "<bos>", "<eos>", "<unk>"]


# The judge's tags as single tokens, so a model of a few thousand parameters can learn the format.
TAG_TOKENS = ["<think>", "</think>", "<answer>", "</answer>"]


def train_tokenizer(texts: Iterable[str], vocab_size: int = 2000, *, subwords: bool = False):
    """A tokenizer trained on ``texts``, wrapped for transformers (no chat template).

    Word-level by default: whitespace and punctuation are tokens of their own, so
    decode(encode(x)) == x for the answer tags, as the trainers' rows need. ``subwords``
    gives a BPE tokenizer whose tokens carry their leading space (Metaspace), so what a
    random model writes still comes out as space-separated words, as a build's validators
    need (word-level tokens drawn at random fuse into one long word).
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    texts = list(texts)
    if subwords:
        tok = Tokenizer(models.BPE(unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS))
    else:
        tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"\s+|[<>/()\[\].,!?;:#]"), behavior="isolated")
        tok.decoder = decoders.Fuse()
        tok.train_from_iterator(texts, trainers.WordLevelTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS))
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


# The tiny shape: two layers of width 64, a few thousand parameters besides the embeddings.
TINY_SHAPE = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                  num_key_value_heads=1, head_dim=32, query_pre_attn_scalar=32, sliding_window=128,
                  max_position_embeddings=4096)  # fmt: skip


def build_random_model(folder: str | Path, texts: Iterable[str], *, tokenizer_size: int = 2000, subwords: bool = False,
                       full_size: bool = False, can_end: bool = True, seed: int = 0, dtype: str = "float32", **config) -> Path:
    """Save a random Gemma 3 model and its freshly trained tokenizer into ``folder``.

    ``config`` overrides the shape (tiny, or Gemma 3 270M with ``full_size``), e.g.
    ``max_position_embeddings``, ``initializer_range`` or ``vocab_size`` (default: the
    tokenizer's, ``tokenizer_size`` words at most plus the special and tag tokens). With ``can_end=False`` the end
    token is added after the model's vocabulary, so the model can never emit it.
    """
    import torch
    from transformers import Gemma3ForCausalLM

    folder = Path(folder)
    tokenizer = train_tokenizer(texts, tokenizer_size, subwords=subwords)
    model_vocab = len(tokenizer)
    if not can_end:
        tokenizer.add_special_tokens({"eos_token": "</s>"})
    ids = dict(pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
               eos_token_id=tokenizer.eos_token_id if can_end else None)  # fmt: skip
    shape = {} if full_size else TINY_SHAPE
    model_config = gemma3_270m_config(**{"vocab_size": model_vocab, **shape, **ids, **config})
    torch.manual_seed(seed)
    model = Gemma3ForCausalLM(model_config).to(getattr(torch, dtype))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
