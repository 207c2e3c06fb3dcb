"""Bounded cost over HTTP: work caps, admission, deadline, characters limit, failed-key limit, slow bodies."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable

import pytest
import requests
from flask.testing import FlaskClient

from service.config import Settings, SettingsError
from service.http.app import create_app
from service.runtime import Runtime

TEXT = "NATO expansion threatens Russia's security. A new security architecture is needed."


def _client(runtime: Runtime, **overrides: object) -> FlaskClient:
    settings = Settings(rate_limit_enabled=False).with_overrides(**overrides)
    app = create_app(settings, runtime=runtime)
    app.config["TESTING"] = True
    return app.test_client()


def _score_body(client: FlaskClient):
    """A score request's body as the test client sends it, posted to a path that is not limited."""
    return client.post("/no-such-path", json={"texts": [{"text": TEXT}]})


def _score(client: FlaskClient, texts: list[str], **extra: object):
    return client.post("/v1/score", json={"texts": [{"text": t} for t in texts]}, **extra)


# -- work caps -------------------------------------------------------------------------------------


def test_a_text_with_too_many_sentences_gets_a_422_naming_field_and_limit(runtime: Runtime) -> None:
    client = _client(runtime, max_sentences_per_text=3)
    response = _score(client, [TEXT, "Ab cd. Ef gh. Ij kl. Mn op."])
    assert response.status_code == 422
    problem = response.get_json()
    assert problem["type"] == "/problems/validation-error"
    assert "max_sentences_per_text" in problem["detail"]
    assert problem["errors"] == [
        {"field": "texts.1.text", "message": "At most 3 sentences per text (this one has 4)."}
    ]


def test_a_request_over_the_word_total_gets_a_422_on_texts(runtime: Runtime) -> None:
    client = _client(runtime, max_tokens_per_request=15)  # 10 words a text
    response = _score(client, [TEXT, TEXT])
    assert response.status_code == 422
    problem = response.get_json()
    assert "max_tokens_per_request" in problem["detail"]
    assert [e["field"] for e in problem["errors"]] == ["texts"]
    assert "At most 15 words per request" in problem["errors"][0]["message"]


def test_sentences_without_words_do_not_count(runtime: Runtime) -> None:
    client = _client(runtime, max_sentences_per_text=2)
    response = _score(client, [". " * 20_000 + TEXT + " ! ? ." * 1000])
    assert response.status_code == 200, response.get_json()


def test_the_openapi_document_publishes_every_work_limit(runtime: Runtime) -> None:
    client = _client(runtime, max_sentences_per_text=7, max_tokens_per_request=99, request_deadline=4.5)
    spec = client.get("/openapi.json").get_json()
    limits = spec["x-limits"]
    assert limits["max_sentences_per_text"] == 7
    assert limits["max_tokens_per_request"] == 99
    assert limits["request_deadline_seconds"] == 4.5
    for name in ("max_tokens_per_text", "max_sentences_per_request", "max_heavy_in_flight"):
        assert name in limits
    # The per-text limits are described on the field they bound, with the configured values.
    assert "7 sentences" in spec["components"]["schemas"]["TextInput"]["properties"]["text"]["description"]
    assert "99 words" in spec["components"]["schemas"]["ScoreRequest"]["properties"]["texts"]["description"]
    responses = spec["paths"]["/v1/score"]["post"]["responses"]
    assert "overloaded" in responses["503"]["description"]
    assert "deadline-exceeded" in responses["503"]["description"]


