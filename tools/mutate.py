"""`make mutate`: mutation testing of the guards, with mutmut, and the score.

The guards are the code whose failure would let one user reach another's data,
accept a forged token, reach an internal address or lose a race: the version and
status conditions of every status write, token verification (algorithm, expiry,
issuer, audience, scopes, JWKS freshness), the SSRF check and the object-prefix
check. Each is mutated (mutmut's operators: flipped comparisons and booleans,
dropped operands, changed constants and strings) and the unit tests that cover it
must fail for every mutant. Messages and log lines are not mutated (their wording
is not a guard); see `do_not_mutate_patterns` in pyproject.toml.

    python -m tools.mutate            # run, then print the score and every survivor
    python -m tools.mutate cors http  # only the guards whose pattern names one of these
"""

from __future__ import annotations

import fnmatch
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTMUT = str(Path(sys.executable).parent / "mutmut")

GUARDS = [
    # the version guard: every status write is conditional on the status and version read
    "chalicelib.store.xǁTaskStoreǁsave__*",
    "chalicelib.store.items.x_owner_scoped__*",
    # idempotency keys: a key replays only its own request, and only while it lives
    "chalicelib.store.keys.xǁKeyRecordǁreplay_or_conflict__*",
    "chalicelib.store.keys.xǁKeyRecordǁis_live__*",
    # token checks: algorithm pinning, expiry, issuer, audience, owner claim, JWKS freshness
    "chalicelib.edge.auth.x__verify_hs256__*",
    "chalicelib.edge.auth.x__verify_rs256__*",
    "chalicelib.edge.hs256.x_decode__*",
    "chalicelib.edge.hs256.x__number__*",
    "chalicelib.edge.hs256.x__check_claims__*",
    "chalicelib.edge.auth.x_verify_claims__*",
    "chalicelib.edge.auth.x_jwt_principal__*",
    "chalicelib.edge.auth.xǁJwksCacheǁkey__*",
    # SSRF
    "chalicelib.webhooks.ssrf.x_forbidden__*",
    "chalicelib.webhooks.ssrf.x__addresses__*",
    "chalicelib.webhooks.ssrf.x__refused__*",
    "chalicelib.webhooks.ssrf.x_check_url__*",
    # one time budget for a batch's webhook lookups
    "chalicelib.webhooks.ssrf.xǁLookupBudgetǁ__call____*",
    "chalicelib.webhooks.ssrf.xǁLookupBudgetǁ_look_up__*",
    # objects: each owner's own prefix
    "chalicelib.objects.x_owner_prefix__*",
    "chalicelib.objects.x_key_problem__*",
    "chalicelib.objects.x__outside_prefix__*",
    # webhook signing: each owner's own secret
    "chalicelib.webhooks.signing.x__key_bytes__*",
    "chalicelib.webhooks.signing.x_owner_secret__*",
    "chalicelib.webhooks.signing.x_owner_secrets__*",
    # producers: reports and heartbeats only on an external job of an owner the caller acts for
    "chalicelib.reports.xǁActingForǁallows__*",
    "chalicelib.reports.xǁActingForǁcondition__*",
    "chalicelib.reports.x__check_reportable__*",
    "chalicelib.reports.x_matches_etag__*",
    "chalicelib.reports.x_report__*",
    "chalicelib.reports.x_heartbeat__*",
    "chalicelib.edge.middleware.x_required_scope__*",
    "chalicelib.store.items.x_shard_of__*",
    # service keys: only they name an owner, and only one they act for
    "chalicelib.reports.x_owner_for__*",
    "chalicelib.edge.service_keys.x_check__*",
    # an external job's objects: the service signs only its own bucket
    "chalicelib.objects.x_presign__*",
    # owner checks on every surface: REST, 000/001/002/003's contracts, redrive, WebSocket
    "chalicelib.service.xǁTaskServiceǁget_owned__*",
    "chalicelib.contracts.jobs.x__owned_job__*",
    "chalicelib.contracts.assembly.x_handle__*",
    "chalicelib.contracts.autovid.x_status__*",
    "chalicelib.contracts.task_processor.x_get_task__*",
    "chalicelib.contracts.task_status.x_get_task__*",
    "chalicelib.reruns.x__replayed__*",
    "chalicelib.realtime.xǁRealtimeǁ_subscription__*",
    "chalicelib.edge.api_keys.xǁApiKeyStoreǁrevoke__*",
    "chalicelib.edge.api_keys.xǁApiKeyStoreǁuse__*",
    # scopes, and which credential a request carries
    "chalicelib.edge.middleware.x__authorize__*",
    "chalicelib.edge.auth.xǁPrincipalǁrequire__*",
    # expiry: API keys (and their cap), a WebSocket connection's credential
    "chalicelib.edge.api_keys.xǁApiKeyǁexpired__*",
    "chalicelib.edge.api_keys.xǁKeyAuthenticationǁauthenticate__*",
    "chalicelib.edge.api_keys.x_key_expiry__*",
    "chalicelib.realtime.subscriptions.xǁCredentialǁended__*",
    # CORS
    "chalicelib.edge.cors.x_allowed_origin__*",
    "chalicelib.edge.cors.x_decorate__*",
    "chalicelib.edge.cors.x_preflight__*",
    # public reads by id
    "chalicelib.edge.http.x_public_read__*",
    "chalicelib.edge.http.x_reader__*",
    # presigned URLs: the owner's own keys, their life
    "chalicelib.objects.x_presign_upload__*",
    "chalicelib.objects.x_result_url__*",
    # list cursors: signed, bound to the caller and the query
    "chalicelib.edge.http.x__cursor_mac__*",
    "chalicelib.edge.http.x_encode_cursor__*",
    "chalicelib.edge.http.x_decode_cursor__*",
    # the worker's lease
    "chalicelib.store.xǁTaskStoreǁclaim__*",
    "chalicelib.service.xǁTaskServiceǁclaim__*",
    # fair concurrency: per-owner slots
    "chalicelib.fairness.xǁSlotsǁacquire__*",
    "chalicelib.fairness.xǁSlotsǁrelease__*",
    "chalicelib.fairness.xǁSlotsǁadmit__*",
    "chalicelib.fairness.xǁSlotsǁadmit_next__*",
    # the delayed-run sweep
    "chalicelib.store.xǁTaskStoreǁrelease__*",
    "chalicelib.service.xǁTaskServiceǁrelease_due__*",
    # webhooks connect to the address the SSRF check pinned, never a fresh lookup
    "chalicelib.webhooks.outbound.x__connect__*",
]

_RESULT = re.compile(r"^\s*(\S+): (.+)$")


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
    """The guards whose pattern contains one of `words`; every guard when there are none."""
    return [g for g in GUARDS if not words or any(word in g for word in words)]


def main(words: list[str]) -> int:
    guards = chosen(words)
    if not guards:
        print(f"no guard matches {' '.join(words)}; see GUARDS in tools/mutate.py")
        return 2
    subprocess.run([MUTMUT, "run", *guards], cwd=ROOT, check=False)
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
    for name in survivors:
        print(f"  {outcome[name]}: {name}   (mutmut show {name})")
    return 1 if survivors else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
