"""``persrm-gen merge OUT_1 ... OUT_K --out OUT``: one dataset from the shard folders that
``build --num-shards K --shard-index i`` made on K machines.

The folders must come from one build command (the same options, templates and seed, only
the shard index differing) and hold disjoint authors: an author in two of them is refused,
since its pairs would be counted twice. The merge runs the checks across shards again over
all folders (duplicates between authors of different folders, authors and genres shared
between splits), copies each folder's files as numbered shards (rewriting only a file that
loses rows), and writes one manifest, with usage and cost summed, and one card.
"""

from __future__ import annotations

from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from persrm_gen.dataset.compact import Verdicts
from persrm_gen.dataset.folder import OutputFolder
from persrm_gen.dataset.schema import SPLITS
from persrm_gen.errors import UsageError
from persrm_gen.pipeline.assemble import Unit
from persrm_gen.pipeline.write import write_dataset
from persrm_gen.userfiles import read_text

# Manifest entries that differ between the shard folders of one build; all others must agree.
# (``base_url`` too: each machine may talk to its own server of the same model.)
_PER_SHARD = frozenset({"command", "counts", "rejections", "skipped_samples", "usage", "shards", "versions", "python",
                        "base_url", "shortcuts"})


@dataclass
class MergeResult:
    out: Path
    counts: dict
    rejections: dict
    manifest: dict


def run_merge(sources: list[Path], out: Path, *, command: str = "") -> MergeResult:
    folder = OutputFolder(out)
    folder.check()
    if any(Path(s).resolve() == Path(out).resolve() for s in sources):
        raise UsageError(f"{out}: --out is one of the folders to merge; give it a new folder")
    with ExitStack() as stack:
        for src in sources:
            stack.enter_context(OutputFolder(src).reading())  # none changes while it is read
        manifests = [_manifest(Path(s)) for s in sources]
        _check_same_build(sources, manifests)
        _warn_missing_parts(manifests)
        units = [Unit.of_folder(Path(s)) for s in sources]
        _check_disjoint_authors(sources, units)
        rejections = Counter()
        for m in manifests:
            rejections.update(m.get("rejections") or {})
        predicted = _style_verdicts(units)
        with folder.writing() as staging:
            counts, rejections_out, manifest = write_dataset(
                staging, units, rejections, link=False, source=str(sources[0]), predicted=predicted,
                previous_card=Path(out) / "README.md",
                manifest_for=lambda c, r, _rows, stats: _merged_manifest(manifests, command, c, r, stats),
                compact_of=lambda k: _compact(units[k]),
            )
            folder.publish()
    return MergeResult(Path(out), counts, rejections_out, manifest)


def _manifest(src: Path) -> dict:
    import json

    path = src / "manifest.json"
    if not (src / "data" / "pairs").is_dir() or not path.is_file():
        raise UsageError(f"{src}: not a built persrm-gen dataset folder (no manifest.json and data/pairs/)")
    try:
        manifest = json.loads(read_text(path))
    except ValueError as exc:
        raise UsageError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or "persrm_gen_version" not in manifest:
        raise UsageError(f"{path}: not a persrm-gen manifest")
    return manifest


def _check_same_build(sources: list[Path], manifests: list[dict]) -> None:
    first = manifests[0]
    for src, m in zip(sources[1:], manifests[1:]):
        for key in sorted((set(first) | set(m)) - _PER_SHARD):
            if first.get(key) != m.get(key):
                raise UsageError(f"{src}: built with another {key} than {sources[0]} ({m.get(key)!r} vs "
                                 f"{first.get(key)!r}); merge only the shard folders of one build command")


