"""The model card (README.md) written into every checkpoint folder, refreshed by eval.

Training writes ``persrm_train.json`` (base model, data, options, final logs); eval
writes ``report.json``. The card is rendered from whichever of the two exist, so it is
always consistent with what is in the folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from persrm_gen.fileio import write_text_atomic

TRAIN_INFO = "persrm_train.json"
REPORT = "report.json"

_INTENDED_USE = """\
A personalized reasoning reward model: given a few writing samples by one author, a
writing task and two candidate responses, it reasons about the author's style inside
`<think>...</think>` and answers `<answer>A</answer>` or `<answer>B</answer>` for the
response the author would more likely have written. Use it to score or rank
generations for style fidelity, as a reward in RL fine-tuning, or to study
stylometric reasoning. It is not an authorship-attribution or forensic tool: its
verdicts are relative (A versus B), can be wrong, and must not be used to identify
anonymous writers or to make decisions about people."""

_PERSONAL_DATA = """\
The training pairs contain real text written by real people, and the model has learnt
from their writing style. Only use data you have the right to use; do not publish
this model if its training texts are private or if their authors did not agree to
it, and honour removal requests by retraining without the author's texts. Style is
personal data in many jurisdictions: a model that imitates or recognises one
person's writing may fall under data-protection law (e.g. the GDPR)."""


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _metrics_table(report: dict) -> str:
    judges = report.get("judges", {})
    splits = sorted({s for j in judges.values() for s in j.get("by_split", {})})
    head = "| judge | " + " | ".join(splits + ["overall", "overall (forced)", "order consistency", "parse failures"]) + " |"
    rows = [head, "|" + "---|" * (len(splits) + 5)]
    for name, m in judges.items():
        if m.get("status") != "ok":
            continue
        cells = [f"{m['by_split'].get(s, {}).get('accuracy', float('nan')):.3f}" for s in splits]
        forced = m.get("accuracy_forced")
        cells += [f"{m['accuracy']:.3f}", "" if forced is None else f"{forced:.3f}",
                  f"{m['order_consistency']:.3f}", f"{m['parse_failure_rate']:.3f}"]  # fmt: skip
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def length_rows(report: dict) -> tuple[list[str], list[list[str]]]:
    """The length-control table (eval's ``length`` fields) as header and rows of cells:
    accuracy per length-ratio bucket, by the chosen response's side, and the longer-pick
    rate, for "pick the longer" and each judge. Empty for a report without them."""
    reference = report.get("length")
    if not reference:
        return [], []
    buckets = reference["buckets"]
    sides = reference["by_chosen_length"]
    header = ["judge", *buckets, "chosen shorter", "chosen longer", "longer-pick rate"]
    counts = ["n (judgments)", *(str(reference["by_ratio"][b]["n"]) for b in buckets),
              str(sides["chosen_shorter"]), str(sides["chosen_longer"]), ""]  # fmt: skip
    unequal = sides["chosen_shorter"] + sides["chosen_longer"]
    pick = ["pick the longer", *(_rate(reference["by_ratio"][b]["accuracy"]) for b in buckets),
            "0.000" if sides["chosen_shorter"] else "-", "1.000" if sides["chosen_longer"] else "-",
            "1.000" if unequal else "-"]  # fmt: skip
    rows = [counts, pick]
    for name, m in report.get("judges", {}).items():
        length = m.get("length")
        if m.get("status") != "ok" or not length:
            continue
        by_side = length["by_chosen_length"]
        rows.append([name, *(_rate(length["by_ratio"][b]["accuracy"]) for b in buckets),
                     _rate(by_side["chosen_shorter"]["accuracy"]), _rate(by_side["chosen_longer"]["accuracy"]),
                     _rate(length["longer_pick_rate"])])  # fmt: skip
    return header, rows


def _length_section(report: dict) -> list[str]:
    header, rows = length_rows(report)
    if not rows:
        return []
    table = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    table += ["| " + " | ".join(r) + " |" for r in rows]
    return ["", "### Length control", "",
            ("Accuracy by the length ratio of the two responses (word counts, longer / shorter; each pair in both "
            "orders), on pairs where the chosen (the author's) response is the shorter or the longer one, and how "
            "often the judge picks the longer response (pairs of equal length left out). \"pick the longer\" is what "
            "that rule alone scores (a tie counts half): a judge whose row tracks it, with a longer-pick rate near "
            "1, has learnt length, not style."),
            "", *table]  # fmt: skip


def render_card(folder: Path) -> str:
    train = _read(folder / TRAIN_INFO) or {}
    report = _read(folder / REPORT)
    base = train.get("base_model", "unknown")
    header = {
        "library_name": "transformers",
        "base_model": base if "/" in str(base) and not str(base).startswith("/") else None,
        "tags": ["persrm-gen", "reward-model", "personalization", "trl", train.get("stage", "unknown")],
        "license": "other",
    }
    header = {k: v for k, v in header.items() if v is not None}
    lines = ["---", yaml.safe_dump(header, sort_keys=False).strip(), "---", ""]
    lines += [f"# Personalized reasoning reward model ({train.get('stage', 'checkpoint').upper()})", ""]
    lines += ["## Model", "", f"- Base model: `{base}`", f"- Stage: {train.get('stage', 'unknown')}"]
    if train.get("versions"):
        lines.append("- Libraries: " + ", ".join(f"{k} {v}" for k, v in train["versions"].items()))
    lines += ["", "## Data", ""]
    if train:
        lines += [
            f"- Dataset folder: `{train.get('data')}` (config `{train.get('config')}`, split `train`, "
            f"{train.get('train_rows')} rows)",
        ]
        fit = train.get("fitting")
        if fit:
            lines.append(f"- Rows fitted to {fit['max_length']} tokens (`--max-length`): {fit['kept']} as built, "
                         f"{fit['trimmed']} with shortened writing samples, {fit['dropped']} dropped")  # fmt: skip
        if train.get("dataset_manifest"):
            lines.append(f"- Dataset build: {json.dumps(train['dataset_manifest'], sort_keys=True)}")
        lines += ["", "## Training", "", "```json", json.dumps(train.get("options", {}), indent=2), "```"]
        if train.get("final_metrics"):
            lines += ["", "Final metrics: `" + json.dumps(train["final_metrics"], sort_keys=True) + "`"]
    else:
        lines.append("Unknown (this folder was not trained by persrm-gen).")
    lines += ["", "## Evaluation", ""]
    if report:
        lines += [
            f"Pairwise accuracy on `{report.get('data')}`; every pair is judged in both A/B orders "
            "(a parse failure counts as wrong; \"forced\" reads the verdict of an unparsable output off the "
            "model's odds for A and B after `</think><answer>`).",
            "",
            _metrics_table(report),
            *_length_section(report),
        ]
    else:
        lines.append("Not evaluated yet: run `persrm-gen eval --model <this folder> --data <dataset>`.")
    lines += ["", "## Intended use", "", _INTENDED_USE, "", "## Personal data", "", _PERSONAL_DATA, ""]
    return "\n".join(lines)


def write_card(folder: Path) -> Path:
    return write_text_atomic(Path(folder) / "README.md", render_card(Path(folder)))
