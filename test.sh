#!/usr/bin/env bash
# Run Bascule's whole test suite (as root: integration tests use network namespaces).
#
#   ./test.sh            lint, type check, layer contracts, unit and integration tests
#   ./test.sh -k drain   extra arguments go to pytest
#
# Tests run in BASCULE_TEST_WORKERS processes (default 2, pytest-xdist), a test file per
# worker at a time: integration tests mostly wait on real daemons and clients, so two
# overlap well on two CPUs (three made timing-sensitive tests flaky on a loaded machine);
# every topology has its own namespace names. BASCULE_TEST_WORKERS=0
# runs them in this process, one after the other.
set -euo pipefail
cd "$(dirname "$0")"
./setup.sh --no-demo --dev --no-link
echo "==> ruff"
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
echo "==> mypy --strict"
.venv/bin/mypy
echo "==> import-linter (layers of DESIGN.md)"
.venv/bin/lint-imports
echo "==> pytest"
exec .venv/bin/pytest -p no:cacheprovider -n "${BASCULE_TEST_WORKERS:-2}" --dist loadfile --durations=25 "$@"
