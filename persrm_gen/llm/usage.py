"""Tokens and cost behind a dataset, counted from the responses it was built from.

Unlike the client's accounting (what this run sent), this is the same whether the
responses came from the provider or from the cache, so the manifest of a repeated run
is byte-identical. Replies that failed validation were paid for too: the client records
them, and they count here like any other reply.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from persrm_gen.llm.pricing import Pricing
from persrm_gen.llm.types import LLMRequest, LLMResponse


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
                s = self.stages.setdefault(req.stage, {"requests": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0})
                s["requests"] += 1
                s["input_tokens"] += reply.input_tokens
                s["output_tokens"] += reply.output_tokens
                s["cost_usd"] += self.pricing.cost(req.model, reply.input_tokens, reply.output_tokens)

    def to_dict(self) -> dict:
        stages = {k: {**v, "cost_usd": round(v["cost_usd"], 6)} for k, v in sorted(self.stages.items())}
        total = {k: sum(s[k] for s in stages.values()) for k in ("requests", "input_tokens", "output_tokens")}
        total["cost_usd"] = round(sum(s["cost_usd"] for s in stages.values()), 6)
        return {"stages": stages, "total": total}
