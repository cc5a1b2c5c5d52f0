#!/usr/bin/env bash
# Run Bascule's whole test suite (as root: integration tests use network namespaces).
#
#   ./test.sh            lint, type check, layer contracts, unit and integration tests
#   ./test.sh -k drain   extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")"
./setup.sh --no-demo --dev --no-link
echo "==> ruff"
.venv/bin/ruff check src tests bench
echo "==> mypy --strict"
.venv/bin/mypy
echo "==> import-linter (layers of DESIGN.md)"
.venv/bin/lint-imports
echo "==> pytest"
exec .venv/bin/pytest -p no:cacheprovider "$@"
