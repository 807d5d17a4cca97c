"""Price table and the one bill: what a response cost, as the provider invoices it.

USD per million tokens, per model, overridable in config. Besides plain input and output
a model has a cached-input price (prompt-cache reads), a cache-write price (Anthropic's
5-minute cache writes) and a batch multiplier (the Batch / Message Batches APIs bill
every token at this share; the discounts stack). :meth:`Pricing.bill` turns one
:class:`LLMResponse` into what it was billed and what it would have cost at list price
(no cache, no batch): every ledger (the client's accounting, the dataset's usage, the
budget) bills through it, so they agree with each other and with the invoice.

Dated model names (``gpt-4.1-mini-2025-04-14``, ``claude-sonnet-4-5-20250929``) match
the longest table key they start with. A model with no price (a self-hosted vLLM model,
say) costs nothing in the accounting; a ``--max-cost`` run refuses to start on it, since
a budget that cannot be measured cannot be kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from persrm_gen.errors import UsageError
from persrm_gen.llm.types import LLMResponse


@dataclass(frozen=True)
class Price:
    input_per_mtok: float
    output_per_mtok: float
    # None: no discount (cached reads and cache writes cost plain input).
    cached_input_per_mtok: float | None = None
    cache_write_per_mtok: float | None = None
    batch_multiplier: float = 1.0  # share of the price a batch-API response pays

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """List price: every input token at the input price (estimates, the 'without discounts' figure)."""
        return (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1e6

    def billed(self, response: LLMResponse) -> float:
        """What the provider bills for ``response``: cached reads and cache writes at their
        own prices (both are subsets of ``input_tokens``), the batch multiplier on the whole."""
        cached = min(response.cached_input_tokens, response.input_tokens)
        written = min(response.cache_write_tokens, response.input_tokens - cached)
        plain = response.input_tokens - cached - written
        read_price = self.input_per_mtok if self.cached_input_per_mtok is None else self.cached_input_per_mtok
        write_price = self.input_per_mtok if self.cache_write_per_mtok is None else self.cache_write_per_mtok
        usd = (plain * self.input_per_mtok + cached * read_price + written * write_price
               + response.output_tokens * self.output_per_mtok) / 1e6
        return usd * (self.batch_multiplier if response.batch else 1.0)


@dataclass(frozen=True)
class Bill:
    """One response's cost: ``billed`` (what the invoice says) and ``list`` (no discounts)."""

    billed: float
    list: float

    @property
    def saved(self) -> float:
        return self.list - self.billed


def _openai(inp: float, out: float, cached: float | None) -> Price:
    return Price(inp, out, cached_input_per_mtok=cached, batch_multiplier=0.5)


def _anthropic(inp: float, out: float) -> Price:
    # Cache reads at 0.1x input, 5-minute cache writes at 1.25x input, batches at half price.
    return Price(inp, out, cached_input_per_mtok=round(inp * 0.1, 6), cache_write_per_mtok=round(inp * 1.25, 6),
                 batch_multiplier=0.5)


# List prices (standard tier) at the time of writing: cached input is 1/10 of input for the
# gpt-5 family, 1/4 for gpt-4.1, o3 and o4-mini, 1/2 for gpt-4o and o3-mini. Users override
# or extend them through the config's ``pricing:`` mapping.
DEFAULT_PRICES: dict[str, Price] = {
    "gpt-5": _openai(1.25, 10.0, 0.125),
    "gpt-5-mini": _openai(0.25, 2.0, 0.025),
    "gpt-5-nano": _openai(0.05, 0.40, 0.005),
    "gpt-4.1": _openai(2.0, 8.0, 0.50),
    "gpt-4.1-mini": _openai(0.40, 1.60, 0.10),
    "gpt-4.1-nano": _openai(0.10, 0.40, 0.025),
    "gpt-4o": _openai(2.50, 10.0, 1.25),
    "gpt-4o-mini": _openai(0.15, 0.60, 0.075),
    "o3": _openai(2.0, 8.0, 0.50),
    "o3-mini": _openai(1.10, 4.40, 0.55),
    "o4-mini": _openai(1.10, 4.40, 0.275),
    "gpt-3.5-turbo-instruct": _openai(1.50, 2.0, None),
    "davinci-002": _openai(2.0, 2.0, None),
    "claude-opus-4-5": _anthropic(5.0, 25.0),
    "claude-opus-4-1": _anthropic(15.0, 75.0),
    "claude-opus-4": _anthropic(15.0, 75.0),
    "claude-sonnet-4-5": _anthropic(3.0, 15.0),
    "claude-sonnet-4": _anthropic(3.0, 15.0),
    "claude-haiku-4-5": _anthropic(1.0, 5.0),
    "claude-3-7-sonnet": _anthropic(3.0, 15.0),
    "claude-3-5-haiku": _anthropic(0.80, 4.0),
}

