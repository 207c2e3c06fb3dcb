"""Hostile HTTP input, table-driven: each case gets its documented 4xx quickly and the service stays healthy.

Body cases go through the app in-process (Flask test client) and, byte for byte,
through the real Procfile command (gunicorn) on a loopback port. Cases only a real
server can see (chunked bodies, malformed framing, over-long request lines and
headers, slow clients) go over raw sockets to gunicorn. Answers from the app are
``application/problem+json``; gunicorn answers the framing errors it catches itself
(400, 414, 431, and 501 for an unknown transfer coding, as RFC 9112 requires) with
its own small HTML page: those are marked ``problem=None``.

After every case a normal request must still be scored correctly, the workers must
be the ones that started (none crashed or was replaced), and the server log must
hold no unhandled error.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import requests
from flask.testing import FlaskClient

from service.config import Settings
from tests.conftest import GunicornServer, run_gunicorn

MiB = 1024 * 1024
LIMIT = Settings().max_body_bytes
QUICK = 2.0  # seconds: every refusal must come at least this fast
WORKERS = 2
JSON = (("Content-Type", "application/json"),)
NORMAL = {"texts": [{"id": "a", "text": "NATO expansion threatens Russia."}, {"id": "b", "text": "Rain."}]}
OK_BODY = json.dumps(NORMAL).encode()
# A server for this module: no rate limit (the cases are many), no drain (fast stop),
# no worker recycling (so that "the same workers" means "none crashed").
# 4 threads a worker (the default is 32), so that the slow-client cases below show what happens when
# slow connections outnumber the threads with a dozen connections rather than seventy.
SERVER_ENV = {
    "DISCOURSE_RATE_LIMIT_ENABLED": "false",
    "DISCOURSE_DRAIN_SECONDS": "0",
    "DISCOURSE_MAX_REQUESTS": "0",
    "DISCOURSE_WORKER_THREADS": "4",
}


@dataclass(frozen=True)
class Case:
    """One hostile request and the answer it must get."""

    name: str
    body: bytes | None
    status: int
    problem: str | None = None  # problem type slug; None: not a problem document (a 2xx)
    method: str = "POST"
    path: str = "/v1/score"
    headers: tuple[tuple[str, str], ...] = JSON
    field: str | None = None  # for a 422: a field ``errors`` must name


def _padded(document: dict, size: int) -> bytes:
    """``document`` as JSON, padded with trailing whitespace to exactly ``size`` bytes."""
    raw = json.dumps(document).encode()
    return raw + b" " * (size - len(raw))


def _deep(levels: int) -> bytes:
    return b'{"texts": [{"text": "NATO"}], "x": ' + b"[" * levels + b"]" * levels + b"}"


CASES: list[Case] = [
    # Not JSON, or JSON the service refuses to interpret (400 malformed-request).
    Case("truncated JSON", b'{"texts": [{"text": "NATO', 400, "malformed-request"),
    Case("empty body", b"", 400, "malformed-request"),
    Case("whitespace only", b" \n\t ", 400, "malformed-request"),
    Case("array nested 10,000 deep", b"[" * 10_000 + b"]" * 10_000, 400, "malformed-request"),
    Case("object nested 10,000 deep", b'{"a":' * 10_000 + b"1" + b"}" * 10_000, 400, "malformed-request"),
    Case("nested 33 deep (one over the limit)", _deep(32), 400, "malformed-request"),
    Case("nested 980 deep (just under the recursion limit)", _deep(979), 400, "malformed-request"),
    Case("1e999999", b'{"texts": [{"text": "NATO"}], "explain": 1e999999}', 400, "malformed-request"),
    Case("-1e999999", b'{"texts": [{"text": "NATO"}], "x": -1e999999}', 400, "malformed-request"),
    Case(
        "integer of 100,000 digits", b'{"texts": [], "x": ' + b"9" * 100_000 + b"}", 400, "malformed-request"
    ),
    Case(
        "duplicate top-level key",
        b'{"texts": [{"text": "a"}], "texts": [{"text": "b"}]}',
        400,
        "malformed-request",
    ),
    Case("duplicate key in a text", b'{"texts": [{"text": "a", "text": "b"}]}', 400, "malformed-request"),
    Case("NaN", b'{"texts": [{"text": "NATO"}], "x": NaN}', 400, "malformed-request"),
    Case("Infinity", b'{"texts": [{"text": "NATO"}], "x": Infinity}', 400, "malformed-request"),
    Case("-Infinity", b'{"texts": [{"text": "NATO"}], "x": -Infinity}', 400, "malformed-request"),
    Case("not UTF-8", b'{"texts": [{"text": "\xff\xfe"}]}', 400, "malformed-request"),
    Case("UTF-16", OK_BODY.decode().encode("utf-16"), 400, "malformed-request"),
    Case("UTF-8 byte order mark", b"\xef\xbb\xbf" + OK_BODY, 400, "malformed-request"),
    Case("raw control character in a string", b'{"texts": [{"text": "a\x01b"}]}', 400, "malformed-request"),
    # Size (413) at and around the limit.
    Case("2 MiB + 1 byte", _padded(NORMAL, LIMIT + 1), 413, "payload-too-large"),
    Case("8 MiB", _padded(NORMAL, 8 * MiB), 413, "payload-too-large"),
    Case("exactly 2 MiB", _padded(NORMAL, LIMIT), 200),
    # Encoding and media type (415).
    Case(
        "gzip body, Content-Encoding: gzip",
        gzip.compress(OK_BODY),
        415,
        "unsupported-media-type",
        headers=(*JSON, ("Content-Encoding", "gzip")),
    ),
    Case(
        "Content-Encoding: gzip on a plain body (never decompressed)",
        OK_BODY,
        415,
        "unsupported-media-type",
        headers=(*JSON, ("Content-Encoding", "gzip")),
    ),
    Case(
        "Content-Encoding: br",
        OK_BODY,
        415,
        "unsupported-media-type",
        headers=(*JSON, ("Content-Encoding", "br")),
    ),
    Case("Content-Encoding: identity", OK_BODY, 200, headers=(*JSON, ("Content-Encoding", "identity"))),
    Case("no Content-Type", OK_BODY, 415, "unsupported-media-type", headers=()),
    Case("text/plain", OK_BODY, 415, "unsupported-media-type", headers=(("Content-Type", "text/plain"),)),
    Case(
        "form-urlencoded",
        b"texts=NATO",
        415,
        "unsupported-media-type",
        headers=(("Content-Type", "application/x-www-form-urlencoded"),),
    ),
    Case(
        "multipart",
        b"--x\r\n\r\n--x--\r\n",
        415,
        "unsupported-media-type",
        headers=(("Content-Type", "multipart/form-data; boundary=x"),),
    ),
    Case(
        "application/xml",
        b"<texts/>",
        415,
        "unsupported-media-type",
        headers=(("Content-Type", "application/xml"),),
    ),
    Case(
        "charset=latin-1",
        OK_BODY,
        415,
        "unsupported-media-type",
        headers=(("Content-Type", "application/json; charset=latin-1"),),
    ),
    Case("charset=UTF-8", OK_BODY, 200, headers=(("Content-Type", "application/json; charset=UTF-8"),)),
    Case("a +json type", OK_BODY, 200, headers=(("Content-Type", "application/vnd.api+json"),)),
    # Valid JSON, wrong shape (422 validation-error naming the field).
    Case("null", b"null", 422, "validation-error", field="$"),
    Case("a list", b"[]", 422, "validation-error", field="$"),
    Case("a string", b'"NATO"', 422, "validation-error", field="$"),
    Case("no texts", b"{}", 422, "validation-error", field="texts"),
    Case("empty texts", b'{"texts": []}', 422, "validation-error", field="texts"),
    Case("texts an object", b'{"texts": {"text": "NATO"}}', 422, "validation-error", field="texts"),
    Case("text null", b'{"texts": [{"text": null}]}', 422, "validation-error", field="texts.0.text"),
    Case(
        "blank text",
        b'{"texts": [{"text": " \\n\\t\\u3000"}]}',
        422,
        "validation-error",
        field="texts.0.text",
    ),
    Case(
        "id a number", b'{"texts": [{"id": 1, "text": "NATO"}]}', 422, "validation-error", field="texts.0.id"
    ),
    Case(
        "id of 257 characters",
        json.dumps({"texts": [{"id": "i" * 257, "text": "NATO"}]}).encode(),
        422,
        "validation-error",
        field="texts.0.id",
    ),
    Case(
        "duplicate ids",
        b'{"texts": [{"id": "x", "text": "a"}, {"id": "x", "text": "b"}]}',
        422,
        "validation-error",
        field="texts",
    ),
    Case(
        "unknown field", b'{"texts": [{"text": "NATO"}], "extra": 1}', 422, "validation-error", field="extra"
    ),
    Case(
        "explain not a boolean", b'{"texts": [{"text": "NATO"}], "explain": "maybe"}', 422, "validation-error"
    ),
    Case(
        "257 texts",
        json.dumps({"texts": [{"text": "NATO"}] * 257}).encode(),
        422,
        "validation-error",
        field="texts",
    ),
    Case(
        "a text of 100,001 characters",
        json.dumps({"texts": [{"text": "NATO"}, {"text": "a" * 100_001}]}).encode(),
        422,
        "validation-error",
        field="texts.1.text",
    ),
    Case(
        "a batch of only invisible texts (NUL, zero-width, lone surrogate)",
        b'{"texts": [{"id": "a", "text": "\\u0000"}, {"id": "b", "text": "\\u200b\\ud800"}], '
        b'"explain": true}',
        200,
    ),
    Case(
        "unknown reference", b'{"texts": [{"text": "NATO"}], "reference": "nope"}', 404, "unknown-reference"
    ),
    # Methods and paths.
    Case("GET /v1/score", None, 405, "method-not-allowed", method="GET", headers=()),
    Case("PUT /v1/score", OK_BODY, 405, "method-not-allowed", method="PUT"),
    Case("PATCH /v1/score", OK_BODY, 405, "method-not-allowed", method="PATCH"),
    Case("DELETE /v1/score", None, 405, "method-not-allowed", method="DELETE", headers=()),
    Case("TRACE /v1/score", None, 405, "method-not-allowed", method="TRACE", headers=()),
    Case("POST /v1/references", OK_BODY, 405, "method-not-allowed", path="/v1/references"),
    Case("POST /readyz", OK_BODY, 405, "method-not-allowed", path="/readyz"),
    Case("unknown path", None, 404, "not-found", method="GET", path="/v1/nothing-here", headers=()),
    Case(
        "URL of 4,000 characters",
        None,
        404,
        "unknown-reference",
        method="GET",
        path="/v1/references/" + "x" * 4000,
        headers=(),
    ),
    Case(
        "encoded NUL and invalid UTF-8 in the path",
        None,
        404,
        "unknown-reference",
        method="GET",
        path="/v1/references/%00%ff%fe",
        headers=(),
    ),
]


def _ids(cases: list[Case]) -> list[str]:
    return [c.name for c in cases]


def check_answer(case: Case, status: int, content_type: str, body: bytes, elapsed: float) -> None:
    """The documented status, as a problem document when it is an error, and quickly."""
    assert status == case.status, body[:300]
    assert elapsed < QUICK, f"{case.name}: {elapsed:.2f} s"
    if case.problem is None:
        assert content_type.startswith("application/json")
        results = json.loads(body)["results"]
        assert [r["id"] for r in results] == ["a", "b"]
        return
    assert content_type.startswith("application/problem+json"), content_type
    problem = json.loads(body)
    assert problem["type"] == f"/problems/{case.problem}"
    assert problem["status"] == status
    assert problem["title"] and problem["detail"]
    assert problem["instance"] == f"urn:request:{problem['request_id']}"
    if case.field is not None:
        assert case.field in {e["field"] for e in problem["errors"]}, problem["errors"]


# -- in-process ----------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_hostile_request_in_process(client: FlaskClient, case: Case) -> None:
    """Each case gets its answer from the app, and the next normal request is scored."""
    started = time.monotonic()
    response = client.open(case.path, method=case.method, data=case.body, headers=list(case.headers))
    elapsed = time.monotonic() - started
    check_answer(case, response.status_code, response.content_type or "", response.get_data(), elapsed)
    if case.method == "POST" and case.path == "/v1/score" and case.status >= 400:
        # Nothing was half-done: no result for a refused request.
        assert b'"results"' not in response.get_data()
    after = client.post("/v1/score", json=NORMAL)
    assert after.status_code == 200 and len(after.get_json()["results"]) == 2


def test_no_nesting_depth_gives_a_server_error(client: FlaskClient) -> None:
    """Every depth from 1 to 1,100 (past the recursion limit, wherever the stack is): 422 up to 32, then 400.

    The JSON is parsed twice (the strict check, then webargs a few frames
    deeper), so without a fixed limit some depth just under the recursion
    limit passed the first parse and failed the second: a 500.
    """
    first_depth_of: dict[int, int] = {}
    for levels in range(1, 1101):  # the body object plus ``levels`` arrays
        first_depth_of.setdefault(
            client.post("/v1/score", data=_deep(levels), headers=list(JSON)).status_code, levels
        )
    assert first_depth_of == {422: 1, 400: 32}


# -- over gunicorn: helpers ------------------------------------------------------------


@dataclass
class RawResponse:
    """What came back on a raw connection."""

    status: int
    headers: dict[str, str]
    body: bytes
    elapsed: float  # seconds until the response was complete
    interim: list[int] = field(default_factory=list)  # 1xx statuses before it


def _read_response(sock: socket.socket, started: float) -> RawResponse:
    """Read one HTTP/1.x response (skipping 1xx) from ``sock``."""
    buffer = b""
    interim: list[int] = []
    while True:
        while b"\r\n\r\n" not in buffer:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"connection closed before a response: {buffer[:200]!r}")
            buffer += chunk
        head, _, buffer = buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        if 100 <= status < 200:
            interim.append(status)
            continue
        break
    length = headers.get("content-length")
    while length is None or len(buffer) < int(length):
        chunk = sock.recv(65536)
        if not chunk:
            break
        buffer += chunk
    return RawResponse(status, headers, buffer, time.monotonic() - started, interim)


def raw_exchange(server: GunicornServer, request: bytes, timeout: float = 10.0) -> RawResponse:
    """Send ``request`` as is on a new connection and read the response."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        started = time.monotonic()
        # The server may answer (and close) before reading everything: that answer is read below.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)
        return _read_response(sock, started)


