"""`make load`: tasks through `make dev`, then the same with the emulator paused mid-run.

Starts `make dev`'s program on free ports with an empty state (local/launcher.py), and
runs two rounds of N tasks (default 2,000) submitted by several users in batches of 100
(`POST /jobs/batch`), each user from its own thread:

1. **steady**: tasks/s from the first submit to the last completion seen, and p50/p99 of
   submit-to-completed (from each job's history, in milliseconds, so polling adds
   nothing to it);
2. **paused**: the same, with the emulator (DynamoDB, SQS, S3) stopped with SIGSTOP for
   PAUSE seconds (default 30) once half the tasks are submitted, then SIGCONT. Every task
   accepted must complete and none fail; a submit during the pause must get 503 or 429
   (with Retry-After: it is sent again) or succeed; any other answer is a failure.

Exit status 1 if a round breaks a rule. The short version, 100 tasks in batches of 5 and
a 5 s pause, is tests/e2e/test_load_e2e.py (`make test` runs it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

TASKS = 2000
USERS = 5
PAUSE_SECONDS = 30.0
BATCH = 100
RUN = uuid.uuid4().hex[:8]  # this run's keys: a second run against one stack adds its own
ENDED = {"completed", "completed_with_errors", "failed", "cancelled"}
# A receive whose answer the pause lost leaves its messages in flight for the tasks queue's
# visibility timeout (720 s) before they are handed over again: a round waits until its jobs
# have ended, or until none has ended for longer than that (a stall: a job lost or stuck).
# How fast they end is the emulator's pace on this machine, which is no limit of the round.
STALL_SECONDS = 900
# Each look at a round's progress reads every user's whole list (2,000 jobs: 20 pages of
# 100 whole jobs), a load of its own on the emulator the round measures if done each
# second. A round looks once per 100 jobs' worth of seconds (at least each second), so it
# sees its end that much late at most (20 s of a 2,000-job round of about 20 minutes).
JOBS_PER_LOOK_SECOND = 100
ROOT = Path(__file__).resolve().parent.parent
REQUEST_TIMEOUT = 120  # a submit during the pause waits out the API's own AWS retries


@dataclass
class Round:
    """One round's submits, answers and outcome."""

    name: str
    batch: int = BATCH
    accepted: dict[str, str] = field(default_factory=dict)  # job id -> user
    answers: Counter[int] = field(default_factory=Counter)  # HTTP status of each batch
    during_pause: Counter[int] = field(default_factory=Counter)  # those sent while paused
    pause: list[float] = field(default_factory=list)  # [stopped, continued] (monotonic)
    refused_items: Counter[int] = field(default_factory=Counter)  # per-item status, not 202
    unexpected: list[str] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds, submit to completed
    statuses: Counter[str] = field(default_factory=Counter)

    def problems(self) -> list[str]:
        found = list(self.unexpected)
        if self.statuses.get("completed", 0) != len(self.accepted):
            found.append(f"{len(self.accepted)} accepted, final statuses {dict(self.statuses)}")
        return found

    def summary(self) -> str:
        seconds = max(self.finished - self.started, 1e-9)
        done = self.statuses.get("completed", 0)
        p50, p99 = percentile(self.latencies, 50), percentile(self.latencies, 99)
        return (
            f"{self.name:7} {done}/{len(self.accepted)} completed, {done / seconds:6.1f} tasks/s "
            f"over {seconds:5.1f} s; submit->completed p50 {p50:5.2f} s, p99 {p99:5.2f} s; "
            f"batch answers {dict(self.answers)}, items refused {dict(self.refused_items)}"
            + (f", sent during the pause {dict(self.during_pause)}" if self.pause else "")
        )

    def paused_at(self, moment: float) -> bool:
        return (
            len(self.pause) >= 1
            and moment >= self.pause[0]
            and (len(self.pause) == 1 or moment <= self.pause[1])
        )


def percentile(values: list[float], pct: int) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


