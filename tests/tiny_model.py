"""A tiny causal LM built offline (2-layer Llama, BPE tokenizer trained on the fly).

Shared by the tests that need a real model folder without downloading anything.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "a proposal to add a new module to the standard library",
    "we the people of the united states in order to form a more perfect union",
    "readability counts and explicit is better than implicit",
    "four score and seven years ago our fathers brought forth on this continent",
    "simple is better than complex and complex is better than complicated",
]


def build_tiny_model(folder: str | Path, *, sentences=SENTENCES, vocab_size: int = 120, seed: int = 0,
                     max_positions: int = 4096) -> Path:
    """Save a random 2-layer Llama and its tokenizer into ``folder``.

    ``</s>`` is added after the model's vocabulary, so the model can never emit it:
    every row runs to max_tokens unless a stop rule ends it.
    """
    folder = Path(folder)
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(sentences, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "<unk>"]))
    n_vocab = tok.get_vocab_size()
    tok.add_special_tokens(["</s>"])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", eos_token="</s>")
    fast.save_pretrained(folder)
    config = LlamaConfig(
        vocab_size=n_vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=max_positions,
        pad_token_id=0, bos_token_id=None, eos_token_id=None,
        initializer_range=0.2,  # peaked logits: near-ties would make greedy tests fragile
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder
