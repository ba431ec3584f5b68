"""`make mutate`: mutation testing of the guards, with mutmut, and the score.

The guards are the code whose failure would let one user reach another's data,
accept a forged token, reach an internal address or lose a race: the version and
status conditions of every status write, token verification (algorithm, expiry,
issuer, audience, scopes, JWKS freshness), the SSRF check and the object-prefix
check. Each is mutated (mutmut's operators: flipped comparisons and booleans,
dropped operands, changed constants and strings) and the unit tests that cover it
must fail for every mutant. Messages and log lines are not mutated (their wording
is not a guard); see `do_not_mutate_patterns` in pyproject.toml.

A guard is a mutmut name pattern, `<module>.x_<function>__*` or
`<module>.xǁ<Class>ǁ<method>__*`. A pattern that names no mutant (the function moved,
was renamed, is decorated, or its file is not in pyproject's `only_mutate`) would be a
guard silently not tested: before it runs anything, the tool asks mutmut's own mutator
which mutants the files make and refuses to run (exit 2) while a pattern matches none.

    python -m tools.mutate            # run, then print the score per group and every survivor
    python -m tools.mutate cors http  # only the guards whose group or pattern names one of these
"""

from __future__ import annotations

import fnmatch
import re
import subprocess
import sys
import tomllib
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTMUT = str(Path(sys.executable).parent / "mutmut")

# The guards by group: the score is recorded per group in docs/testing.md.
GROUPS: dict[str, list[str]] = {
    # the version guard: every status write is conditional on the status and version read
    "version guard": [
        "chalicelib.store.xǁTaskStoreǁsave__*",
        "chalicelib.store.x__holds__*",
        "chalicelib.store.items.x_owner_scoped__*",
        "chalicelib.store.items.x_shard_of__*",
    ],
    # idempotency keys: a key replays only its own request, and only while it lives
    "idempotency keys": [
        "chalicelib.store.keys.xǁKeyRecordǁreplay_or_conflict__*",
        "chalicelib.store.keys.xǁKeyRecordǁis_live__*",
    ],
    # token checks: algorithm pinning, expiry, issuer, audience, owner claim, JWKS freshness
    "tokens": [
        "chalicelib.edge.auth.x__verify_hs256__*",
        "chalicelib.edge.auth.x__verify_rs256__*",
        "chalicelib.edge.hs256.x_decode__*",
        "chalicelib.edge.hs256.x__number__*",
        "chalicelib.edge.hs256.x__check_claims__*",
        "chalicelib.edge.auth.x_verify_claims__*",
        "chalicelib.edge.auth.x_jwt_principal__*",
        "chalicelib.edge.auth.xǁJwksCacheǁkey__*",
    ],
    # who is an operator: the scope, a group or an app role in the token; the console's routes
    "operator": [
        "chalicelib.edge.auth.x_is_operator__*",
        "chalicelib.edge.auth.x_token_scopes__*",
        "chalicelib.edge.auth.x_memberships__*",
        "chalicelib.edge.middleware.x_is_operator_route__*",
    ],
    # SSRF, and one time budget for a batch's webhook lookups
    "ssrf": [
        "chalicelib.webhooks.ssrf.x_forbidden__*",
        "chalicelib.webhooks.ssrf.x__addresses__*",
        "chalicelib.webhooks.ssrf.x__refused__*",
        "chalicelib.webhooks.ssrf.x_check_url__*",
        "chalicelib.webhooks.ssrf.xǁLookupBudgetǁ__call____*",
        "chalicelib.webhooks.ssrf.xǁLookupBudgetǁ_look_up__*",
        # webhooks connect to the address the SSRF check pinned, never a fresh lookup
        "chalicelib.webhooks.outbound.x__connect__*",
    ],
    # objects: each owner's own prefix; presigned URLs: the owner's own keys, their life
    "objects": [
        "chalicelib.objects.x_owner_prefix__*",
        "chalicelib.objects.x_key_problem__*",
        "chalicelib.objects.x__outside_prefix__*",
        # an external job's objects: the service signs only its own bucket
        "chalicelib.objects.x_presign__*",
        "chalicelib.objects.x_presign_upload__*",
        "chalicelib.objects.x_result_url__*",
    ],
    # webhook signing: each owner's own secret
    "signing": [
        "chalicelib.webhooks.signing.x__key_bytes__*",
        "chalicelib.webhooks.signing.x_owner_secret__*",
        "chalicelib.webhooks.signing.x_owner_secrets__*",
    ],
    # producers: reports and heartbeats only on an external job of an owner the caller acts for
    "producers": [
        "chalicelib.reports.xǁActingForǁallows__*",
        "chalicelib.reports.xǁActingForǁcondition__*",
        "chalicelib.reports.x__check_reportable__*",
        "chalicelib.reports.x_matches_etag__*",
        "chalicelib.reports.x_report__*",
        "chalicelib.reports.x_heartbeat__*",
        "chalicelib.edge.middleware.x_required_scope__*",
    ],
    # service keys: only they name an owner, and only one they act for; their scopes and
    # pools; a pool is worked only with a service key naming it
    "service keys": [
        "chalicelib.reports.x_owner_for__*",
        "chalicelib.edge.service_keys.x_check__*",
        "chalicelib.edge.service_keys.x_check_pools__*",
        "chalicelib.edge.service_keys.xǁServiceKeysǁcreate__*",
        "chalicelib.claims.x_authorize__*",
    ],
    # owner checks on every surface: REST, 000/001/002/003's contracts, redrive, WebSocket
    "owner checks": [
        "chalicelib.service.xǁTaskServiceǁget_owned__*",
        # every list of a user's tasks: the owner's partition of by_owner, a type a filter
        "chalicelib.store.xǁTaskStoreǁquery_owned__*",
        "chalicelib.contracts.jobs.x__owned_job__*",
        "chalicelib.contracts.assembly.x_handle__*",
        "chalicelib.contracts.autovid.x_status__*",
        "chalicelib.contracts.task_processor.x_get_task__*",
        "chalicelib.contracts.task_status.x_get_task__*",
        "chalicelib.service.xǁTaskServiceǁreplayed__*",
        "chalicelib.realtime.xǁRealtimeǁ_subscription__*",
        "chalicelib.edge.api_keys.xǁApiKeyStoreǁrevoke__*",
        "chalicelib.edge.api_keys.xǁApiKeyStoreǁuse__*",
    ],
    # scopes, and which credential a request carries
    "scopes": [
        "chalicelib.edge.middleware.x__authorize__*",
        "chalicelib.edge.auth.xǁPrincipalǁrequire__*",
    ],
    # expiry: API keys (and their cap), a WebSocket connection's credential
    "expiry": [
        "chalicelib.edge.api_keys.xǁApiKeyǁexpired__*",
        "chalicelib.edge.api_keys.xǁKeyAuthenticationǁauthenticate__*",
        "chalicelib.edge.api_keys.x_key_expiry__*",
        "chalicelib.realtime.subscriptions.xǁCredentialǁended__*",
    ],
    "cors": [
        "chalicelib.edge.cors.x_allowed_origin__*",
        "chalicelib.edge.cors.x_decorate__*",
        "chalicelib.edge.cors.x_preflight__*",
    ],
    # public reads by id; list cursors: signed, bound to the caller and the query
    "http": [
        "chalicelib.edge.http.x_public_read__*",
        "chalicelib.edge.http.x_reader__*",
        "chalicelib.edge.http.x__cursor_mac__*",
        "chalicelib.edge.http.x_encode_cursor__*",
        "chalicelib.edge.http.x_decode_cursor__*",
    ],
    # the worker's lease
    "lease": [
        "chalicelib.store.xǁTaskStoreǁclaim__*",
        "chalicelib.service.xǁTaskServiceǁclaim__*",
    ],
    # a remote worker's claim: a report, heartbeat or hand-back only under the live lease
    "claim fencing": [
        "chalicelib.claims.x__take__*",
        "chalicelib.claims.x__taken_before__*",
        "chalicelib.claims.xǁClaimKeyǁof__*",
        "chalicelib.claims.x_check_lease__*",
        "chalicelib.claims.x_extend__*",
        "chalicelib.claims.x__move_lease__*",
        "chalicelib.claims.x_release__*",
    ],
    # fair concurrency: the gates (owner, type group, key), their slots and their lines
    "gates": [
        "chalicelib.fairness.xǁSlotsǁgates__*",
        "chalicelib.fairness.xǁSlotsǁacquire__*",
        "chalicelib.fairness.xǁSlotsǁ_take__*",
        "chalicelib.fairness.xǁSlotsǁ_acquire_one__*",
        "chalicelib.fairness.xǁSlotsǁ_acquire_all__*",
        "chalicelib.fairness.xǁSlotsǁrelease__*",
        "chalicelib.fairness.xǁSlotsǁrelease_gate__*",
        "chalicelib.fairness.xǁSlotsǁadmit_next__*",
        "chalicelib.fairness.xǁSlotsǁunlist_if_idle__*",
    ],
    # a schedule's fire creates its task once: one id per fire time, the advance conditional
    "schedule fire": [
        "chalicelib.schedules.x_fire_id__*",
        "chalicelib.schedules.xǁScheduleStoreǁreplace__*",
        "chalicelib.schedules.xǁSweeperǁfire__*",
        "chalicelib.schedules.xǁSweeperǁ_create_task__*",
        "chalicelib.schedules.xǁSweeperǁ_advance__*",
    ],
    # the delayed-run sweep
    "sweep": [
        "chalicelib.store.xǁTaskStoreǁrelease__*",
        "chalicelib.service.xǁTaskServiceǁrelease_due__*",
    ],
}
GUARDS = [pattern for patterns in GROUPS.values() for pattern in patterns]

# Survivors read one by one and left alive because no behaviour tells them apart (2026-12-07,
# the groups added after the reorganisation; the older groups' are in docs/testing.md):
# - everywhere: `AND`, `SET`, `DELETE` written in lower case (DynamoDB keywords are
#   case-insensitive); an error message's wording ("XX...XX", upper case) where the status
#   answered is what a client acts on; a falsy default passed as None (`strict=None`,
#   `own_retry=None`, `held=None`).
# - claims.release: the lease's fields left on a task handed back. It is `retrying`, so
#   check_lease refuses every token on it, a claim ignores a lease on a task not running, the
#   deadline index reads the lease only while running, and the next claim overwrites all three.
# - claims.check_lease and _take: `(lease_until or 1)` for `or 0` (no lease is over either way).
# - claims._take: a live-leased task's message hidden for 43201 s instead of 43200 (a lease is
#   minutes), or a second longer or shorter, or until 1 s from now: when SQS shows it again is
#   SQS's clock, which a test would wait on; and moto accepts the negative visibility timeout
#   that SQS would refuse (`- 1` at a lease's last second).
# - schedules.Sweeper.fire: `updated`'s `held` (every path ends in `_advance`, which sets it);
#   `skipped = dropped` for `+=` (the outcome starts at 0); `"missed" if dropped or True` (with
#   nothing dropped a fire, skip or hold always sets its own outcome); the ids appended to
#   `outcome.fired` (only their count is read).
# - schedules.Sweeper.fire and _create_task: the fire's task built with now=None (Task.new
#   takes the clock's now, which is the sweep's: the service clock is utcnow).
# - schedules.Sweeper._advance: version + 2 (any rise fences the next write).
# - fairness.Slots._acquire_all: CancellationReasons' default and zip's strict (DynamoDB gives
#   one reason per item of a cancelled transaction).
# - fairness.Slots.gates: the key gate's `key#` prefix in another spelling (it only keeps the
#   scopes of kinds apart; a listed key gate is read back by its stored kind and limit), and
#   `key is not None or key_limit` (a job's concurrency carries both or neither).
# - fairness.Slots.acquire: True for a task no gate applies to (the worker then frees its
#   slots: none).
# - fairness.Slots.admit_next: reading up to 500 parked tasks for `limit` (the loop stops at
#   the first the full gate blocks: the cost of the Query, not what is admitted); `break` for
#   `continue` after moving a task to another gate's line (the reaper calls admit_next twice
#   for a gate whose lost releases it freed, so the next in line is reached either way).
# - webhooks.outbound._connect: socket.socket's type left to its default (SOCK_STREAM).
# - cors.preflight: ROUTE_METHODS' default for a path it does not hold (an OPTIONS reaches the
#   middleware only on a route register_preflights gave one, so every path is in it).
# - objects._outside_prefix: the wording of the key's refusal (its test checks it names the
#   '..' segments, which the upper-cased and XX-wrapped mutants still do).
# - fairness.Slots.unlist_if_idle: its answer (its one caller, admit_parked, ignores it), and
#   Limit 2 for 1 on the emptiness check.
# - service_keys.ServiceKeys.create: created_at's microsecond (stored to the second); no
#   condition on the put (the key's id is the digest of 32 random bytes: never taken).

_RESULT = re.compile(r"^\s*(\S+): (.+)$")
_FUNCTION = re.compile(r"\.x(?:_|ǁ)")


def results() -> dict[str, str]:
    output = subprocess.run(
        [MUTMUT, "results", "--all", "true"], cwd=ROOT, capture_output=True, text=True
    ).stdout
    found = {}
    for line in output.splitlines():
        match = _RESULT.match(line)
        if match and "__mutmut_" in match.group(1):
            found[match.group(1)] = match.group(2).strip()
    return found


def chosen(words: list[str]) -> list[str]:
    """The guards whose group or pattern contains one of `words`; every guard when none."""
    return [
        pattern
        for group, patterns in GROUPS.items()
        for pattern in patterns
        if not words or any(word in group or word in pattern for word in words)
    ]


def module_of(pattern: str) -> str:
    """`chalicelib.edge.auth` of `chalicelib.edge.auth.x_decode__*`."""
    match = _FUNCTION.search(pattern)
    return pattern[: match.start()] if match else pattern


def source_of(module: str, root: Path = ROOT) -> Path:
    """The file mutmut names `module` after (a package's module is its `__init__.py`)."""
    path = Path(*module.split("."))
    package = path / "__init__.py"
    return package if (root / package).exists() else path.with_suffix(".py")


def mutated_files(root: Path = ROOT) -> list[str]:
    """pyproject's [tool.mutmut] only_mutate: the files mutmut mutates at all."""
    config = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["mutmut"]
    return list(config.get("only_mutate", []))


def mutant_names(paths: Iterable[Path], root: Path = ROOT) -> set[str]:
    """Every mutant mutmut makes of these files, named as `mutmut results` names them
    (mutmut's own mutator: its rules of what is mutated hold, decorated functions and
    `# pragma: no mutate` included)."""
    from mutmut.mutation.file_mutation import mutate_file_contents
    from mutmut.utils.format_utils import get_mutant_name

    names = set()
    for path in paths:
        made = mutate_file_contents(str(path), (root / path).read_text())
        names.update(get_mutant_name(path, name) for name in made.mutant_names)
    return names


def unmatched(guards: list[str], root: Path = ROOT) -> list[str]:
    """The guards that name no mutant: each is a guard that would silently go untested."""
    allowed = mutated_files(root)
    files = {source_of(module_of(g), root) for g in guards}
    mutated = [f for f in files if any(fnmatch.fnmatch(str(f), p) for p in allowed)]
    names = mutant_names(sorted(mutated), root)
    return [g for g in guards if not any(fnmatch.fnmatch(name, g) for name in names)]


def score(outcome: dict[str, str], guards: list[str]) -> None:
    """Killed/total per group of the guards run."""
    for group, patterns in GROUPS.items():
        run = [p for p in patterns if p in guards]
        statuses = [s for n, s in outcome.items() if any(fnmatch.fnmatch(n, p) for p in run)]
        if statuses:
            killed = statuses.count("killed")
            print(f"  {group}: {killed}/{len(statuses)} killed")


def main(words: list[str], root: Path = ROOT) -> int:
    guards = chosen(words)
    if not guards:
        print(f"no guard matches {' '.join(words)}; see GUARDS in tools/mutate.py")
        return 2
    missing = unmatched(guards, root)
    if missing:
        print("these guards name no mutant, so nothing would test them:", file=sys.stderr)
        for pattern in missing:
            where = source_of(module_of(pattern), root)
            print(f"  {pattern}: is {where} in only_mutate, with that function", file=sys.stderr)
        print("fix GUARDS in tools/mutate.py or only_mutate in pyproject.toml", file=sys.stderr)
        return 2
    run = subprocess.run([MUTMUT, "run", *guards], cwd=root, check=False)
    if run.returncode != 0:  # its clean run or its stats failed: no mutant was tried
        print(f"mutmut run failed ({run.returncode}): no score", file=sys.stderr)
        return run.returncode
    # mutmut lists every mutant of the files; the score is that of the guards run above.
    outcome = {
        name: status
        for name, status in results().items()
        if any(fnmatch.fnmatch(name, pattern) for pattern in guards)
    }
    counts = Counter(outcome.values())
    killed = counts.get("killed", 0)
    total = sum(counts.values())
    survivors = sorted(name for name, status in outcome.items() if status != "killed")
    print(f"\nmutation score of the guards: {killed}/{total} killed", end="")
    print(f" ({100 * killed / total:.1f} %)" if total else "")
    for status, count in sorted(counts.items()):
        print(f"  {status}: {count}")
    score(outcome, guards)
    for name in survivors:
        print(f"  {outcome[name]}: {name}   (mutmut show {name})")
    return 1 if survivors else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