# Config keys -> Price fields (USD per 1M tokens, except the multiplier).
CONFIG_KEYS = {"input": "input_per_mtok", "output": "output_per_mtok", "cached_input": "cached_input_per_mtok",
               "cache_write": "cache_write_per_mtok", "batch_multiplier": "batch_multiplier"}


class Pricing:
    """Looks up a model's price; ``overrides`` map model -> {input, output[, cached_input,
    cache_write, batch_multiplier]} (USD per 1M tokens)."""

    def __init__(self, overrides: Mapping[str, Mapping[str, float] | Price] | None = None,
                 *, defaults: Mapping[str, Price] = DEFAULT_PRICES):
        self.table: dict[str, Price] = dict(defaults)
        for model, p in (overrides or {}).items():
            self.table[model] = p if isinstance(p, Price) else _parse(model, p, defaults.get(model))
        self._memo: dict[str, Price | None] = {}

    def price(self, model: str) -> Price | None:
        if model not in self._memo:
            hits = [k for k in self.table if model == k or model.startswith(k + "-")]
            self._memo[model] = self.table[max(hits, key=len)] if hits else None
        return self._memo[model]

    def cost(self, model: str, input_tokens: int, output_tokens: int) -> float:
        """List price of so many tokens (no discounts): estimates and worst cases."""
        p = self.price(model)
        return p.cost(input_tokens, output_tokens) if p else 0.0

    def bill(self, model: str, response: LLMResponse) -> Bill:
        """The one place a response becomes money: billed USD and list USD."""
        p = self.price(model)
        if p is None:
            return Bill(0.0, 0.0)
        return Bill(p.billed(response), p.cost(response.input_tokens, response.output_tokens))

    def require(self, model: str) -> Price:
        p = self.price(model)
        if p is None:
            raise UsageError(
                f"no price known for model {model!r}, so --max-cost cannot be enforced; "
                f"add it under 'pricing:' in the config (USD per 1M tokens: "
                f"{{{model}: {{input: 0.5, output: 1.5}}}})"
            )
        return p


def _parse(model: str, p: Mapping[str, float], default: Price | None) -> Price:
    """A config entry. For a model the table knows, the discounts left out keep their
    default share of the input price (a negotiated input price keeps the cache discount);
    for any other model they are no discount at all."""
    try:
        unknown = set(p) - set(CONFIG_KEYS)
        if unknown:
            raise KeyError(sorted(unknown)[0])
        inp, out = float(p["input"]), float(p["output"])
        fields: dict[str, float] = {"input_per_mtok": inp, "output_per_mtok": out}
        if default is not None:
            fields["batch_multiplier"] = default.batch_multiplier
            for name in ("cached_input_per_mtok", "cache_write_per_mtok"):
                share = getattr(default, name)
                if share is not None and default.input_per_mtok:
                    fields[name] = inp * share / default.input_per_mtok
        for key, name in CONFIG_KEYS.items():
            if key in p and key not in ("input", "output"):
                fields[name] = float(p[key])
        return Price(**fields)
    except (KeyError, TypeError, ValueError) as e:
        raise UsageError(f"pricing for {model!r} needs numeric 'input' and 'output' (USD per 1M tokens), and "
                         f"optionally 'cached_input', 'cache_write', 'batch_multiplier'") from e