class Client:
    """The REST API as a user sees it, one token per user."""

    def __init__(self, api: str, token_for: Callable[[str], str]) -> None:
        self.api = api
        self.token_for = token_for
        self.session = requests.Session()
        self.session.trust_env = False  # 127.0.0.1 only: never through a proxy

    def headers(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token_for(user)}"}

    def submit_batch(self, user: str, keys: list[str]) -> requests.Response:
        """POST /jobs/batch of quick jobs, one per idempotency key: a batch sent again after
        a 503 or no answer (it may have been stored) replays its jobs, never adds more."""
        jobs = [
            {"type": "demo/sleep", "input": {"seconds": 0}, "idempotencyKey": key} for key in keys
        ]
        return self.session.post(
            f"{self.api}/jobs/batch",
            json={"jobs": jobs},
            headers=self.headers(user),
            timeout=REQUEST_TIMEOUT,
        )

    def read(self, path: str, user: str, params: dict[str, Any] | None = None) -> Any:
        """GET `path` as `user`; a 503 or 429 (the emulator overloaded: the service says
        when to come back) is asked again after its Retry-After, as any client does."""
        while True:
            answer = self.session.get(
                f"{self.api}{path}", params=params, headers=self.headers(user), timeout=60
            )
            if answer.status_code not in (429, 503):
                answer.raise_for_status()
                return answer.json()
            time.sleep(float(answer.headers.get("Retry-After", "5")))

    def latency(self, job_id: str, user: str) -> float | None:
        """Seconds from the job's submit to its completion, from its history (ms)."""
        events = self.read(f"/jobs/{job_id}/events", user)["events"]
        submitted = next((e["at"] for e in events if e["status"] == "submitted"), None)
        completed = next((e["at"] for e in events if e["status"] == "completed"), None)
        if submitted is None or completed is None:
            return None
        return (_at(completed) - _at(submitted)).total_seconds()

    def jobs_of(self, user: str) -> Iterator[dict[str, Any]]:
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 100}
            if cursor:
                params["cursor"] = cursor
            page = self.read("/jobs", user, params)
            yield from page["jobs"]
            cursor = page.get("nextCursor")
            if not cursor:
                return


def submit_user(client: Client, round_: Round, user: str, count: int, lock: threading.Lock,
                on_progress: Callable[[int], None]) -> None:  # fmt: skip
    """Submit `count` jobs for one user, 100 a batch, each with its own idempotency key; a
    batch that got no answer, or was refused with 503 or 429 (as a whole or item by item),
    is sent again, with the same keys, after its Retry-After."""
    pending = [f"{RUN}-{round_.name}-{user}-{n}" for n in range(count)]
    while pending:
        keys = pending[: round_.batch]
        sent_at = time.monotonic()
        try:
            answer = client.submit_batch(user, keys)
        except requests.RequestException:
            with lock:
                round_.answers[0] += 1  # no answer: it may have been stored; the keys tell
            time.sleep(1)
            continue
        with lock:
            round_.answers[answer.status_code] += 1
            if round_.paused_at(sent_at):
                round_.during_pause[answer.status_code] += 1
        if answer.status_code in (429, 503):
            time.sleep(float(answer.headers.get("Retry-After", "1")))
            continue
        if answer.status_code != 207:
            with lock:
                round_.unexpected.append(f"a batch answered {answer.status_code}: {answer.text}")
            return
        taken: set[str] = set()
        retry_after = 0.0
        for key, result in zip(keys, answer.json()["results"], strict=True):
            status = result["status"]
            if status == 202:
                taken.add(key)
                with lock:
                    round_.accepted[result["job"]["jobId"]] = user
            elif status in (429, 503):
                retry_after = max(retry_after, float(answer.headers.get("Retry-After", "1")))
                with lock:
                    round_.refused_items[status] += 1
            else:
                with lock:
                    round_.unexpected.append(f"an item answered {status}: {result}")
                return
        pending = [key for key in pending if key not in taken]
        on_progress(len(taken))
        if retry_after:
            time.sleep(retry_after)