@pytest.mark.parametrize(
    "variable",
    ["DISCOURSE_MAX_SENTENCES_PER_TEXT", "DISCOURSE_MAX_HEAVY_IN_FLIGHT", "DISCOURSE_REQUEST_DEADLINE"],
)
def test_a_limit_below_one_or_zero_is_refused_naming_the_variable(variable: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env({variable: "0"})


# -- admission and deadline ------------------------------------------------------------------------


def test_a_heavy_request_beyond_the_slots_gets_a_fast_503_with_retry_after(runtime: Runtime) -> None:
    client = _client(runtime, max_heavy_in_flight=1, heavy_request_bytes=100)
    admission = client.application.extensions["discourse.admission"]
    with admission.admit(10_000):  # another request is scoring a large batch in this worker
        started = time.monotonic()
        refused = _score(client, [TEXT, TEXT])  # 164 characters: large
        elapsed = time.monotonic() - started
        small = _score(client, ["Rain in Spain."])  # small requests never wait for a slot
    assert refused.status_code == 503 and elapsed < 1.0
    assert refused.headers["Retry-After"] == "2"
    assert refused.get_json()["type"] == "/problems/overloaded"
    assert small.status_code == 200
    assert _score(client, [TEXT, TEXT]).status_code == 200  # the slot is free again


def test_past_the_deadline_scoring_stops_with_a_503(runtime: Runtime) -> None:
    client = _client(runtime, request_deadline=0.000_001)
    response = _score(client, [TEXT] * 3)
    assert response.status_code == 503
    assert response.get_json()["type"] == "/problems/deadline-exceeded"
    assert response.headers["Retry-After"] == "1"
    # and the slot it held is released: the next request is admitted (and stopped again)
    assert _score(client, [TEXT]).get_json()["type"] == "/problems/deadline-exceeded"


# -- cost-weighted and failed-authentication limits ------------------------------------------------


def test_the_characters_limit_counts_characters_not_requests(runtime: Runtime) -> None:
    settings = Settings(rate_limit="1000/minute", characters_rate_limit="600/minute")
    app = create_app(settings, runtime=runtime)
    client = app.test_client()
    body_bytes = len(_score_body(client).request.get_data())  # a request never counted: 404
    statuses = [_score(client, [TEXT]).status_code for _ in range(9)]
    # Each request scores len(TEXT) = 82 characters. A request is let in while the characters
    # counted so far plus its body size fit in 600: 6 * 82 + body does, 7 * 82 + body does not.
    assert len(TEXT) == 82 and 6 * 82 + body_bytes <= 600 < 7 * 82 + body_bytes
    assert statuses == [200] * 7 + [429] * 2
    refused = _score(client, [TEXT])
    assert refused.get_json()["type"] == "/problems/rate-limited"
    assert "characters" in refused.get_json()["detail"]
    assert int(refused.headers["Retry-After"]) >= 1
    # The budget is per client: another address still has all of it.
    assert _score(client, [TEXT], environ_base={"REMOTE_ADDR": "127.0.0.9"}).status_code == 200


def test_failed_authentications_are_counted_per_address_and_limited(runtime: Runtime) -> None:
    settings = Settings(api_keys=("ci:right-key-of-ci-0001",), auth_failure_limit="3/minute")
    client = create_app(settings, runtime=runtime).test_client()

    def attempt(key: str, address: str = "127.0.0.1"):
        return client.get("/v1/references", headers={"X-API-Key": key}, environ_base={"REMOTE_ADDR": address})

    assert [attempt(f"guess-{i}").status_code for i in range(3)] == [401, 401, 401]
    refused = attempt("guess-4")
    assert refused.status_code == 429
    assert "failed authentications" in refused.get_json()["detail"]
    assert refused.get_json()["request_id"] == refused.headers["X-Request-ID"]  # logged like any answer
    assert int(refused.headers["Retry-After"]) >= 1
    assert attempt("right-key-of-ci-0001").status_code == 429  # a right guess is not told apart meanwhile
    assert attempt("right-key-of-ci-0001", "127.0.0.7").status_code == 200  # other addresses are unaffected
    assert attempt("guess-5", "127.0.0.7").status_code == 401
    assert client.get("/livez").status_code == 200  # probes are never limited


# -- slow uploads, against the real server ---------------------------------------------------------


def _post_slowly(port: int, length: int, chunk: bytes, every: float, seconds: float) -> tuple[bytes, float]:
    """Send headers for a ``length``-byte body, then ``chunk`` every ``every`` s; the answer and its time."""
    started = time.monotonic()
    head = (
        f"POST /v1/score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=seconds + 5) as sock:
        sock.sendall(head)
        try:
            while time.monotonic() - started < seconds:
                sock.sendall(chunk)
                time.sleep(every)
        except OSError:  # the server closed its side
            pass
        answer = b""
        try:
            while chunk_in := sock.recv(65536):
                answer += chunk_in
                if b"\r\n\r\n" in answer and answer.endswith(b"}"):
                    break
        except OSError:  # reset, or no answer in time: the caller checks what came
            pass
    return answer, time.monotonic() - started


@pytest.mark.e2e
def test_a_body_that_crawls_gets_a_408_and_its_thread_back(gunicorn: Callable) -> None:
    env = {"DISCOURSE_BODY_GRACE_SECONDS": "1", "DISCOURSE_BODY_MIN_RATE": "1000"}
    with gunicorn(workers=1, env=env) as server:
        # 2,000 bytes at 1,000 bytes/s and 1 s of grace: 3 s allowed; sent at 4 bytes a second.
        answer, elapsed = _post_slowly(server.port, 2000, b"abcd", 1.0, 8.0)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"request-timeout" in answer
        assert 2.5 < elapsed < 7.5  # cut after about 3 s; the client would go on for 8 s
        fine = requests.post(server.base_url + "/v1/score", json={"texts": [{"text": TEXT}]}, timeout=5)
        assert fine.status_code == 200


@pytest.mark.e2e
@pytest.mark.slow
def test_probes_and_small_requests_answer_while_16_uploads_crawl(gunicorn: Callable) -> None:
    """16 connections trickling 2 MB bodies at 4 bytes/s: /livez, /readyz within 1 s, scoring within 2 s."""
    with gunicorn(workers=2, env={"DISCOURSE_RATE_LIMIT_ENABLED": "false"}) as server:
        crawlers = [
            threading.Thread(
                target=_post_slowly, args=(server.port, 2_000_000, b"abcd", 1.0, 8.0), daemon=True
            )
            for _ in range(16)
        ]
        for thread in crawlers:
            thread.start()
        time.sleep(1.5)
        # Timed from here, not from before the server started: on a loaded machine start-up alone
        # took longer than the whole window, and the loop never ran.
        stop = time.monotonic() + 6.5  # the crawlers go on for 8 s from their start
        slow: list[tuple[str, object]] = []
        rounds = 0
        while time.monotonic() < stop:
            rounds += 1
            for path, limit in (("/livez", 1.0), ("/readyz", 1.0)):
                try:
                    if requests.get(server.base_url + path, timeout=limit).status_code != 200:
                        slow.append((path, "status"))
                except requests.RequestException as error:
                    slow.append((path, type(error).__name__))
            try:
                body = json.dumps({"texts": [{"text": TEXT}]})
                response = requests.post(
                    server.base_url + "/v1/score",
                    data=body,
                    headers={"Content-Type": "application/json"},
                    timeout=2.0,
                )
                if response.status_code != 200:
                    slow.append(("score", response.status_code))
            except requests.RequestException as error:
                slow.append(("score", type(error).__name__))
            time.sleep(0.2)
        for thread in crawlers:
            thread.join(timeout=15)
    assert rounds >= 10
    assert not slow, slow


@pytest.mark.e2e
@pytest.mark.slow
def test_work_for_a_client_that_hung_up_is_stopped(gunicorn: Callable) -> None:
    """A client sends a large batch and hangs up: the worker stops scoring it (logged as 499)."""
    text = ("NATO expansion and the Eurasian security architecture were discussed in Moscow. " * 100)[:7800]
    body = json.dumps({"texts": [{"text": f"{i} {text}"} for i in range(256)], "explain": True}).encode()
    with gunicorn(workers=1, env={"DISCOURSE_RATE_LIMIT_ENABLED": "false"}) as server:
        head = (
            "POST /v1/score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(head + body)
            time.sleep(0.3)  # scoring 256 texts of 7,800 characters takes well over a second
        deadline = time.monotonic() + 20
        while not (scored := _logged_scoring(server.log())):
            assert time.monotonic() < deadline, server.log()[-3000:]
            time.sleep(0.2)
        assert [(line["status"], line["problem_type"]) for line in scored] == [(499, "client-closed-request")]


def _logged_scoring(log: str) -> list[dict]:
    """The request-log lines of POST /v1/score in a server's output."""
    lines = []
    for text in log.splitlines():
        if text.startswith("{") and '"/v1/score"' in text:
            lines.append(json.loads(text))
    return lines
