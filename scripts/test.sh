#!/usr/bin/env bash
# The whole test suite, set-up included: the same command on a laptop and in CI.
# Pass pytest arguments through, e.g. `./scripts/test.sh -m "not local_model"` for the fast suite.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/python -m pytest -q -p no:cacheprovider --durations=15 "$@"
