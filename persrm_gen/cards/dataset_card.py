"""The output folder's README.md: Hub YAML (configs, features, tags) plus a generated body.

``render_dataset_card`` is pure (manifest + stats [+ scanned data] -> text);
``write_dataset_card`` scans ``out/data``, merges with an existing README.md and writes
atomically. The YAML is built in Python and dumped with PyYAML (never templated), the
body comes from ``dataset_card.md.j2`` in a sandboxed Jinja environment where every
manifest value is data.
"""

from __future__ import annotations

from pathlib import Path

from jinja2 import PackageLoader

from persrm_gen.cards.data_scan import ConfigData, data_files_glob, scan_data
from persrm_gen.cards.merge import dump_card, merge_body, merge_meta, parse_card, read_card, sections
from persrm_gen.dataset.blind_audit import TEST_SPLITS_ALL, interval_text
from persrm_gen.dataset.schema import CONFIGS, SPLITS, in_contract_order
from persrm_gen.fileio import write_text_atomic
from persrm_gen.jinja_sandbox import sandboxed_env
from persrm_gen.redact import redact_text, redact_url

TEMPLATE = "dataset_card.md.j2"
DEFAULT_LICENSE = "other"
DEFAULT_LANGUAGE = ["en"]
DEFAULT_PRETTY_NAME = "PersRM-Gen personalized preference pairs"
TAGS = ["personalization", "reward-modeling", "preference", "synthetic", "persrm"]
TASK_CATEGORIES = ["text-classification", "text-generation"]
USER_OWNED = ("pretty_name", "license", "language", "task_categories", "tags")