def run_round(client: Client, name: str, tasks: int, users: int, batch: int = BATCH,
              halfway: Callable[[Round], None] | None = None) -> Round:  # fmt: skip
    round_ = Round(name, batch)
    lock = threading.Lock()
    submitted = [0]
    fired = threading.Event()

    def progress(took: int) -> None:
        with lock:
            submitted[0] += took
            due = halfway is not None and not fired.is_set() and submitted[0] >= tasks // 2
            if due:
                fired.set()
        if due and halfway is not None:
            threading.Thread(target=halfway, args=(round_,), daemon=True).start()

    shares = [tasks // users + (1 if n < tasks % users else 0) for n in range(users)]
    round_.started = time.monotonic()
    threads = [
        threading.Thread(
            target=submit_user,
            args=(client, round_, f"load-{name}-{n}", share, lock, progress),
            daemon=True,
        )
        for n, share in enumerate(shares)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wait_for_all(client, round_, users)
    return round_


def wait_for_all(client: Client, round_: Round, users: int) -> None:
    """Until every accepted job has ended, or none has ended for STALL_SECONDS: read each
    user's list."""
    by_user = {user for user in round_.accepted.values()}
    every = max(1.0, len(round_.accepted) / JOBS_PER_LOOK_SECOND)
    ended, last_change = -1, time.monotonic()
    while True:
        jobs = [job for user in sorted(by_user) for job in client.jobs_of(user)]
        mine = [job for job in jobs if job["jobId"] in round_.accepted]
        now_ended = sum(job["status"] in ENDED for job in mine)
        if now_ended != ended:
            ended, last_change = now_ended, time.monotonic()
        if now_ended == len(mine) == len(round_.accepted):
            round_.finished = time.monotonic()
            break
        if time.monotonic() - last_change > STALL_SECONDS:
            round_.finished = time.monotonic()
            break
        time.sleep(every)
    round_.statuses = Counter(job["status"] for job in mine)
    done = [
        (job["jobId"], round_.accepted[job["jobId"]])
        for job in mine
        if job["status"] == "completed"
    ]
    with ThreadPoolExecutor(max_workers=8) as pool:
        found = pool.map(lambda job: client.latency(*job), done)
        round_.latencies = [seconds for seconds in found if seconds is not None]


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def emulator_pid(port: int) -> int:
    """The process serving the emulator's port (make dev's child, started here)."""
    wanted = ["-m", "local.emulator", "--port", str(port)]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [word.decode(errors="replace") for word in command]
        if any(words[i : i + len(wanted)] == wanted for i in range(len(words))):
            return int(entry.name)
    raise RuntimeError(f"no emulator process on port {port}")


def pause(pid: int, seconds: float) -> Callable[[Round], None]:
    def stop_then_continue(round_: Round) -> None:
        print(f"  pausing the emulator (pid {pid}) for {seconds:g} s", flush=True)
        os.kill(pid, signal.SIGSTOP)
        round_.pause.append(time.monotonic())
        try:
            time.sleep(seconds)
        finally:
            os.kill(pid, signal.SIGCONT)
            round_.pause.append(time.monotonic())
        print("  the emulator runs again", flush=True)

    return stop_then_continue


@contextmanager
def stack(workdir: Path) -> Iterator[Any]:
    from local.launcher import local_stack

    log = workdir / "dev.log"
    print(f"starting make dev (log: {log})", flush=True)
    with local_stack(log, data_dir=workdir / ".taskstatus") as endpoints:
        yield endpoints


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=int(os.environ.get("TASKS", TASKS)))
    parser.add_argument("--users", type=int, default=int(os.environ.get("USERS", USERS)))
    parser.add_argument(
        "--pause", type=float, default=float(os.environ.get("PAUSE", PAUSE_SECONDS))
    )
    parser.add_argument("--batch", type=int, default=int(os.environ.get("BATCH", BATCH)))
    args = parser.parse_args(argv)
    from local.stack import JWT_SECRET
    from local.token import mint_token

    with (
        tempfile.TemporaryDirectory(prefix="taskstatus-load-") as folder,
        stack(Path(folder)) as endpoints,
    ):
        client = Client(endpoints.api, lambda user: mint_token(user, JWT_SECRET, 3600))
        port = int(endpoints.emulator.rsplit(":", 1)[1])
        print(f"{args.tasks} tasks of {args.users} users, {args.batch} a batch, per round")
        steady = run_round(client, "steady", args.tasks, args.users, args.batch)
        print(steady.summary(), flush=True)
        stop = pause(emulator_pid(port), args.pause)
        paused = run_round(client, "paused", args.tasks, args.users, args.batch, stop)
        print(paused.summary(), flush=True)
        problems = [f"{r.name}: {p}" for r in (steady, paused) for p in r.problems()]
        if problems:  # keep make dev's log to see why
            kept = ROOT / "build" / "load" / "dev.log"
            kept.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(Path(folder) / "dev.log", kept)
            print(f"make dev's log: {kept}", flush=True)
    for problem in problems:
        print(f"FAILED {problem}", flush=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
