"""How much `make bench` measures, and its progress lines.

The full run (`make bench FULL=1`) takes about 12 minutes on the 2-core development machine:
7 rounds of cold starts, 15 of warm requests, 5 worker runs, 100 WebSocket pushes and a
300-task backlog twice under `make dev`. The default is a quick run of every measurement
at a smaller scale (a couple of minutes), enough to see a regression; the figures in
docs/performance.md are from the full run. Either way, each step prints a line when it
starts, with the time so far, so a long step is never silent.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Scale:
    name: str
    cold_runs: int  # fresh processes per function kind and variant
    warm_rounds: int  # interleaved rounds of warm requests
    warm_requests: int  # requests per round
    worker_runs: int  # interleaved runs of 50 tasks per variant
    push_changes: int  # status writes timed to a WebSocket client
    fairness_backlog: int  # owner A's tasks queued ahead of owner B's one
    remote_jobs: int  # no-op jobs on the worker Lambda, then on a remote worker (at most 100)
    stream_tasks: int  # tasks run to the end to count the stream's calls per task


QUICK = Scale("quick", cold_runs=1, warm_rounds=3, warm_requests=50, worker_runs=1,
              push_changes=20, fairness_backlog=40, remote_jobs=40,
              stream_tasks=100)  # fmt: skip
FULL = Scale("full", cold_runs=7, warm_rounds=15, warm_requests=100, worker_runs=5,
             push_changes=100, fairness_backlog=300, remote_jobs=100,
             stream_tasks=300)  # fmt: skip

_started = time.monotonic()


def chosen() -> Scale:
    """FULL with BENCH_FULL=1 (what `make bench FULL=1` sets), else QUICK."""
    return FULL if os.environ.get("BENCH_FULL", "") not in ("", "0") else QUICK


def step(what: str) -> None:
    """A progress line on stderr, so the figures on stdout stay a clean report."""
    elapsed = int(time.monotonic() - _started)
    print(f"[bench {elapsed // 60}:{elapsed % 60:02d}] {what}", file=sys.stderr, flush=True)