def _warn_missing_parts(manifests: list[dict]) -> None:
    """A merge of some of the K parts is allowed (say, to look at a first result), but said."""
    from persrm_gen.progress import console

    parts = [m.get("shards") or {} for m in manifests]
    k = {p.get("num_shards") for p in parts}
    if len(k) == 1 and None not in k:
        missing = sorted(set(range(k.pop())) - {p.get("shard_index") for p in parts})
        if missing:
            console.print(f"[yellow]warning[/yellow]: merging without --shard-index {', '.join(map(str, missing))}; "
                          "their authors are not in the merged dataset", highlight=False)


def _check_disjoint_authors(sources: list[Path], units: list[Unit]) -> None:
    import pyarrow.parquet as pq  # only when a folder is read

    owner: dict[str, Path] = {}
    for src, unit in zip(sources, units):
        mine: set[str] = set()
        for split in SPLITS:
            for f in unit.of("pairs", split):
                mine.update(pq.read_table(f, columns=["author_id"]).column("author_id").to_pylist())
        for aid in sorted(mine):
            if aid in owner:
                raise UsageError(f"{src}: author {aid!r} is also in {owner[aid]}; each author must be built in "
                                 "exactly one shard folder (build them with one --num-shards and distinct --shard-index)")
            owner[aid] = src


def _style_verdicts(units: list[Unit]) -> Verdicts:
    """The stylometric judge's verdict per pair (the card's baseline accuracy), a file at a time."""
    import pyarrow.parquet as pq  # only when a folder is read

    from persrm_gen.style import baseline_judge

    out = Verdicts()
    for unit in units:
        for split in SPLITS:
            for f in unit.of("pairs", split):
                rows = pq.read_table(f, columns=["id", "context", "response_a", "response_b"]).to_pylist()
                out.update({r["id"]: baseline_judge(r["context"], r["response_a"], r["response_b"]) for r in rows})
    return out


def _compact(unit: Unit):
    """A folder's compact rows (``dataset.compact``), measured from its pairs texts a file at
    a time: only one folder's are in memory at once."""
    import pyarrow as pa

    from persrm_gen.dataset.compact import SCHEMA, compact_of_file

    files = [f for split in SPLITS for f in unit.of("pairs", split)]
    return pa.concat_tables([compact_of_file(f) for f in files]) if files else SCHEMA.empty_table()


def _merged_manifest(manifests: list[dict], command: str, counts: dict, rejections: dict, stats: dict) -> dict:
    from persrm_gen.pipeline.manifest import shortcut_summary

    merged = {k: v for k, v in manifests[0].items() if k != "shards"}
    if "shortcuts" in merged:  # measured again on the merged rows
        merged["shortcuts"] = shortcut_summary(stats)
    skipped: Counter = Counter()
    for m in manifests:
        skipped.update(m.get("skipped_samples") or {})
    merged.update(command=command, counts=counts, rejections=rejections, skipped_samples=dict(sorted(skipped.items())),
                  usage=_sum_usage([m.get("usage") or {} for m in manifests]),
                  merged_from=[m.get("command", "") for m in manifests])
    return merged


def _sum_usage(usages: list) -> dict:
    """Every number summed, key by key (floats rounded as the manifest writes cost); the
    shares and ratios among them are computed again from the sums."""
    first = usages[0]
    if isinstance(first, dict):
        keys = sorted({k for u in usages if isinstance(u, dict) for k in u})
        out = {k: _sum_usage([u[k] for u in usages if isinstance(u, dict) and k in u]) for k in keys}
        if "cached_share" in out and out.get("input_tokens"):
            out["cached_share"] = round(out.get("cached_input_tokens", 0) / out["input_tokens"], 4)
        if "requests_per_kept_trace" in out:
            kept = out.get("kept_traces") or 0
            out["requests_per_kept_trace"] = round(out.get("requests", 0) / kept, 3) if kept else None
        return out
    if isinstance(first, bool) or not isinstance(first, (int, float)):
        return first
    total = sum(u for u in usages if isinstance(u, (int, float)) and not isinstance(u, bool))
    return round(total, 6) if isinstance(total, float) else total
