"""Seeded draws from large pools without copying the pool for every draw.

Other-author texts and context samples are drawn per task from "every row of a group
except this author's" (and, for style steering, "except this genre"). Building that list
per task makes a build quadratic in the corpus size. These read-only views index the
shared lists instead, and :func:`shuffled` yields ``rng.sample(pool, len(pool))`` one
item at a time, so the draws (and so the dataset) are exactly those of the plain lists.
"""

from __future__ import annotations

import random
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")


class Excluding(Sequence):
    """``base`` without the positions ``[lo, hi)`` and without the sorted positions ``drop``,
    in ``base`` order. Indexing costs O(log^2 n); nothing is copied."""

    def __init__(self, base: Sequence, lo: int = 0, hi: int = 0, drop: Sequence[int] = ()):
        self.base, self.lo, self.hi, self.drop = base, lo, max(lo, hi), drop
        self._n = len(base) - self._excluded_upto(len(base) - 1) if base else 0

    def _excluded_upto(self, x: int) -> int:
        """How many excluded positions are <= x."""
        in_drop = bisect_right(self.drop, x)
        if x < self.lo:
            return in_drop
        end = min(x + 1, self.hi)  # the block's part up to x is [lo, end)
        both = bisect_left(self.drop, end) - bisect_left(self.drop, self.lo)
        return in_drop + (end - self.lo) - both

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self._n))]
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError(i)
        if not self.drop:  # only the block: one jump
            return self.base[i if i < self.lo else i + (self.hi - self.lo)]
        # the smallest position x whose kept count (x + 1 - excluded up to x) reaches i + 1
        lo, hi = i, min(len(self.base) - 1, i + (len(self.base) - self._n))
        while lo < hi:
            mid = (lo + hi) // 2
            if mid + 1 - self._excluded_upto(mid) >= i + 1:
                hi = mid
            else:
                lo = mid + 1
        return self.base[lo]


def shuffled(rng: random.Random, pool: Sequence[T]) -> Iterator[T]:
    """Lazily, the items of ``rng.sample(pool, len(pool))`` in the same order, drawing the
    same random numbers: a caller that stops after a few items pays for a few items.

    ``random.sample`` with ``k == n`` always takes its list branch: draw ``j`` below the
    number of items left, take ``pool[j]``, move the last remaining item into the hole.
    The holes are kept in a dict instead of a copied list. ``randrange(m)`` is
    ``_randbelow(m)``, the draw ``sample`` makes (tests/test_draws.py checks the equality).
    """
    n = len(pool)
    moved: dict[int, int] = {}
    for i in range(n):
        j = rng.randrange(n - i)
        last = n - i - 1
        yield pool[moved.get(j, j)]
        moved[j] = moved.get(last, last)
