"""``persrm-gen build`` options: what each one may hold, checked once whatever its source.

A value comes from a flag, from ``--config FILE`` (a YAML or JSON mapping of option names,
plus ``pricing: {model: {input, output[, cached_input, cache_write, batch_multiplier]}}``
in USD per 1M tokens) or from the defaults
below; the command line wins over the file. :class:`BuildOptions` validates itself on
construction (pydantic, strict: ``context_size: "2"`` is refused, not guessed), so a
config file cannot slip past a check that a flag gets, and a typo such as
``minimal_edit`` is an error instead of a strategy silently dropped.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field, model_validator
from pydantic.dataclasses import dataclass
from pydantic_core import PydanticCustomError
from typing_extensions import NotRequired, TypedDict

from persrm_gen.llm.base_url import BaseUrl
from persrm_gen.llm.failure_rate import DEFAULT_MAX_FAILURE_RATE
from persrm_gen.options_file import STRICT, load_options
from persrm_gen.records import AXES, MIXED_SHARE, STRATEGIES

_DEVICE = re.compile(r"(auto|cpu|mps|cuda(:\d+)?)")


def _choices(allowed: tuple[str, ...], one: str, many: str):
    """A before-validator: a list or a comma-separated string of ``allowed`` values ('all': every one)."""

    def parse(value: Any) -> tuple[str, ...]:
        if value is None or (isinstance(value, str) and value.strip() in ("", "all")):
            return allowed
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise PydanticCustomError("option", f"expected a list (or a comma-separated string) of {many} from: {', '.join(allowed)}")
        items = tuple(dict.fromkeys(v.strip() for v in value))  # each once, in the order given
        if not items:
            raise PydanticCustomError("option", f"give at least one of: {', '.join(allowed)}")
        for item in items:
            if item not in allowed:
                close = difflib.get_close_matches(item, allowed, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise PydanticCustomError("option", f"unknown {one} {item!r}{hint}; choose from {', '.join(allowed)}")
        return items

    return BeforeValidator(parse)


def _path(value: Any) -> Any:
    if isinstance(value, str) and value.strip():
        return Path(value)
    if value is None or isinstance(value, Path):
        return value
    raise PydanticCustomError("option", "expected a path")


def _count_or_file(value: Any) -> Any:
    """A count or a file. ``test_authors: 5`` in a YAML file is a number; the option holds text."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if isinstance(value, str) and value.isdigit() and not (value.isascii() and value.isdecimal()):
        raise PydanticCustomError("option", "expected a number of authors (digits 0-9) or a file of author ids")
    return value


def _device(value: Any) -> Any:
    if isinstance(value, str) and _DEVICE.fullmatch(value):
        return value
    raise PydanticCustomError("option", "choose auto, cpu, cuda, cuda:N or mps")


