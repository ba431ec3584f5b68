#!/usr/bin/env bash
# `make test` after lint: the unit tests, the end-to-end tests (those on the shared local
# stack, and those that start stacks of their own: restarts, a reset, a full session) and
# `make deploy-rehearsal` (package, cfn-lint, the rehearsal) run at once. They share no file,
# port or process: each pytest has its own --basetemp, the e2e tests and the rehearsal start
# their own emulators on free ports, and the unit tests' AWS is in-process. The end-to-end
# tests mostly wait (for workers, timeouts, restarts), so running them beside the CPU-bound
# unit tests is where the time goes down. The unit tests print as they run; the others are
# shown when done.
# Arguments go to both pytest runs (`make test PYTEST_ARGS=--durations=15`).
set -u
PY=${PY:-.venv/bin/python}
mkdir -p build
make --no-print-directory deploy-rehearsal >build/checks.log 2>&1 &
checks=$!
"$PY" -m pytest tests/e2e -m "not own_stack" --basetemp=build/pytest-e2e -p no:cacheprovider "$@" \
    >build/e2e.log 2>&1 &
e2e=$!
"$PY" -m pytest tests/e2e -m own_stack --basetemp=build/pytest-e2e-own -p no:cacheprovider "$@" \
    >build/e2e-own.log 2>&1 &
own=$!
"$PY" -m pytest tests/unit --basetemp=build/pytest-unit "$@"
unit_status=$?
wait "$e2e"
e2e_status=$?
wait "$own"
own_status=$?
echo "=== end-to-end tests (build/e2e.log) ==="
cat build/e2e.log
echo "=== end-to-end tests with their own stacks (build/e2e-own.log) ==="
cat build/e2e-own.log
wait "$checks"
checks_status=$?
if [ "$checks_status" -ne 0 ]; then
    tail -n 60 build/checks.log
    echo "=== make deploy-rehearsal FAILED (build/checks.log) ==="
else
    echo "=== make deploy-rehearsal passed: package, cfn-lint, rehearsal (build/checks.log) ==="
fi
echo "unit: exit $unit_status, end-to-end: exit $e2e_status and $own_status," \
    "deploy-rehearsal: exit $checks_status"
[ "$unit_status" -eq 0 ] && [ "$e2e_status" -eq 0 ] && [ "$own_status" -eq 0 ] &&
    [ "$checks_status" -eq 0 ]
