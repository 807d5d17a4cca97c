"""Tokens and cost behind a dataset, counted from the responses it was built from.

Unlike the client's accounting (what this run sent), this is the same whether the
responses came from the provider or from the cache, so the manifest of a repeated run
is byte-identical. Replies that failed validation were paid for too: the client records
them, and they count here like any other reply. Cost is billed through
:meth:`Pricing.bill` (cache reads, cache writes, batch), beside the list price, so the
manifest and the card say what the dataset cost and what the discounts saved.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from persrm_gen.llm.pricing import Pricing
from persrm_gen.llm.types import LLMRequest, LLMResponse

_COUNTS = ("requests", "input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens",
           "batch_requests")


@dataclass
class DatasetUsage:
    pricing: Pricing = field(default_factory=Pricing)
    stages: dict[str, dict[str, float]] = field(default_factory=dict)

    def add(self, requests: Sequence[LLMRequest], responses: Sequence[LLMResponse | BaseException],
            rejected: Sequence[Sequence[LLMResponse]] = ()) -> None:
        """Count each answered request and each reply to it that was rejected (``rejected``, per
        request, from ``LLMClient.rejected_replies``); failed requests without a reply cost nothing."""
        for i, (req, resp) in enumerate(zip(requests, responses)):
            paid = [*(rejected[i] if i < len(rejected) else ()), *(() if isinstance(resp, BaseException) else (resp,))]
            for reply in paid:
                s = self.stages.setdefault(req.stage, {**dict.fromkeys(_COUNTS, 0), "cost_usd": 0.0,
                                                       "list_cost_usd": 0.0})
                s["requests"] += 1
                s["input_tokens"] += reply.input_tokens
                s["cached_input_tokens"] += reply.cached_input_tokens
                s["cache_write_tokens"] += reply.cache_write_tokens
                s["output_tokens"] += reply.output_tokens
                s["batch_requests"] += int(reply.batch)
                bill = self.pricing.bill(req.model, reply)
                s["cost_usd"] += bill.billed
                s["list_cost_usd"] += bill.list

    def to_dict(self) -> dict:
        """Per stage and in total: requests, tokens (cached reads and cache writes are subsets of
        input), ``cost_usd`` (billed), ``list_cost_usd`` (no discounts), ``saved_usd`` and
        ``cached_share`` (cached input / input)."""
        stages = {k: _finish(v) for k, v in sorted(self.stages.items())}
        total: dict = {k: sum(s[k] for s in self.stages.values()) for k in _COUNTS}
        total["cost_usd"] = sum(s["cost_usd"] for s in self.stages.values())
        total["list_cost_usd"] = sum(s["list_cost_usd"] for s in self.stages.values())
        return {"stages": stages, "total": _finish(total)}

    @property
    def cost_usd(self) -> float:
        return sum(s["cost_usd"] for s in self.stages.values())


def _finish(s: dict) -> dict:
    out = {k: s[k] for k in _COUNTS}
    out["cost_usd"] = round(s["cost_usd"], 6)
    out["list_cost_usd"] = round(s["list_cost_usd"], 6)
    out["saved_usd"] = round(s["list_cost_usd"] - s["cost_usd"], 6)
    out["cached_share"] = round(s["cached_input_tokens"] / s["input_tokens"], 4) if s["input_tokens"] else 0.0
    return out
