#!/usr/bin/env bash
# Install discourse-compare into ./.venv (created if missing) and run the Procfile's web process.
# Usage: bash scripts/serve.sh        (PORT, WEB_CONCURRENCY and DISCOURSE_* settings apply)
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e .
# The same command as the Procfile's web: line, run from this environment.
web="$(sed -n 's/^web: //p' Procfile)"
export PATH="$PWD/.venv/bin:$PATH"
echo "discourse-compare: serving on port ${PORT:-8000} (Ctrl-C stops)" >&2
eval "exec $web"