def http_request(case: Case, extra_headers: tuple[tuple[str, str], ...] = ()) -> bytes:
    """``case`` as HTTP/1.1 bytes with a Content-Length (when it has a body), closing the connection."""
    lines = [f"{case.method} {case.path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (*case.headers, *extra_headers)]
    if case.body is not None:
        lines.append(f"Content-Length: {len(case.body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (case.body or b"")


def chunked(payload: bytes, size: int = 65536) -> bytes:
    """``payload`` in the chunked transfer coding."""
    pieces = [
        b"%x\r\n%s\r\n" % (len(payload[i : i + size]), payload[i : i + size])
        for i in range(0, len(payload), size)
    ]
    return b"".join(pieces) + b"0\r\n\r\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GunicornServer]:
    """One real server (2 workers) for the module's cases; it must end with the workers it started with."""
    with run_gunicorn(tmp_path_factory.mktemp("hostile"), env=SERVER_ENV, workers=WORKERS) as running:
        running.initial_workers = running.wait_for_workers(WORKERS)  # type: ignore[attr-defined]
        yield running


def assert_healthy(server: GunicornServer) -> None:
    """A normal request is scored; no worker died or was replaced; no unhandled error was logged."""
    response = requests.post(server.base_url + "/v1/score", json=NORMAL, timeout=10)
    assert response.status_code == 200
    assert [r["id"] for r in response.json()["results"]] == ["a", "b"]
    assert server.worker_set() == server.initial_workers  # type: ignore[attr-defined]
    log = server.log()
    assert "unhandled error" not in log and "Traceback" not in log, log[-3000:]


# -- over gunicorn: the same table ------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_hostile_request_over_gunicorn(server: GunicornServer, case: Case) -> None:
    """The same bytes through the real server get the same answer; the workers stay healthy."""
    response = raw_exchange(server, http_request(case))
    check_answer(
        case, response.status, response.headers.get("content-type", ""), response.body, response.elapsed
    )
    assert_healthy(server)


# -- over gunicorn: framing only a real server sees -------------------------------------

_POST = (
    b"POST /v1/score HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\n"
)
_GET = b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"


@dataclass(frozen=True)
class RawCase:
    """Raw request bytes and the answer: ``problem=None`` means gunicorn's own (HTML) error page."""

    name: str
    request: bytes
    status: int
    problem: str | None = None


RAW_CASES: list[RawCase] = [
    RawCase(
        "chunked, no Content-Length", _POST + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(OK_BODY, 7), 200
    ),
    RawCase(
        "chunked, exactly 2 MiB",
        _POST + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(_padded(NORMAL, LIMIT)),
        200,
    ),
    RawCase(
        "chunked, 2 MiB + 1 byte",
        _POST + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(_padded(NORMAL, LIMIT + 1)),
        413,
        "payload-too-large",
    ),
    RawCase(
        "chunked, valid JSON then 3 MiB more (not silently truncated)",
        _POST + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(_padded(NORMAL, LIMIT) + b" " * (3 * MiB)),
        413,
        "payload-too-large",
    ),
    RawCase(
        "chunked, invalid chunk size",
        _POST + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
        400,
        "malformed-request",
    ),
    RawCase(
        "Transfer-Encoding: gzip, chunked (never decoded)",
        _POST + b"Transfer-Encoding: gzip, chunked\r\n\r\n" + chunked(gzip.compress(OK_BODY)),
        415,
        "unsupported-media-type",
    ),
    RawCase(
        "Transfer-Encoding: deflate, chunked on a plain body (not read as plain)",
        _POST + b"Transfer-Encoding: deflate, chunked\r\n\r\n" + chunked(OK_BODY),
        415,
        "unsupported-media-type",
    ),
    RawCase(
        "Transfer-Encoding: compress, chunked",
        _POST + b"Transfer-Encoding: compress, chunked\r\n\r\n" + chunked(OK_BODY),
        415,
        "unsupported-media-type",
    ),
    # The one 5xx: gunicorn answers an unknown transfer coding with 501, as RFC 9112 section 6.1 says.
    RawCase(
        "Transfer-Encoding: br, chunked",
        _POST + b"Transfer-Encoding: br, chunked\r\n\r\n" + chunked(OK_BODY),
        501,
    ),
    RawCase(
        "Transfer-Encoding: chunked, chunked",
        _POST + b"Transfer-Encoding: chunked, chunked\r\n\r\n" + chunked(OK_BODY),
        400,
    ),
    RawCase(
        "Transfer-Encoding: gzip alone",
        _POST + b"Transfer-Encoding: gzip\r\n\r\n" + gzip.compress(OK_BODY),
        400,
    ),
    RawCase(
        "Transfer-Encoding and Content-Length (smuggling)",
        _POST + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n" + chunked(OK_BODY),
        400,
    ),
    RawCase(
        "two Content-Length headers",
        _POST + b"Content-Length: 37\r\nContent-Length: 5\r\n\r\n" + OK_BODY,
        400,
    ),
    RawCase("negative Content-Length", _POST + b"Content-Length: -1\r\n\r\n" + OK_BODY, 400),
    RawCase(
        "Content-Length of 10^20",
        _POST + b"Content-Length: 100000000000000000000\r\n\r\n" + OK_BODY,
        413,
        "payload-too-large",
    ),
    RawCase(
        "Content-Length of 3 MiB, body never sent",
        _POST + b"Content-Length: 3145728\r\n\r\n",
        413,
        "payload-too-large",
    ),
    RawCase(
        "Expect: 100-continue",
        _POST + b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(OK_BODY) + OK_BODY,
        200,
    ),
    RawCase(
        "URL of 5,000 characters", b"GET /v1/references/" + b"x" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414
    ),
    RawCase(
        "URL of 100,000 characters",
        b"GET /v1/references/" + b"x" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        414,
    ),
    RawCase("header of 9,000 bytes", _GET + b"X-Big: " + b"y" * 9000 + b"\r\n\r\n", 431),
    RawCase("header of 1 MiB", _GET + b"X-Big: " + b"y" * MiB + b"\r\n\r\n", 431),
    RawCase("101 headers", _GET + b"".join(b"X-H%d: v\r\n" % i for i in range(99)) + b"\r\n", 431),
    RawCase("obsolete header folding", _GET + b"X-A: a\r\n b\r\n\r\n", 400),
    RawCase("space before the colon", _GET + b"X-A : a\r\n\r\n", 400),
    RawCase("NUL in the request line", b"GET /v1/\x00 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    RawCase("HTTP/9.9", b"GET /livez HTTP/9.9\r\nHost: x\r\n\r\n", 400),
    RawCase("bare LF line ends", b"GET /livez HTTP/1.1\nHost: x\n\n", 400),
    RawCase("binary garbage line", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1" + b"\x00" * 64 + b"\r\n\r\n", 400),
    RawCase(
        "unknown method",
        b"FOO /v1/score HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        405,
        "method-not-allowed",
    ),
]


@pytest.mark.e2e
@pytest.mark.parametrize("case", RAW_CASES, ids=[c.name for c in RAW_CASES])
def test_framing_over_gunicorn(server: GunicornServer, case: RawCase) -> None:
    """Framing errors get a 4xx (problem+json where the app answers), quickly; the workers stay healthy."""
    response = raw_exchange(server, case.request)
    assert response.status == case.status, response.body[:300]
    assert response.elapsed < QUICK
    content_type = response.headers.get("content-type", "")
    if case.status == 200:
        assert [r["id"] for r in json.loads(response.body)["results"]] == ["a", "b"]
    elif case.problem is None:
        assert content_type.startswith("text/html")  # gunicorn's own error page
    else:
        assert content_type.startswith("application/problem+json")
        assert json.loads(response.body)["type"] == f"/problems/{case.problem}"
    if case.name == "Expect: 100-continue":
        assert response.interim == [100]
    assert_healthy(server)


# -- slow and idle clients ------------------------------------------------------------------


def _trickle(
    server: GunicornServer, head: bytes, slow: bytes, rest: bytes | None, outcome: dict, key: str
) -> None:
    """Send ``head`` at once, ``slow`` one byte a second, then ``rest`` and store the response.

    With ``rest=None`` the client hangs up after the slow bytes instead.
    """
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
            started = time.monotonic()
            sock.sendall(head)
            for byte in slow:
                sock.sendall(bytes([byte]))
                time.sleep(1.0)
            if rest is not None:
                sock.sendall(rest)
                outcome[key] = _read_response(sock, started)
    except OSError as error:
        outcome[key] = error


def _normal_latencies(server: GunicornServer, seconds: float, timeout: float) -> list[float | str]:
    """Send normal requests for ``seconds``; each one's latency, or the error's name."""
    latencies: list[float | str] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.monotonic()
        try:
            response = requests.post(server.base_url + "/v1/score", json=NORMAL, timeout=timeout)
            ok = response.status_code == 200 and len(response.json()["results"]) == 2
            latencies.append(time.monotonic() - started if ok else f"status {response.status_code}")
        except requests.RequestException as error:
            latencies.append(type(error).__name__)
        time.sleep(0.25)
    return latencies


@pytest.mark.e2e
@pytest.mark.slow
def test_slow_clients_get_their_answer_and_others_are_served(server: GunicornServer) -> None:
    """One client sends its headers, another its body, one byte a second: both are answered, others too.

    The slow clients get their correct answer once they have sent everything
    (about 6 s, bounded by the client, not by the server), and normal requests
    sent meanwhile are answered quickly.
    """
    body = json.dumps({"texts": [{"id": "slow", "text": "NATO expansion threatens Russia."}]}).encode()
    request = _POST + b"Content-Length: %d\r\n\r\n" % len(body) + body
    in_body = request.index(b"\r\n\r\n") + 4 + 5
    outcome: dict = {}
    slow = [
        threading.Thread(
            target=_trickle, args=(server, request[:20], request[20:26], request[26:], outcome, "head")
        ),
        threading.Thread(
            target=_trickle,
            args=(
                server,
                request[:in_body],
                request[in_body : in_body + 6],
                request[in_body + 6 :],
                outcome,
                "body",
            ),
        ),
    ]
    for thread in slow:
        thread.start()
    latencies = _normal_latencies(server, seconds=5.0, timeout=QUICK)
    for thread in slow:
        thread.join(timeout=30)
    assert latencies and all(isinstance(x, float) and x < QUICK for x in latencies), latencies
    for key in ("head", "body"):
        response = outcome[key]
        assert isinstance(response, RawResponse), response
        assert response.status == 200 and json.loads(response.body)["results"][0]["id"] == "slow"
        assert 5.0 < response.elapsed < 15.0  # it took the client's time, and no more
    assert_healthy(server)


@pytest.mark.e2e
@pytest.mark.slow
def test_clients_that_stall_mid_body_release_the_server_when_they_go(server: GunicornServer) -> None:
    """Clients that send half a body and stall, more than there are threads, then hang up: no harm after."""
    half = _POST + b"Content-Length: %d\r\n\r\n" % len(OK_BODY) + OK_BODY[: len(OK_BODY) // 2]
    stalled = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(12)]
    try:
        for sock in stalled:
            sock.sendall(half)
        time.sleep(3.0)
    finally:
        for sock in stalled:
            sock.close()
    started = time.monotonic()
    assert_healthy(server)
    assert time.monotonic() - started < QUICK


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="gunicorn has no read timeout: as many trickling clients as workers x threads (2 x 4 here) "
    "hold every thread, and nothing else is served until they finish or hang up; needs a buffering "
    "reverse proxy with header/body timeouts in front (see docs/robustness.md)",
)
def test_many_trickling_clients_do_not_stop_others(server: GunicornServer) -> None:
    """Thirty-two clients sending their headers one byte a second: normal requests are still answered.

    Each worker takes the connections it wins the race to accept, so with twelve clients one
    worker sometimes got fewer than its four threads and served the normal requests (the strict
    xfail then passed by chance). With 32 the chance that a worker gets fewer than 4 is about
    3 in a million.
    """
    outcome: dict = {}
    request = _POST + b"Content-Length: %d\r\n\r\n" % len(OK_BODY) + OK_BODY
    slow = [
        threading.Thread(target=_trickle, args=(server, b"", request[:7], None, outcome, str(i)), daemon=True)
        for i in range(32)
    ]
    for thread in slow:
        thread.start()
    time.sleep(1.0)
    latencies = _normal_latencies(server, seconds=4.0, timeout=QUICK)
    for thread in slow:
        thread.join(timeout=30)
    assert not outcome, outcome  # the trickling clients hung up without errors
    assert latencies and all(isinstance(x, float) for x in latencies), latencies


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="gunicorn's gthread worker waits up to 5 s (DEFAULT_WORKER_DATA_TIMEOUT, fixed) for a new "
    "connection's first byte in a pool thread: as many silent connections as threads (4 a worker) "
    "stall every other request for 5 s, again and again; needs a buffering reverse proxy in front",
)
def test_silent_connections_do_not_stop_others(server: GunicornServer) -> None:
    """Sixteen connections that send nothing: normal requests are still answered quickly."""
    silent = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(16)]
    try:
        latencies = _normal_latencies(server, seconds=3.0, timeout=QUICK)
    finally:
        for sock in silent:
            sock.close()
    time.sleep(5.5)  # let the server give the silent connections up before the next test
    assert latencies and all(isinstance(x, float) for x in latencies), latencies


def test_case_names_are_unique() -> None:
    """Each case can be picked with ``-k``: no two share a name."""
    names = _ids(CASES) + [c.name for c in RAW_CASES]
    assert len(names) == len(set(names))
