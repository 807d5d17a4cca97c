"""How many texts the rule-based negatives can edit, and whether the edits lengthen words.

    python benchmarks/swap_yield.py                        # examples + ../shared/corpora/*.jsonl
    PYTHONPATH=/tmp/old-checkout python benchmarks/swap_yield.py   # another checkout's tables

Per corpus (one author per line, ``samples[].text``): texts with >= 5 synonym spots (what a
vocabulary rewrite needs, ``edits.VOCABULARY_MIN``) and >= 3 (a minimal edit), and of the
minimal edits (3 seeds a text) that change the mean word length, the share that lengthens
it (blind_audit's ``word_chars``; near 0.5 is no cue). Why: the grammar rules of
``edits._synonym_fits`` trade swap spots for grammatical swaps (issue 13), and a build's
``no_negative_minimal-edit`` / ``no_negative_axes`` counts follow these numbers. Seconds,
no model.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

from persrm_gen.dataset.blind_audit import FEATURES, text_features
from persrm_gen.generator import edits

ROOT = Path(__file__).resolve().parents[1]
CORPORA = [ROOT / "examples" / "authors.jsonl", *sorted((ROOT.parent / "shared" / "corpora").glob("*.jsonl"))]


def report(path: Path) -> str:
    texts = [s["text"] for line in path.read_text().splitlines() if line.strip() for s in json.loads(line)["samples"]]
    spots = [len(edits._synonym_spots(t)) for t in texts]
    wc = FEATURES.index("word_chars")
    moved = [d for t in texts for seed in range(3)
             if (out := edits.minimal_edit(t, random.Random(seed))) is not None
             and abs(d := text_features(out)[wc] - text_features(t)[wc]) > 1e-9]
    share = sum(d > 0 for d in moved) / len(moved) if moved else float("nan")
    return (f"{path.stem}: {len(texts)} texts, >= {edits.VOCABULARY_MIN} spots {sum(n >= edits.VOCABULARY_MIN for n in spots)}, "
            f">= 3 spots {sum(n >= 3 for n in spots)}, minimal edits lengthening {share:.2f} of {len(moved)} moved")


if __name__ == "__main__":
    for p in [Path(a) for a in sys.argv[1:]] or CORPORA:
        print(report(p))
