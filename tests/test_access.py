"""API keys, rate limits, CORS and trusted proxies (in-process)."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

from service.config import Settings, SettingsError
from service.http.app import create_app
from tests.test_observability import capture_log, metric_value, request_records

ALICE_KEY = "alice-7f3b2c9e1d"
BOB_KEY = "bob-0a9e8d7c6b5a4f"
SCORE_BODY = {"texts": [{"text": "Russia and China call for a new Eurasian security architecture."}]}
PROBLEM = "application/problem+json"


def make_client(runtime, **overrides):
    """A test client of an app built with default settings changed by ``overrides``."""
    settings = Settings(rate_limit_enabled=False).with_overrides(**overrides)
    return create_app(settings, runtime).test_client()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def keyed(runtime):
    """A client of an app with two keys: ``alice:<key>`` and a bare one (id ``key-2``)."""
    return make_client(runtime, api_keys=(f"alice:{ALICE_KEY}", BOB_KEY))


# --- API keys -----------------------------------------------------------------------------------------


def test_without_configured_keys_the_api_is_open(client) -> None:
    assert client.get("/v1/models").status_code == 200


def test_a_missing_key_is_refused_with_a_problem_and_a_bearer_challenge(keyed) -> None:
    response = keyed.post("/v1/score", json=SCORE_BODY)
    assert response.status_code == 401
    assert response.content_type == PROBLEM
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    body = response.get_json()
    assert body["type"] == "/problems/unauthorized"
    assert body["status"] == 401
    assert body["request_id"] == response.headers["X-Request-ID"]


@pytest.mark.parametrize(
    "headers",
    [
        bearer("wrong"),
        {"X-API-Key": "wrong"},
        bearer(ALICE_KEY[:-1]),
        {"Authorization": f"Basic {ALICE_KEY}"},  # not a bearer credential, and no X-API-Key
        {"Authorization": "Bearer "},
    ],
)
def test_a_wrong_key_is_refused(keyed, headers: dict[str, str]) -> None:
    response = keyed.get("/v1/models", headers=headers)
    assert response.status_code == 401
    assert response.get_json()["type"] == "/problems/unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "headers",
    [
        bearer(ALICE_KEY),
        {"Authorization": f"bearer {ALICE_KEY}"},
        {"X-API-Key": ALICE_KEY},
        bearer(BOB_KEY),
    ],
)
def test_a_valid_key_in_either_header_is_accepted(keyed, headers: dict[str, str]) -> None:
    assert keyed.post("/v1/score", json=SCORE_BODY, headers=headers).status_code == 200


@pytest.mark.parametrize("path", ["/livez", "/readyz", "/docs", "/openapi.json", "/metrics"])
def test_probes_docs_and_metrics_need_no_key(keyed, path: str) -> None:
    assert keyed.get(path).status_code == 200


def test_metrics_can_require_a_key(runtime) -> None:
    client = make_client(runtime, api_keys=(f"alice:{ALICE_KEY}",), metrics_require_key=True)
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=bearer(ALICE_KEY)).status_code == 200
    assert client.get("/livez").status_code == 200


def test_the_key_id_is_logged_and_the_key_never(keyed) -> None:
    stream = capture_log()
    keyed.post("/v1/score", json=SCORE_BODY, headers=bearer(ALICE_KEY))
    keyed.get("/v1/models", headers={"X-API-Key": BOB_KEY})
    keyed.get("/v1/models", headers=bearer("not-a-key-abc"))
    records = request_records(stream)
    assert [r["api_key_id"] for r in records] == ["alice", "key-2", None]
    assert records[2]["problem_type"] == "unauthorized"
    for secret in (ALICE_KEY, BOB_KEY, "not-a-key-abc"):
        assert secret not in stream.getvalue()


def test_refusals_are_counted_as_unauthorized(keyed) -> None:
    keyed.get("/v1/models")
    text = keyed.get("/metrics").get_data(as_text=True)
    assert metric_value(text, "discourse_errors_total", type="unauthorized") == 1


def test_keys_file_holds_only_digests(runtime, tmp_path: Path) -> None:
    keys_file = tmp_path / "keys"
    keys_file.write_text(
        "# id:sha256-hex\n"
        f"ci:{hashlib.sha256(ALICE_KEY.encode()).hexdigest()}\n"
        "\n"
        f"  batch : {hashlib.sha256(BOB_KEY.encode()).hexdigest().upper()}  \n"
    )
    client = make_client(runtime, api_keys_file=keys_file)
    stream = capture_log()
    assert client.get("/v1/models", headers=bearer(ALICE_KEY)).status_code == 200
    assert client.get("/v1/models", headers={"X-API-Key": BOB_KEY}).status_code == 200
    # The digest itself is not a key.
    digest = hashlib.sha256(ALICE_KEY.encode()).hexdigest()
    assert client.get("/v1/models", headers=bearer(digest)).status_code == 401
    assert [r["api_key_id"] for r in request_records(stream)] == ["ci", "batch", None]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("ci:abc\n", ":1: 'ci' needs a SHA-256 digest"),
        (f"# comment\n{'0' * 64}\n", ":2: expected 'id:sha256-hex'"),
        (f"ci:{'0' * 63}g\n", ":1: 'ci' needs a SHA-256 digest"),
        (f"ci:{'0' * 64}\nci:{'1' * 64}\n", ":2: key id 'ci' is defined twice"),
    ],
)
def test_a_bad_keys_file_stops_the_app_naming_the_line(
    runtime, tmp_path: Path, content: str, message: str
) -> None:
    keys_file = tmp_path / "keys"
    keys_file.write_text(content)
    with pytest.raises(SettingsError, match=message.replace("(", r"\(")):
        create_app(Settings(api_keys_file=keys_file), runtime)


def test_a_missing_keys_file_stops_the_app(runtime, tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="DISCOURSE_API_KEYS_FILE"):
        create_app(Settings(api_keys_file=tmp_path / "absent"), runtime)


def test_keys_come_from_the_environment(runtime) -> None:
    settings = Settings.from_env({"DISCOURSE_API_KEYS": f"alice:{ALICE_KEY}, {BOB_KEY}"})
    client = create_app(settings.with_overrides(rate_limit_enabled=False), runtime).test_client()
    assert client.get("/v1/models", headers=bearer(BOB_KEY)).status_code == 200
    assert client.get("/v1/models").status_code == 401


# --- Rate limits --------------------------------------------------------------------------------------


@pytest.fixture
def limited(runtime):
    """Rate limiting on, three requests a minute."""
    return make_client(runtime, rate_limit_enabled=True, rate_limit="3/minute")


def test_over_the_limit_answers_429_problem_with_retry_after(limited) -> None:
    for expected_remaining in (2, 1, 0):
        response = limited.get("/v1/models")
        assert response.status_code == 200
        assert response.headers["X-RateLimit-Limit"] == "3"
        assert response.headers["X-RateLimit-Remaining"] == str(expected_remaining)
        assert int(response.headers["X-RateLimit-Reset"]) > time.time()
        # Retry-After only means something on a refusal.
        assert "Retry-After" not in response.headers
    refused = limited.post("/v1/score", json=SCORE_BODY)
    assert refused.status_code == 429
    assert refused.content_type == PROBLEM
    body = refused.get_json()
    assert body["type"] == "/problems/rate-limited"
    assert body["request_id"] == refused.headers["X-Request-ID"]
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    text = limited.get("/metrics").get_data(as_text=True)
    assert metric_value(text, "discourse_errors_total", type="rate-limited") == 1


def test_retry_after_is_never_zero(runtime) -> None:
    client = make_client(runtime, rate_limit_enabled=True, rate_limit="5/second")
    waits = []
    deadline = time.monotonic() + 2.5
    # Refusals at various points of the window: late in it, the wait left is under a second.
    while time.monotonic() < deadline:
        response = client.get("/v1/models")
        if response.status_code == 429:
            waits.append(int(response.headers["Retry-After"]))
        time.sleep(0.05)
    assert waits and min(waits) >= 1


def test_all_v1_routes_share_one_budget(limited) -> None:
    assert limited.get("/v1/models").status_code == 200
    assert limited.get("/v1/references").status_code == 200
    assert limited.post("/v1/score", json=SCORE_BODY).status_code == 200
    assert limited.get("/v1/references").status_code == 429


def test_probes_docs_and_metrics_are_never_limited(limited) -> None:
    for _ in range(5):
        for path in ("/livez", "/readyz", "/metrics", "/openapi.json"):
            response = limited.get(path)
            assert response.status_code == 200
            assert "X-RateLimit-Limit" not in response.headers


def test_limits_are_per_api_key(runtime) -> None:
    client = make_client(
        runtime,
        rate_limit_enabled=True,
        rate_limit="2/minute",
        api_keys=(f"alice:{ALICE_KEY}", f"bob:{BOB_KEY}"),
    )
    for _ in range(2):
        assert client.get("/v1/models", headers=bearer(ALICE_KEY)).status_code == 200
    assert client.get("/v1/models", headers=bearer(ALICE_KEY)).status_code == 429
    # Same address, another key: its own budget.
    assert client.get("/v1/models", headers=bearer(BOB_KEY)).status_code == 200


def test_without_keys_limits_are_per_client_address(limited) -> None:
    first, second = {"REMOTE_ADDR": "192.0.2.1"}, {"REMOTE_ADDR": "192.0.2.2"}
    for _ in range(3):
        assert limited.get("/v1/models", environ_base=first).status_code == 200
    assert limited.get("/v1/models", environ_base=first).status_code == 429
    assert limited.get("/v1/models", environ_base=second).status_code == 200


def test_forwarded_addresses_count_only_behind_trusted_proxies(runtime) -> None:
    proxy = {"REMOTE_ADDR": "10.0.0.1"}

    def exhaust_then_try_other_client(client) -> int:
        for _ in range(2):
            client.get("/v1/models", environ_base=proxy, headers={"X-Forwarded-For": "198.51.100.7"})
        return client.get(
            "/v1/models", environ_base=proxy, headers={"X-Forwarded-For": "198.51.100.8"}
        ).status_code

    untrusting = make_client(runtime, rate_limit_enabled=True, rate_limit="2/minute")
    # X-Forwarded-For is ignored: both "clients" are the proxy, and a client cannot pick a fresh bucket.
    assert exhaust_then_try_other_client(untrusting) == 429
    trusting = make_client(runtime, rate_limit_enabled=True, rate_limit="2/minute", trusted_proxies=1)
    assert exhaust_then_try_other_client(trusting) == 200


def test_rate_limiting_can_be_disabled(client) -> None:
    for _ in range(25):  # over the default 20/second
        response = client.get("/v1/models")
        assert response.status_code == 200
        assert "X-RateLimit-Limit" not in response.headers


def test_default_limit_is_twenty_a_second(runtime) -> None:
    client = make_client(runtime, rate_limit_enabled=True)
    statuses = [client.get("/v1/models").status_code for _ in range(30)]
    assert statuses[:20] == [200] * 20
    # The sliding window weighs the previous second's count, so when the burst straddles a second
    # boundary the refusal can come a request or two later than the 21st, but it comes.
    assert 429 in statuses[20:]


def test_an_invalid_limit_stops_the_app(runtime) -> None:
    with pytest.raises(SettingsError, match="DISCOURSE_RATE_LIMIT"):
        create_app(Settings(rate_limit="lots per fortnight"), runtime)


def test_an_unusable_limit_storage_stops_the_app(runtime) -> None:
    with pytest.raises(SettingsError, match="DISCOURSE_RATE_LIMIT_STORAGE='bogus://x'"):
        create_app(Settings(rate_limit_storage="bogus://x"), runtime)


# --- CORS ---------------------------------------------------------------------------------------------

ORIGIN = "https://app.example.org"


def test_no_cors_headers_by_default(client) -> None:
    response = client.get("/v1/models", headers={"Origin": ORIGIN})
    assert "Access-Control-Allow-Origin" not in response.headers


def test_cors_allows_configured_origins_on_the_api(runtime) -> None:
    client = make_client(runtime, cors_origins=(ORIGIN,), api_keys=(f"alice:{ALICE_KEY}",))
    allowed = client.post("/v1/score", json=SCORE_BODY, headers={"Origin": ORIGIN, **bearer(ALICE_KEY)})
    assert allowed.status_code == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "X-Request-ID" in allowed.headers["Access-Control-Expose-Headers"]
    other = client.get("/v1/models", headers={"Origin": "https://evil.example", **bearer(ALICE_KEY)})
    assert "Access-Control-Allow-Origin" not in other.headers
    # Outside /v1 no CORS headers at all.
    assert "Access-Control-Allow-Origin" not in client.get("/livez", headers={"Origin": ORIGIN}).headers
    # Problems are readable by the browser page too.
    refused = client.get("/v1/models", headers={"Origin": ORIGIN})
    assert refused.status_code == 401
    assert refused.headers["Access-Control-Allow-Origin"] == ORIGIN


def test_cors_preflight_needs_no_key(runtime) -> None:
    client = make_client(runtime, cors_origins=(ORIGIN,), api_keys=(f"alice:{ALICE_KEY}",))
    response = client.options(
        "/v1/score",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "authorization" in response.headers["Access-Control-Allow-Headers"].lower()


# --- Issue 15: CORS patterns, Vary, TRACE, OpenAPI security, the start-up line ------------------------


def test_a_wildcard_origin_is_an_anchored_subdomain_pattern(runtime) -> None:
    """Before: https://*.example.org refused app.example.org and allowed example.org.evil.com."""
    client = make_client(runtime, cors_origins=("https://*.example.org",))
    for origin, allowed in [
        ("https://app.example.org", True),
        ("https://a.b.example.org", True),
        ("https://example.org", False),
        ("https://example.org.evil.com", False),
        ("https://app.example.org.evil.com", False),
        ("http://app.example.org", False),
    ]:
        response = client.get("/v1/models", headers={"Origin": origin})
        assert (response.headers.get("Access-Control-Allow-Origin") == origin) is allowed, origin