# The Hub's size_categories buckets, by upper bound.
_SIZE_BUCKETS = [
    (1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"),
    (10_000_000_000, "1B<n<10B"), (100_000_000_000, "10B<n<100B"), (1_000_000_000_000, "100B<n<1T"),
]

CONFIG_ABOUT = {
    "pairs": "canonical pairs: query, context, chosen/rejected, A/B label, rationale, provenance",
    "sft": "TRL prompt-completion: judge prompt, reasoning then answer tag",
    "rft": "judge prompt and A/B label for GRPO with a verifiable reward",
    "preference": "TRL preference (conversational, explicit prompt): write as the author; prompt, chosen, rejected",
}


def size_category(n: int) -> str:
    for bound, name in _SIZE_BUCKETS:
        if n < bound:
            return name
    return "n>1T"


# ---------------------------------------------------------------- YAML

def _configs_yaml(manifest: dict, data: dict[str, ConfigData] | None) -> list[dict]:
    """``configs:`` entries; from the files when scanned, else from manifest counts."""
    out = []
    if data:
        for name, cfg in data.items():
            files = [{"split": s, "path": data_files_glob(name, s, d)} for s, d in cfg.splits.items()]
            out.append({"config_name": name, "data_files": files})
    else:
        counts = manifest.get("counts") or {}
        for name in in_contract_order(counts, CONFIGS):
            splits = in_contract_order([s for s, n in (counts[name] or {}).items() if n], SPLITS)
            if splits:
                files = [{"split": s, "path": f"data/{name}/{s}.parquet"} for s in splits]
                out.append({"config_name": name, "data_files": files})
    names = [c["config_name"] for c in out]
    default = "pairs" if "pairs" in names else (names[0] if names else None)
    for c in out:
        if c["config_name"] == default and len(out) > 1:
            c["default"] = True  # so load_dataset(repo) without a config name works
    return out


def _dataset_info_yaml(data: dict[str, ConfigData]) -> list[dict]:
    """Features per config, in the Hub's YAML form, from the parquet Arrow schema."""
    from datasets import Features
    from datasets.info import DatasetInfo
    from datasets.splits import SplitDict, SplitInfo

    infos = []
    for name, cfg in data.items():
        splits = SplitDict()
        for split, d in cfg.splits.items():
            splits.add(SplitInfo(name=split, num_bytes=d.num_bytes, num_examples=d.num_examples))
        info = DatasetInfo(
            features=Features.from_arrow_schema(cfg.schema),
            splits=splits,
            download_size=sum(d.download_size for d in cfg.splits.values()),
            dataset_size=sum(d.num_bytes for d in cfg.splits.values()),
        )
        infos.append({"config_name": name, **info._to_yaml_dict()})
    return infos


def _n_pairs(manifest: dict, stats: dict) -> int:
    if stats.get("n_pairs") is not None:
        return int(stats["n_pairs"])
    return int(sum(((manifest.get("counts") or {}).get("pairs") or {}).values()))


def fresh_meta(manifest: dict, stats: dict, data: dict[str, ConfigData] | None) -> dict:
    meta = {
        "pretty_name": DEFAULT_PRETTY_NAME,
        "license": manifest.get("license") or DEFAULT_LICENSE,
        "language": list(manifest.get("language") or DEFAULT_LANGUAGE),
        "task_categories": list(TASK_CATEGORIES),
        "size_categories": [size_category(_n_pairs(manifest, stats))],
        "tags": list(TAGS),
        "configs": _configs_yaml(manifest, data),
    }
    if data:
        meta["dataset_info"] = _dataset_info_yaml(data)
    return meta


# ---------------------------------------------------------------- body

def _md(value) -> str:
    """A value made safe for one Markdown table cell and for our HTML-comment markers."""
    text = "" if value is None else str(value)
    text = text.replace("\r", " ").replace("\n", " ").replace("|", "\\|")
    return text.replace("<!--", "&lt;!--").replace("-->", "--&gt;")


def _code(value) -> str:
    return _md(value).replace("`", "'")


def _env():
    return sandboxed_env(PackageLoader("persrm_gen", "cards"), keep_trailing_newline=True,
                         filters={"md": _md, "code": _code})


def _fmt(x, digits: int = 3) -> str:
    if x is None:
        return "n/a"
    try:
        return f"{float(x):.{digits}f}"
    except (TypeError, ValueError):
        return str(x)


def _share_rows(counts: dict, total: int) -> list[dict]:
    rows = sorted((counts or {}).items(), key=lambda kv: (-kv[1], str(kv[0])))
    return [{"name": k, "n": v, "pct": f"{100 * v / total:.1f}%" if total else "n/a"} for k, v in rows]


def _cost(manifest: dict) -> dict | None:
    """The usage total's billed cost, list cost, savings and cached share (None: no priced usage).
    Manifests of builds before the ledger have only ``cost_usd``."""
    total = (manifest.get("usage") or {}).get("total") or {}
    if not isinstance(total.get("cost_usd"), (int, float)) or not total["cost_usd"]:
        return None
    keys = ("list_cost_usd", "saved_usd", "cached_share")
    full = all(isinstance(total.get(k), (int, float)) for k in keys)
    return {"cost_usd": total["cost_usd"], **{k: total[k] if full else None for k in keys}}


def _flatten(d: dict, prefix: str = "") -> dict:
    """Nested usage dicts -> dotted keys (``stages.judge.requests``) for a two-column table."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _extra_settings(manifest: dict) -> list[tuple[str, str]]:
    rows = []
    if manifest.get("axes"):
        rows.append(("divergence axes", ", ".join(map(str, manifest["axes"]))))
    for key, label in (("rationales", "rationales"), ("swap_check", "A/B swap check"),
                       ("max_blind_confidence", "max blind-judge confidence kept")):
        if manifest.get(key) is not None:
            rows.append((label, str(manifest[key])))
    fraction = (manifest.get("splits") or {}).get("test_fraction")
    if fraction is not None:
        rows.append(("test fraction", str(fraction)))
    return rows


def _strategy_split(table: dict) -> dict:
    splits = in_contract_order({s for row in table.values() for s in row}, SPLITS)
    return {
        "header": ["strategy", *splits],
        "rows": [[name, *(row.get(s, 0) for s in splits)] for name, row in sorted(table.items())],
    }


def _config_table(manifest: dict, data: dict[str, ConfigData] | None) -> dict:
    rows: dict[str, dict[str, int]] = {}
    if data:
        rows = {n: {s: d.num_examples for s, d in c.splits.items()} for n, c in data.items()}
    else:
        rows = {n: {s: v for s, v in (c or {}).items() if v} for n, c in (manifest.get("counts") or {}).items()}
    splits = in_contract_order({s for r in rows.values() for s in r}, SPLITS)
    return {
        "header": ["config", "what it holds", *splits],
        "rows": [
            [n, CONFIG_ABOUT.get(n, ""), *(rows[n].get(s, "") for s in splits)]
            for n in in_contract_order(rows, CONFIGS)
        ],
    }


_SPLIT_LABEL = {"train": "train (the pairs it was fitted on)", TEST_SPLITS_ALL: "all test splits"}


def _shortcuts(stats: dict) -> dict | None:
    """The card's "Shortcuts" section: the context-blind judge per split and per strategy,
    beside the pick-the-longer rate and the stylometric baseline (which sees the author)."""
    blind = stats.get("blind_audit")
    if not blind:
        return None
    baseline = stats.get("baseline_by_strategy") or {}
    splits = blind.get("by_split") or {}
    return {
        "splits": [{"split": _SPLIT_LABEL.get(k, k), "n": splits[k]["n"], "accuracy": _fmt(splits[k]["accuracy"])}
                   for k in in_contract_order(splits, SPLITS)],
        "strategies": [
            {"name": name, "n": row["n"], "n_test": row["n_test"], "test": _fmt(row["accuracy"]),
             "cv": _fmt(row["cv_accuracy"]), "cv_interval": interval_text(row["cv_accuracy"], row["n"]) or "",
             "longer": _fmt(row["longer_chosen"]), "stylometric": _fmt(baseline.get(name))}
            for name, row in sorted((blind.get("by_strategy") or {}).items())
        ],
        "genres": [{"name": k, "n": v["n"], "accuracy": _fmt(v["accuracy"])} for k, v in sorted((blind.get("by_genre") or {}).items())],
        "cv": _fmt(blind.get("cv_accuracy")),
        "test": "%s (%s)" % (_fmt((splits.get(TEST_SPLITS_ALL) or {}).get("accuracy")), (splits.get(TEST_SPLITS_ALL) or {}).get("n", 0)),
        "longer": _fmt(blind.get("longer_chosen")),
    }


def _context(manifest: dict, stats: dict, meta: dict, data) -> dict:
    n_pairs = _n_pairs(manifest, stats)
    by_split = stats.get("by_split") or (manifest.get("counts") or {}).get("pairs") or {}
    authors = stats.get("authors") or {}
    baseline = stats.get("baseline_accuracy") or {}
    ab = stats.get("ab_balance") or {}
    a, b = int(ab.get("A", 0)), int(ab.get("B", 0))
    margin = stats.get("style_margin") or {}
    splits = manifest.get("splits") or {}
    return {
        "pretty_name": meta.get("pretty_name") or DEFAULT_PRETTY_NAME,
        "license": meta.get("license") or DEFAULT_LICENSE,
        "license_is_default": (meta.get("license") or DEFAULT_LICENSE) == DEFAULT_LICENSE,
        "version": manifest.get("persrm_gen_version", "unknown"),
        "created": manifest.get("created"),  # builds are deterministic: usually absent
        "command": redact_text(manifest.get("command") or ""),  # manifests of older builds too
        "backend": manifest.get("backend", "unknown"),
        "model": manifest.get("model", "unknown"),
        "base_url": redact_url(manifest.get("base_url")) or None,
        "seed": manifest.get("seed", "n/a"),
        "context_size": manifest.get("context_size", "n/a"),
        "positive": manifest.get("positive", "real"),
        "negatives": list(manifest.get("negatives") or []),
        "templates": sorted((manifest.get("templates") or {}).items()),
        "test_authors": list(splits.get("test_authors") or []),
        "holdout_genre": splits.get("holdout_genre"),
        "usage": sorted(_flatten(manifest.get("usage") or {}).items()),
        "cost": _cost(manifest),
        "extra_settings": _extra_settings(manifest),
        "strategy_split": _strategy_split(stats.get("by_strategy_split") or {}),
        "sft_usable": stats.get("sft_usable"),
        "versions": sorted((manifest.get("versions") or {}).items()),
        "config_table": _config_table(manifest, data),
        "n_pairs": n_pairs,
        "n_authors": authors.get("all", "n/a"),  # per-split counts overlap (seen authors), so no sum
        "split_rows": [
            {"split": s, "pairs": by_split[s], "authors": authors.get(s, "n/a"), "baseline": _fmt(baseline.get(s))}
            for s in in_contract_order(by_split, SPLITS)
        ],
        "baseline_all": _fmt(baseline.get("all")),
        "by_strategy": _share_rows(stats.get("by_strategy"), n_pairs),
        "by_genre": _share_rows(stats.get("by_genre"), n_pairs),
        "ab": {"A": a, "B": b, "share_a": f"{100 * a / (a + b):.1f}%" if a + b else ""},
        "margin": {k: _fmt(margin.get(k)) for k in ("mean", "min", "p10", "p50", "p90", "max")},
        "rejections": _share_rows(stats.get("rejections") or manifest.get("rejections"), 0),
        "shortcuts": _shortcuts(stats),
    }


# ---------------------------------------------------------------- public API

def render_dataset_card(
    manifest: dict,
    stats: dict,
    *,
    existing: str | None = None,
    data: dict[str, ConfigData] | None = None,
) -> str:
    """The README.md text. ``existing`` (the current README) is merged, not overwritten;
    ``data`` (from :func:`scan_data`) adds ``dataset_info`` features and exact file paths."""
    fresh = fresh_meta(manifest, stats, data)
    old = parse_card(existing) if existing is not None else None
    if old is None:
        meta = fresh
    else:
        previous = old.state.get("yaml") if old.state else None
        meta = merge_meta(fresh, old.meta, previous)
    body = _env().get_template(TEMPLATE).render(_context(manifest, stats, meta, data))
    section_names = list(sections(body))
    if old is not None and old.body.strip():
        body = merge_body(body, old.body, old.state.get("sections") if old.state else None)
    state = {"yaml": {k: fresh[k] for k in USER_OWNED}, "sections": section_names}
    return dump_card(meta, body, state)


def write_dataset_card(out_dir: Path, manifest: dict, stats: dict, *, previous: Path | None = None) -> Path:
    """Write ``out_dir/README.md`` atomically, merging the current card (``previous``,
    default ``out_dir/README.md``; the build writes into staging and merges the published one)."""
    out_dir = Path(out_dir)
    path = out_dir / "README.md"
    existing = read_card(path if previous is None else Path(previous))
    text = render_dataset_card(manifest, stats, existing=existing, data=scan_data(out_dir))
    write_text_atomic(path, text)
    return path