def _split(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return tuple(value) if isinstance(value, list) else value


class ModelPrice(TypedDict):
    """USD per 1M tokens, as the ``pricing:`` table of a config file gives it (llm.pricing):
    ``cached_input`` (prompt-cache reads), ``cache_write`` (cache writes) and
    ``batch_multiplier`` (share paid through a batch API) are optional."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]
    input: Annotated[float, Field(ge=0)]
    output: Annotated[float, Field(ge=0)]
    cached_input: NotRequired[Annotated[float, Field(ge=0)]]
    cache_write: NotRequired[Annotated[float, Field(ge=0)]]
    batch_multiplier: NotRequired[Annotated[float, Field(ge=0, le=1)]]


PathValue = Annotated[Path, BeforeValidator(_path)]


@dataclass(config=STRICT)
class BuildOptions:
    authors: PathValue
    out: PathValue = Path("out")
    backend: Literal["local", "openai", "anthropic"] = "local"
    model: str | None = None
    base_url: BaseUrl = None
    context_size: Annotated[int, Field(ge=1)] = 3
    positive: Literal["real", "style-matched", "mixed"] = "mixed"
    mixed_share: Annotated[float, Field(ge=0, le=1)] = MIXED_SHARE  # --positive mixed: the share of generated positives
    negative_draws: Annotated[int, Field(ge=1)] = 1  # draws of each generated mimic/randomize/other-author negative
    negatives: Annotated[tuple[str, ...], _choices(STRATEGIES, "strategy", "strategies")] = STRATEGIES
    axes: Annotated[tuple[str, ...], _choices(AXES, "axis", "axes")] = AXES
    test_authors: Annotated[str | None, BeforeValidator(_count_or_file)] = None
    holdout_genre: str | None = None
    test_fraction: Annotated[float, Field(ge=0, le=0.9)] = 0.2
    max_targets_per_author: Annotated[int | None, Field(ge=1)] = None
    seed: int = 0
    prompts_dir: Annotated[Path | None, BeforeValidator(_path)] = None
    rationales: Literal["auto", "evidence", "llm"] = "auto"
    temperature: Annotated[float, Field(ge=0)] = 0.8
    max_new_tokens: Annotated[int, Field(ge=16)] = 320
    # client and backend
    concurrency: Annotated[int, Field(ge=1)] = 16
    batch_size: Annotated[int, Field(ge=1)] = 8
    device: Annotated[str, BeforeValidator(_device)] = "auto"
    threads: Annotated[int | None, Field(ge=1)] = None  # CPU threads of the local backend (default: all cores)
    rpm: Annotated[float | None, Field(gt=0)] = None
    tpm: Annotated[float | None, Field(gt=0)] = None
    timeout: Annotated[float, Field(gt=0)] = 120.0
    batch: bool = False  # the provider's batch API (about half price; results within its window)
    batch_poll: Annotated[float, Field(gt=0)] = 60.0  # seconds between status polls (back-off up to it)
    max_cost: Annotated[float | None, Field(ge=0)] = None
    max_requests: Annotated[int | None, Field(ge=0)] = None
    max_attempts: Annotated[int, Field(ge=1)] = 3
    max_failure_rate: Annotated[float, Field(ge=0, le=1)] = DEFAULT_MAX_FAILURE_RATE
    new_cache: bool = False
    # scale: authors per shard (each carried through every stage and written as it finishes),
    # and which of --num-shards author-hash partitions this machine builds
    shard_authors: Annotated[int, Field(ge=1)] = 20
    num_shards: Annotated[int, Field(ge=1)] = 1
    shard_index: Annotated[int, Field(ge=0)] = 0
    swap_check: bool = False
    trace_hint: bool = False
    # validator blind_shortcut (dataset.validators, dataset.blind_audit); None: off
    max_blind_confidence: Annotated[float | None, Field(gt=0.5, le=1)] = None
    dry_run: bool = False
    # card
    license: str | None = None
    language: Annotated[tuple[str, ...] | None, BeforeValidator(_split)] = None
    pricing: dict[str, ModelPrice] | None = None  # config file only
    command: str = ""  # set by the CLI, recorded in the manifest

    @model_validator(mode="after")
    def _combinations(self) -> BuildOptions:
        if self.base_url and self.backend != "openai":
            raise PydanticCustomError("option", "works with --backend openai (any OpenAI-compatible server)", {"field": "base_url"})
        if self.shard_index >= self.num_shards:
            raise PydanticCustomError("option", f"must be below --num-shards ({self.num_shards}): shards are numbered from 0",
                                      {"field": "shard_index"})
        if self.batch and self.backend == "local":
            raise PydanticCustomError("option", "needs --backend openai or anthropic (the local backend has no batch API)", {"field": "batch"})
        return self

    def rationale_mode(self, chat: bool) -> str:
        """``evidence`` or ``llm`` for a backend with (``chat``) or without an instruction model."""
        from persrm_gen.errors import InputError

        if self.rationales == "auto":
            return "llm" if chat else "evidence"
        if self.rationales == "llm" and not chat:
            raise InputError("--rationales llm needs an instruction (chat) model; the embedded base model writes evidence traces")
        return self.rationales

    def rationale_options(self, chat: bool, model: str):
        from persrm_gen.generator.rationales import RationaleOptions

        return RationaleOptions(
            mode=self.rationale_mode(chat), model=model, max_attempts=self.max_attempts, swap_check=self.swap_check,
            seed=self.seed, max_failure_rate=self.max_failure_rate, trace_hint=self.trace_hint,
        )

    def validator_config(self):
        from persrm_gen.dataset.validators import ValidatorConfig

        return ValidatorConfig(max_blind_confidence=self.max_blind_confidence)

    def candidate_options(self, model: str):
        from persrm_gen.generator.candidates import CandidateOptions

        return CandidateOptions(
            model=model, positive=self.positive, mixed_share=self.mixed_share, negatives=self.negatives, axes=self.axes,
            temperature=self.temperature, max_new_tokens=self.max_new_tokens, seed=self.seed,
            negative_draws=self.negative_draws,
        )


def load_build_options(cli: Mapping[str, Any], config: Path | None, *, command: str = "") -> BuildOptions:
    """Defaults, then the ``--config`` file, then the flags given (``cli``); validated once."""
    return load_options(BuildOptions, config, cli, command=command)