def test_every_api_answer_varies_on_origin(runtime) -> None:
    """Before: no Vary: Origin, so a shared cache could serve one origin's CORS answer to another."""
    client = make_client(runtime, cors_origins=(ORIGIN,))
    for headers in ({"Origin": ORIGIN}, {"Origin": "https://evil.example"}, {}):
        response = client.get("/v1/models", headers=headers)
        assert "Origin" in response.headers.get("Vary", ""), headers
    assert client.post("/v1/score", json={}, headers={"Origin": ORIGIN}).headers["Vary"].count("Origin") == 1


def test_trace_is_405_even_with_keys(keyed) -> None:
    """Before: 401 (the key check ran before routing)."""
    for path in ("/v1/score", "/v1/models"):
        response = keyed.open(path, method="TRACE")
        assert response.status_code == 405, path
        assert response.content_type == PROBLEM
        assert "TRACE" not in response.headers["Allow"]
    # A method the route has still needs the key.
    assert keyed.get("/v1/models").status_code == 401


def test_openapi_declares_security_on_the_api_only_when_keyed(keyed, client) -> None:
    """Before: no operation declared security, so /docs and generated clients never sent a key."""
    spec = keyed.get("/openapi.json").get_json()
    assert set(spec["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method not in {"get", "post"}:
                continue
            expected = [{"bearer": []}, {"apiKey": []}] if path.startswith("/v1/") else None
            assert operation.get("security") == expected, (path, method)
    open_spec = client.get("/openapi.json").get_json()
    assert not any(
        "security" in op for ops in open_spec["paths"].values() for op in ops.values() if isinstance(op, dict)
    )


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, "API keys off: /v1/* is open to anyone"),
        ({"api_keys": (f"alice:{ALICE_KEY}", BOB_KEY)}, "API keys on: 2 key(s) (alice, key-2) guard /v1/*;"),
        (
            {"api_keys": (f"alice:{ALICE_KEY}",), "metrics_require_key": True},
            "API keys on: 1 key(s) (alice) guard /v1/* and /metrics; open without a key: /livez, /readyz, "
            "/docs, /openapi.json;",
        ),
    ],
)
def test_start_up_says_whether_keys_are_on_and_what_is_open(runtime, overrides, expected) -> None:
    import io
    import logging

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("discourse.app")
    logger.addHandler(handler)
    try:
        make_client(runtime, **overrides)
    finally:
        logger.removeHandler(handler)
    lines = [line for line in stream.getvalue().splitlines() if line.startswith("API keys")]
    assert len(lines) == 1 and expected in lines[0], stream.getvalue()
    if not overrides.get("metrics_require_key"):
        assert "/metrics" in lines[0].split("open without a key:")[1]


def test_metrics_require_key_without_keys_stops_the_app(runtime) -> None:
    """Before: silently ignored, /metrics stayed open."""
    with pytest.raises(SettingsError, match="DISCOURSE_METRICS_REQUIRE_KEY=true needs keys"):
        create_app(Settings(metrics_require_key=True), runtime)


def test_a_short_key_stops_the_app(runtime) -> None:
    """Before: a one-character key was accepted."""
    with pytest.raises(SettingsError, match="at least 16 are needed"):
        create_app(Settings(api_keys=("ci:x",)), runtime)
