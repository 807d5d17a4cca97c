"""Fluency of a text as the embedded model sees it: the mean per-token log-likelihood.

The context-blind audit (``persrm_gen.dataset.blind_audit``) uses it as one more
response-only cue: if the chosen response is reliably the more (or less) fluent one, a
reward model can learn fluency instead of the author's style. Scoring runs one forward
pass per text (no generation), in length-sorted batches, on the embedded Gemma 3 270M
(or any local causal LM folder). It costs about a second per few texts on a CPU, so it
is opt-in (``persrm-gen stats --fluency``, ``benchmarks/quality.py --fluency``) and never
part of a build or of the tests' fast path.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


class FluencyScorer:
    """``scorer(text) -> (mean log-likelihood per token,)``; scores are cached per text."""

    names = ("fluency",)  # the feature's name in the audit's weights

    def __init__(self, model: str | None = None, *, batch_size: int = 8, max_tokens: int = 512, device: str = "cpu"):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from persrm_gen.llm.transports.local_model import resolve_model

        folder, _ = resolve_model(model)
        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(Path(folder))
        self.tokenizer.padding_side = "right"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(Path(folder), dtype=torch.float32).to(device).eval()
        self.device = device
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self._scores: dict[str, float] = {}

    def prime(self, texts: Iterable[str]) -> None:
        """Score every text not scored yet, in batches of similar length."""
        todo = sorted({t for t in texts if t not in self._scores}, key=len)
        for i in range(0, len(todo), self.batch_size):
            batch = todo[i : i + self.batch_size]
            for text, score in zip(batch, self._score_batch(batch)):
                self._scores[text] = score

    def _score_batch(self, texts: list[str]) -> list[float]:
        torch = self._torch
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=self.max_tokens)
        ids, mask = enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device)
        with torch.inference_mode():
            logits = self.model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        logp = torch.log_softmax(logits, dim=-1).gather(-1, ids[:, 1:, None])[..., 0]
        m = mask[:, 1:].float()
        return ((logp * m).sum(1) / m.sum(1).clamp(min=1)).tolist()

    def __call__(self, text: str) -> tuple[float]:
        if text not in self._scores:
            self.prime([text])
        return (self._scores[text],)
