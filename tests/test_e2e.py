"""End to end: the Procfile's gunicorn command, scored over real HTTP with requests."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from service.config import DEFAULT_MODEL_DIR
from service.domain.stance import STANCE_LABELS
from service.loaders.artifacts import ARRAYS_FILE

pytestmark = pytest.mark.e2e

TEXTS = [
    (
        "agree",
        "NATO expansion threatened Russia, and the Euro-Atlantic security order has failed; Russia "
        "and China are right to build a new Eurasian security architecture.",
    ),
    ("cooking", "Roast the tomatoes with garlic, olive oil and basil for forty minutes, then blend them."),
    ("short", "NATO threatens Russia."),
    ("talks", "Lavrov said in Beijing that Russia and China will start talks on the security of Eurasia."),
]
MAX_BODY = 20_000


def chunks(data: bytes, size: int = 1024) -> Iterator[bytes]:
    """The body in pieces: requests sends a generator with chunked transfer encoding."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def test_score_texts_over_http(gunicorn) -> None:
    env = {"DISCOURSE_RATE_LIMIT_ENABLED": "false", "DISCOURSE_MAX_BODY_BYTES": str(MAX_BODY)}
    with gunicorn(workers=2, env=env) as server:
        url = server.base_url
        assert requests.get(f"{url}/livez", timeout=10).json()["status"] == "ok"
        assert requests.get(f"{url}/readyz", timeout=10).json()["status"] == "ready"
        references = requests.get(f"{url}/v1/references", timeout=10).json()["references"]
        claim_ids = [c["id"] for c in references[0]["claims"]]

        payload = {"texts": [{"id": i, "text": t} for i, t in TEXTS], "explain": True}
        response = requests.post(f"{url}/v1/score", json=payload, timeout=60)
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"].startswith("application/json")
        assert response.headers["X-Request-ID"]
        body = response.json()
        assert body["reference"]["id"] == references[0]["id"]
        assert set(body["model"]) == {"id", "version"}
        results = body["results"]
        assert [r["id"] for r in results] == [i for i, _ in TEXTS]
        for (_, text), result in zip(TEXTS, results, strict=True):
            assert set(result) >= {"id", "similarity", "related", "stance", "claims", "warnings", "evidence"}
            assert 0.0 <= result["similarity"] <= 1.0
            assert result["stance"]["label"] in STANCE_LABELS
            assert sum(result["stance"]["scores"].values()) == pytest.approx(1.0, abs=1e-9)
            assert [c["id"] for c in result["claims"]] == claim_ids
            for passage in result["evidence"]["passages"]:
                assert text[passage["text_start"] : passage["text_end"]] in text
        by_id = {r["id"]: r for r in results}
        assert by_id["agree"]["stance"]["label"] != "unrelated"
        assert by_id["cooking"]["stance"]["label"] == "unrelated"
        assert by_id["agree"]["similarity"] > by_id["cooking"]["similarity"]
        assert [w["code"] for w in by_id["short"]["warnings"]] == ["too_short"]

        # Every worker gives the same answer, in the same order, to the same request.
        for _ in range(4):
            again = requests.post(f"{url}/v1/score", json=payload, timeout=60).json()
            assert again["results"] == results

        # Errors are problem documents over the wire too.
        invalid = requests.post(f"{url}/v1/score", json={"texts": []}, timeout=10)
        assert invalid.status_code == 422
        assert invalid.headers["Content-Type"].startswith("application/problem+json")
        assert invalid.json()["errors"][0]["field"] == "texts"

        too_big = json.dumps({"texts": [{"text": "a" * MAX_BODY}]}).encode()
        declared = requests.post(
            f"{url}/v1/score", data=too_big, headers={"Content-Type": "application/json"}, timeout=10
        )
        assert declared.status_code == 413
        chunked = requests.post(
            f"{url}/v1/score", data=chunks(too_big), headers={"Content-Type": "application/json"}, timeout=10
        )
        assert chunked.status_code == 413
        assert chunked.headers["Content-Type"].startswith("application/problem+json")
        small = json.dumps({"texts": [{"id": "c", "text": TEXTS[0][1]}]}).encode()
        chunked_ok = requests.post(
            f"{url}/v1/score",
            data=chunks(small, 16),
            headers={"Content-Type": "application/json"},
            timeout=10,
        )
        assert chunked_ok.status_code == 200
        assert chunked_ok.json()["results"][0]["similarity"] == by_id["agree"]["similarity"]


def test_a_damaged_model_stops_the_server_before_it_is_ready(gunicorn, tmp_path: Path) -> None:
    model = Path(shutil.copytree(DEFAULT_MODEL_DIR, tmp_path / "model"))
    arrays = model / ARRAYS_FILE
    data = bytearray(arrays.read_bytes())
    data[100] ^= 0xFF
    arrays.write_bytes(bytes(data))
    with (
        pytest.raises(AssertionError, match="gunicorn exited") as error,
        gunicorn(workers=1, env={"DISCOURSE_MODEL_DIR": str(model)}, ready_timeout=60),
    ):
        pytest.fail("the server must not become ready with a damaged model")
    assert str(arrays) in str(error.value)  # the log names the file
