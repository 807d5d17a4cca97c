"""Price table: USD per million input / output tokens, per model, overridable in config.

Dated model names (``gpt-4.1-mini-2025-04-14``, ``claude-sonnet-4-5-20250929``) match
the longest table key they start with. A model with no price (a self-hosted vLLM model,
say) costs nothing in the accounting; a ``--max-cost`` run refuses to start on it, since
a budget that cannot be measured cannot be kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from persrm_gen.errors import UsageError


@dataclass(frozen=True)
class Price:
    input_per_mtok: float
    output_per_mtok: float

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1e6


# List prices (standard tier, no caching/batch discounts) at the time of writing.
# Users override or extend them through the config's ``pricing:`` mapping.
DEFAULT_PRICES: dict[str, Price] = {
    "gpt-5": Price(1.25, 10.0),
    "gpt-5-mini": Price(0.25, 2.0),
    "gpt-5-nano": Price(0.05, 0.40),
    "gpt-4.1": Price(2.0, 8.0),
    "gpt-4.1-mini": Price(0.40, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.40),
    "gpt-4o": Price(2.50, 10.0),
    "gpt-4o-mini": Price(0.15, 0.60),
    "o3": Price(2.0, 8.0),
    "o3-mini": Price(1.10, 4.40),
    "o4-mini": Price(1.10, 4.40),
    "gpt-3.5-turbo-instruct": Price(1.50, 2.0),
    "davinci-002": Price(2.0, 2.0),
    "claude-opus-4-5": Price(5.0, 25.0),
    "claude-opus-4-1": Price(15.0, 75.0),
    "claude-opus-4": Price(15.0, 75.0),
    "claude-sonnet-4-5": Price(3.0, 15.0),
    "claude-sonnet-4": Price(3.0, 15.0),
    "claude-haiku-4-5": Price(1.0, 5.0),
    "claude-3-7-sonnet": Price(3.0, 15.0),
    "claude-3-5-haiku": Price(0.80, 4.0),
}


class Pricing:
    """Looks up a model's price; ``overrides`` map model -> {input, output} (USD per 1M)."""

    def __init__(self, overrides: Mapping[str, Mapping[str, float] | Price] | None = None,
                 *, defaults: Mapping[str, Price] = DEFAULT_PRICES):
        self.table: dict[str, Price] = dict(defaults)
        for model, p in (overrides or {}).items():
            self.table[model] = p if isinstance(p, Price) else _parse(model, p)
        self._memo: dict[str, Price | None] = {}

    def price(self, model: str) -> Price | None:
        if model not in self._memo:
            hits = [k for k in self.table if model == k or model.startswith(k + "-")]
            self._memo[model] = self.table[max(hits, key=len)] if hits else None
        return self._memo[model]

    def cost(self, model: str, input_tokens: int, output_tokens: int) -> float:
        p = self.price(model)
        return p.cost(input_tokens, output_tokens) if p else 0.0

    def require(self, model: str) -> Price:
        p = self.price(model)
        if p is None:
            raise UsageError(
                f"no price known for model {model!r}, so --max-cost cannot be enforced; "
                f"add it under 'pricing:' in the config (USD per 1M tokens: "
                f"{{{model}: {{input: 0.5, output: 1.5}}}})"
            )
        return p


def _parse(model: str, p: Mapping[str, float]) -> Price:
    try:
        return Price(float(p["input"]), float(p["output"]))
    except (KeyError, TypeError, ValueError) as e:
        raise UsageError(f"pricing for {model!r} needs numeric 'input' and 'output' (USD per 1M tokens)") from e

