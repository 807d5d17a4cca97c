"""What both peer drivers share: the job spec from peers.py and the JSON line they print back.

Kept free of persrm_gen imports: the drivers run in the peers' own virtual environments.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Spec:
    base: str  # http://127.0.0.1:PORT/v1
    n: int  # requests in the batch
    conc: int  # requests in flight
    tag: str  # makes every prompt unique per run, so no cache can answer
    model: str
    system: str
    prompt: str

    def messages(self) -> list[list[dict[str, str]]]:
        # The same two-message chat our client sends in client_throughput.py.
        return [[{"role": "system", "content": self.system},
                 {"role": "user", "content": f"{self.prompt} [{self.tag}-{i}]"}] for i in range(self.n)]


def read_spec() -> Spec:
    return Spec(**json.loads(sys.argv[1]))


def report(started: float, t0: float, t1: float, ok: int) -> None:
    """Last stdout line: the batch's wall time (timed inside the driver, after imports and setup)."""
    print(json.dumps({"seconds": t1 - t0, "setup_seconds": t0 - started, "ok": ok}), flush=True)


def now() -> float:
    return time.perf_counter()
