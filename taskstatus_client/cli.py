"""`taskstatus`: submit, follow and manage jobs from a shell.

    taskstatus submit demo/sleep --input '{"seconds": 3, "steps": 6}' --watch
    taskstatus submit demo/sleep --delay 600            # scheduled: starts in 10 minutes
    taskstatus batch jobs.json                          # up to 100 job requests, one line each
    taskstatus list --status completed --json
    taskstatus watch 5b0c9f3e-...            # a live progress bar; exit 1 if the job fails
    taskstatus events 5b0c9f3e-...           # its history: every version, who wrote it
    taskstatus retry 5b0c9f3e-... --watch    # run a failed or cancelled job again
    taskstatus redrive --status failed --since 2026-11-24T00:00:00Z --dry-run

Configuration: --url / TASKSTATUS_URL, --token / TASKSTATUS_TOKEN, --ws-url /
TASKSTATUS_WS_URL; without them, the running `make dev` of the checkout you are in
(`.taskstatus/local.json`: its URLs and dev token), else http://127.0.0.1:8000.
`--json` goes before or after the command.
Exit codes: 0 done, 1 the job failed or was cancelled, 2 refused request or
usage error, 3 the service could not be reached or failed, 4 `watch`/`--watch`
gave up (`--timeout`) before the job finished.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from taskstatus_client.client import AUTO, TaskStatusClient
from taskstatus_client.errors import ConnectionFailed, ServerError, TaskStatusError, WaitTimeout

EXIT_OK, EXIT_JOB_FAILED, EXIT_REFUSED, EXIT_UNAVAILABLE, EXIT_TIMEOUT = 0, 1, 2, 3, 4


def _json_arg(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="taskstatus", description="Submit and follow taskstatus jobs."
    )
    root.add_argument("--url", default=os.environ.get("TASKSTATUS_URL"))
    root.add_argument("--token", default=os.environ.get("TASKSTATUS_TOKEN"))
    root.add_argument("--ws-url", default=os.environ.get("TASKSTATUS_WS_URL"))
    root.add_argument("--json", action="store_true", help="machine-readable output")
    # `--json` after the command too; SUPPRESS keeps the root's value when it is not given.
    output = argparse.ArgumentParser(add_help=False)
    output.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output"
    )
    commands = root.add_subparsers(dest="command", required=True)

    submit = commands.add_parser("submit", parents=[output], help="submit a job")
    submit.add_argument("type")
    submit.add_argument("--input", type=_json_arg, default={})
    submit.add_argument("--metadata", type=_json_arg)
    submit.add_argument("--webhook")
    submit.add_argument(
        "--run-at", help="start no earlier than this ISO-8601 time (2030-01-01T09:00:00Z)"
    )
    submit.add_argument(
        "--delay", type=int, help="start no earlier than this many seconds from now"
    )
    submit.add_argument(
        "--priority", type=int, help="0 (lowest) to 9; orders it among jobs waiting (default 5)"
    )
    submit.add_argument(
        "--concurrency",
        type=_concurrency_arg,
        help="KEY=LIMIT: at most LIMIT of your jobs with KEY run at once (customer-42=2)",
    )
    submit.add_argument("--idempotency-key", default="auto")
    submit.add_argument("--watch", action="store_true", help="follow it to the end")
    submit.add_argument("--timeout", type=float, help="with --watch: give up after (exit 4)")

    batch = commands.add_parser(
        "batch", parents=[output], help="submit up to 100 jobs from a JSON array (a file or -)"
    )
    batch.add_argument("file", type=argparse.FileType("r"))

    get = commands.add_parser("get", parents=[output], help="show a job")
    get.add_argument("job_id")

    listing = commands.add_parser("list", parents=[output], help="list your jobs, newest first")
    listing.add_argument("--status")
    listing.add_argument("--type")
    listing.add_argument("--limit", type=int, default=20, help="how many jobs at most")

    cancel = commands.add_parser("cancel", parents=[output], help="cancel a job")
    cancel.add_argument("job_id")

    watch = commands.add_parser(
        "watch", parents=[output], help="follow a job to the end with a progress bar"
    )
    watch.add_argument("job_id")
    watch.add_argument("--timeout", type=float, help="give up after this many seconds (exit 4)")

    events = commands.add_parser(
        "events", parents=[output], help="a job's history: every version and who wrote it"
    )
    events.add_argument("job_id")

    retry = commands.add_parser(
        "retry", parents=[output], help="run a failed or cancelled job again (same id)"
    )
    retry.add_argument("job_id")
    retry.add_argument("--idempotency-key", default="auto")
    retry.add_argument("--watch", action="store_true", help="follow it to the end")
    retry.add_argument("--timeout", type=float, help="with --watch: give up after (exit 4)")

    redrive = commands.add_parser(
        "redrive", parents=[output], help="retry your failed (or cancelled) jobs in bulk"
    )
    redrive.add_argument("--status", choices=["failed", "cancelled"], default="failed")
    redrive.add_argument("--type")
    redrive.add_argument("--since", help="submitted at or after (ISO-8601 with a zone)")
    redrive.add_argument("--until", help="submitted at or before (ISO-8601 with a zone)")
    redrive.add_argument("--dry-run", action="store_true", help="count them, change nothing")

    commands.add_parser(
        "webhook-secret",
        parents=[output],
        help="print your webhook signing secret (verify deliveries with it)",
    )

    schedules = commands.add_parser(
        "schedules", parents=[output], help="create, list, pause, resume, delete schedules"
    )
    actions = schedules.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", parents=[output], help="create a schedule")
    create.add_argument("type")
    when = create.add_mutually_exclusive_group(required=True)
    when.add_argument("--cron", help="5 fields, e.g. '30 2 * * *'")
    when.add_argument("--rate", help="e.g. '5 minutes'")
    create.add_argument("--input", type=_json_arg, default={})
    create.add_argument("--timezone", default="UTC")
    create.add_argument("--overlap", choices=["skip", "queue", "allow"], default="skip")
    create.add_argument("--catch-up", choices=["none", "latest", "all"], default="none")
    create.add_argument("--paused", action="store_true")
    actions.add_parser("list", parents=[output], help="your schedules and their next runs")
    for action in ("get", "pause", "resume", "delete"):
        actions.add_parser(action, parents=[output]).add_argument("schedule_id")

    worker = commands.add_parser(
        "worker",
        help="work a pool: claim its jobs and run them with your processors "
        "(TASKSTATUS_API_KEY: a service key issued with the pool)",
    )
    worker.add_argument("--pool", required=True, help="the pool to work (WORKER_POOLS)")
    worker.add_argument(
        "--processors",
        required=True,
        help="comma-separated modules of processors (taskstatus_client.worker.processor)",
    )
    worker.add_argument("--concurrency", type=int, default=4, help="jobs run at once")
    worker.add_argument(
        "--grace-seconds",
        type=float,
        default=30,
        help="on SIGTERM: how long running jobs may finish before they are handed back",
    )
    worker.add_argument("--api-key", default=os.environ.get("TASKSTATUS_API_KEY"))

    token = commands.add_parser(
        "token", parents=[output], help="mint a token for the local stage (make dev)"
    )
    token.add_argument("user", nargs="?", default="dev-user")
    token.add_argument("--secret", default=os.environ.get("TASKSTATUS_JWT_SECRET"))
    token.add_argument("--days", type=int, default=7)
    return root


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:
        return EXIT_REFUSED if exc.code else EXIT_OK
    try:
        if args.command == "token":
            print(_local_token(args), file=out)
            return EXIT_OK
        if args.command == "worker":
            return _work_pool(args, out)
        try:
            ws_url = args.ws_url or AUTO
            client = TaskStatusClient(args.url, args.token, ws_url=ws_url)
        except ValueError as exc:
            print(str(exc).replace("pass one", "pass --token"), file=sys.stderr)
            return EXIT_REFUSED
        return COMMANDS[args.command](client, args, out)
    except WaitTimeout as exc:
        print(f"timeout: {exc}", file=sys.stderr)
        return EXIT_TIMEOUT
    except (ConnectionFailed, ServerError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except TaskStatusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_REFUSED


def _work_pool(args: argparse.Namespace, out: TextIO) -> int:
    """`taskstatus worker`: runs until SIGTERM or Ctrl-C, then winds down (remote.py)."""
    import signal

    from taskstatus_client.remote import RemoteWorker
    from taskstatus_client.reporter import Reporter
    from taskstatus_client.worker import load_processors

    if not args.api_key:
        print(
            "worker: set TASKSTATUS_API_KEY to a service key issued with the pool "
            f"(make service-key NAME=<n> OWNERS=<owners> POOLS={args.pool})",
            file=sys.stderr,
        )
        return EXIT_REFUSED
    try:
        processors = load_processors(args.processors.replace(",", " ").split())
    except (ImportError, ValueError) as exc:
        print(f"worker: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    reporter = Reporter(args.url, api_key=args.api_key)
    worker = RemoteWorker(
        reporter,
        args.pool,
        processors,
        concurrency=max(1, args.concurrency),
        grace_seconds=max(0.0, args.grace_seconds),
        out=out,
    )
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: worker.stop())
    types = ", ".join(sorted(processors)) or "none"
    print(f"working pool {args.pool} with {worker.concurrency} threads: {types}", file=out)
    out.flush()
    worker.run()
    print(f"stopped: {worker.completed} jobs completed", file=out)
    return EXIT_OK


def _show(job: Any, args: argparse.Namespace, out: TextIO) -> None:
    if args.json:
        print(job.model_dump_json(), file=out)
        return
    progress = (
        f" {job.progress.current}/{job.progress.total} {job.progress.message}"
        if job.progress
        else ""
    )
    print(f"{job.jobId}  {job.type}  {job.status.value}{progress}", file=out)
    if job.runAt and job.status.value == "scheduled":
        print(f"  runs at: {job.runAt}", file=out)
    if job.result is not None:
        print(f"  result: {json.dumps(job.result)}", file=out)
    if job.error:
        print(f"  error: {job.error}", file=out)


def _exit_for(job: Any) -> int:
    return (
        EXIT_OK if job.status.value in {"completed", "completed_with_errors"} else EXIT_JOB_FAILED
    )


def _concurrency_arg(raw: str) -> tuple[str, int]:
    key, sign, limit = raw.rpartition("=")
    if not sign or not key or not limit.isdigit():
        raise argparse.ArgumentTypeError(f"expected KEY=LIMIT (customer-42=2), got {raw!r}")
    return key, int(limit)


def _submit(client: TaskStatusClient, args: argparse.Namespace, out: TextIO) -> int:
    key = None if args.idempotency_key == "none" else args.idempotency_key
    job = client.submit(
        args.type,
        args.input,
        metadata=args.metadata,
        webhook=args.webhook,
        idempotency_key=key,
        run_at=args.run_at,
        delay_seconds=args.delay,
        priority=args.priority,
        concurrency=args.concurrency,
    )
    if not args.watch:
        _show(job, args, out)
        return EXIT_OK
    return _follow(client, job.jobId, args, out, args.timeout)


def _batch(client: TaskStatusClient, args: argparse.Namespace, out: TextIO) -> int:
    """One line per job, in order; exit 2 if any job was refused."""
    try:
        jobs = json.load(args.file)
    except json.JSONDecodeError as exc:
        print(f"error: {args.file.name} is not JSON: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    if not isinstance(jobs, list):
        print("error: the file must hold a JSON array of job requests", file=sys.stderr)
        return EXIT_REFUSED
    results = client.submit_batch(jobs)
    for result in results:
        if args.json:
            print(result.model_dump_json(), file=out)
        elif result.job is not None:
            _show(result.job, args, out)
        else:
            message = result.error.message if result.error else ""
            print(f"#{result.index}  refused ({result.status}): {message}", file=out)
    return EXIT_OK if all(r.status == 202 for r in results) else EXIT_REFUSED


def _get(client: TaskStatusClient, args: argparse.Namespace, out: TextIO) -> int:
    _show(client.get(args.job_id), args, out)
    return EXIT_OK


def _list(client: TaskStatusClient, args: argparse.Namespace, out: TextIO) -> int:
    """A line per job; a person is told when there is none (`--json` stays empty, one per line)."""
    shown = 0
    for shown, job in enumerate(client.list(status=args.status, type=args.type), start=1):
        _show(job, args, out)
        if shown >= args.limit:
            break
    if shown == 0 and not args.json:
        print(_no_jobs(args), file=out)
    return EXIT_OK


def _no_jobs(args: argparse.Namespace) -> str:
    filters = [f"{name}={value}" for name in ("status", "type") if (value := getattr(args, name))]
    return f"no jobs ({', '.join(filters)})" if filters else "no jobs"


def _cancel(client: TaskStatusClient, args: argparse.Namespace, out: TextIO) -> int:
    _show(client.cancel(args.job_id), args, out)
    return EXIT_OK


def _watch(client: TaskStatusClient, args: argparse.Namespace, out: TextIO) -> int:
    return _follow(client, args.job_id, args, out, args.timeout)


def _follow(
    client: TaskStatusClient,
    job_id: str,
    args: argparse.Namespace,
    out: TextIO,
    timeout: float | None,
) -> int:
    """Follow a job: a rich progress bar on a terminal, a line per update otherwise."""
    if args.json:
        job = client.wait(job_id, timeout, lambda update: print(json.dumps(update), file=out))
        _show(job, args, out)
        return _exit_for(job)
    if out.isatty():
        return _follow_with_bar(client, job_id, args, out, timeout)

    def line(update: dict[str, Any]) -> None:
        progress = update.get("progress") or {}
        bar = (
            f" [{progress['current']}/{progress['total']}] {progress['message']}"
            if progress
            else ""
        )
        print(f"{update['status']}{bar}", file=out, flush=True)

    job = client.wait(job_id, timeout, line)
    _show(job, args, out)
    return _exit_for(job)


def _follow_with_bar(
    client: TaskStatusClient,
    job_id: str,
    args: argparse.Namespace,
    out: TextIO,
    timeout: float | None,
) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(file=out)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as bar:
        row = bar.add_task(f"{job_id[:8]} submitted", total=None)

        def update(state: dict[str, Any]) -> None:
            progress = state.get("progress") or {}
            description = f"{job_id[:8]} {state['status']} {progress.get('message', '')}".rstrip()
            bar.update(
                row,
                description=description,
                completed=progress.get("current", 0),
                total=progress.get("total") or None,
            )

        job = client.wait(job_id, timeout, update)
        if job.progress:
            bar.update(row, completed=job.progress.total, total=job.progress.total)
        bar.update(row, description=f"{job_id[:8]} {job.status.value}")
    _show(job, args, out)
    return _exit_for(job)


def _local_token(args: argparse.Namespace) -> str:
    import time

    import jwt

    secret = args.secret
    if not secret:
        config = Path(".chalice/config.json")
        if not config.exists():
            raise TaskStatusError(
                "no secret: pass --secret, set TASKSTATUS_JWT_SECRET, or run in the repo"
            )
        secret = json.loads(config.read_text())["stages"]["local"]["environment_variables"][
            "JWT_SECRET"
        ]
    now = int(time.time())
    claims = {"sub": args.user, "iat": now, "exp": now + args.days * 86400}
    return jwt.encode(claims, secret, "HS256")


def _events(client: TaskStatusClient, args: argparse.Namespace, out: TextIO) -> int:
    for event in client.events(args.job_id):
        if args.json:
            print(event.model_dump_json(exclude_none=True), file=out)
            continue
        progress = (
            f"  {event.progress.current}/{event.progress.total} {event.progress.message}"
            if event.progress
            else ""
        )
        error = f"  error: {event.error}" if event.error else ""
        line = f"v{event.version:<4} {event.at}  {event.status.value:<21} by {event.by}"
        print(f"{line}{progress}{error}", file=out)
    return EXIT_OK


def _retry(client: TaskStatusClient, args: argparse.Namespace, out: TextIO) -> int:
    key = None if args.idempotency_key == "none" else args.idempotency_key
    job = client.retry(args.job_id, idempotency_key=key)
    if not args.watch:
        _show(job, args, out)
        return EXIT_OK
    return _follow(client, job.jobId, args, out, args.timeout)


def _redrive(client: TaskStatusClient, args: argparse.Namespace, out: TextIO) -> int:
    result = client.redrive(
        args.status, type=args.type, since=args.since, until=args.until, dry_run=args.dry_run
    )
    if args.json:
        print(result.model_dump_json(), file=out)
        return EXIT_OK
    verb = "would retry" if result.dryRun else "retried"
    skipped = f" ({result.skipped} changed meanwhile, left as they were)" if result.skipped else ""
    print(f"{verb} {result.count} {args.status} job(s){skipped}", file=out)
    for job_id in result.jobIds:
        print(f"  {job_id}", file=out)
    return EXIT_OK


def _webhook_secret(client: TaskStatusClient, args: argparse.Namespace, out: TextIO) -> int:
    secrets = client.webhook_secrets()
    print(secrets.model_dump_json(exclude_none=True) if args.json else secrets.secret, file=out)
    return EXIT_OK


def _show_schedule(schedule: dict[str, Any], args: argparse.Namespace, out: TextIO) -> None:
    if args.json:
        print(json.dumps(schedule), file=out)
        return
    when = schedule["cron"] or schedule["rate"]
    state = "paused" if schedule["paused"] else f"next {', '.join(schedule['nextRuns'][:3])}"
    print(
        f"{schedule['scheduleId']}  {schedule['type']}  {when} ({schedule['timezone']})  {state}",
        file=out,
    )
    if schedule.get("lastRun"):
        last = schedule["lastRun"]
        print(f"  last: {last['scheduledFor']} {last['outcome']} {last['jobId'] or ''}", file=out)


def _schedules(client: TaskStatusClient, args: argparse.Namespace, out: TextIO) -> int:
    if args.action == "create":
        created = client.create_schedule(
            args.type,
            args.input,
            cron=args.cron,
            rate=args.rate,
            timezone=args.timezone,
            overlap=args.overlap,
            catch_up=args.catch_up,
            paused=args.paused,
        )
        _show_schedule(created, args, out)
    elif args.action == "list":
        found = client.schedules()
        for schedule in found:
            _show_schedule(schedule, args, out)
        if not found and not args.json:
            print("no schedules", file=out)
    elif args.action == "delete":
        client.delete_schedule(args.schedule_id)
        if not args.json:
            print(f"deleted {args.schedule_id}", file=out)
    elif args.action == "get":
        _show_schedule(client.get_schedule(args.schedule_id), args, out)
    else:
        paused = args.action == "pause"
        _show_schedule(client.update_schedule(args.schedule_id, paused=paused), args, out)
    return EXIT_OK


COMMANDS = {
    "schedules": _schedules,
    "submit": _submit,
    "batch": _batch,
    "get": _get,
    "list": _list,
    "cancel": _cancel,
    "watch": _watch,
    "events": _events,
    "retry": _retry,
    "redrive": _redrive,
    "webhook-secret": _webhook_secret,
}

if __name__ == "__main__":
    sys.exit(main())
