#!/usr/bin/env bash
# Run the Procfile's web process from ./.venv, installing discourse-compare into it first only when
# the environment is missing or out of date (no stamp, or pyproject.toml or the Python changed).
# Usage: bash scripts/serve.sh        (PORT, WEB_CONCURRENCY and DISCOURSE_* settings apply)
# To force a reinstall, delete .venv/.serve-stamp.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
stamp=.venv/.serve-stamp
[ -x .venv/bin/python ] || "$python" -m venv .venv
# What the installed environment was made from: the project's metadata and the interpreter. One
# interpreter start checks both that the package is installed and which Python this is.
python_version="$(.venv/bin/python -c 'import sys, importlib.metadata as m; m.version("discourse-compare")
print(sys.version.split()[0])' 2>/dev/null || true)"
wanted="$(sha256sum pyproject.toml | cut -d' ' -f1) ${python_version:-none}"
if [ -z "$python_version" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    echo "discourse-compare: installing into .venv (first run, or pyproject.toml or Python changed)" >&2
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e .
    python_version="$(.venv/bin/python -c 'import sys; print(sys.version.split()[0])')"
    printf '%s\n' "$(sha256sum pyproject.toml | cut -d' ' -f1) $python_version" > "$stamp"
fi
# The same command as the Procfile's web: line, run from this environment.
web="$(sed -n 's/^web: //p' Procfile)"
export PATH="$PWD/.venv/bin:$PATH"
echo "discourse-compare: serving on ${DISCOURSE_HOST:-0.0.0.0}:${PORT:-8000} (Ctrl-C stops)" >&2
eval "exec $web"
