"""Request ids, the Prometheus metrics of one process and the JSON request log (in-process)."""

from __future__ import annotations

import io
import json
import logging

import pytest
from prometheus_client.parser import text_string_to_metric_families

from service.config import Settings
from service.http.app import create_app
from service.http.observability import REQUEST_ID_HEADER, SCORING_ROUTE

SCORE = "/v1/score"
TEXTS = [
    "Russia and China call for a new Eurasian security architecture.",
    "The recipe needs two eggs and a cup of flour.",
    "Experts doubt that the proposed security order can work.",
]
SECRET_TEXT = "zebra-quokka confidential sentence that must never reach a log"


def metric_value(exposition: str, name: str, **labels: str) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels`` (0 when there are none)."""
    total = 0.0
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def capture_log() -> io.StringIO:
    """Redirect the JSON handler installed by the latest ``create_app`` into a buffer."""
    stream = io.StringIO()
    handlers = [h for h in logging.getLogger("discourse").handlers if getattr(h, "discourse_json", False)]
    assert len(handlers) == 1, "exactly one JSON handler, however many apps were built"
    handlers[0].setStream(stream)
    return stream


def log_records(stream: io.StringIO) -> list[dict]:
    """Every line written is one JSON object."""
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def request_records(stream: io.StringIO) -> list[dict]:
    return [r for r in log_records(stream) if r["logger"] == "discourse.access"]


def score_body(texts: list[str] = TEXTS) -> dict:
    return {"texts": [{"id": f"t{i}", "text": t} for i, t in enumerate(texts)]}


# --- Request ids --------------------------------------------------------------------------------------


def test_a_sane_request_id_is_echoed_and_used_as_problem_instance(client) -> None:
    response = client.get("/v1/references/nope", headers={REQUEST_ID_HEADER: "trace-42.a:b"})
    assert response.status_code == 404
    assert response.headers[REQUEST_ID_HEADER] == "trace-42.a:b"
    body = response.get_json()
    assert body["request_id"] == "trace-42.a:b"
    assert body["instance"] == "urn:request:trace-42.a:b"


@pytest.mark.parametrize("offered", ["", "has space", "x" * 129, 'quote"inside', "é"])
def test_an_unusable_request_id_is_replaced(client, offered: str) -> None:
    response = client.get("/livez", headers={REQUEST_ID_HEADER: offered})
    generated = response.headers[REQUEST_ID_HEADER]
    assert generated != offered
    assert len(generated) == 32 and int(generated, 16) >= 0


# --- Metrics ------------------------------------------------------------------------------------------


def test_metrics_count_a_scoring_request_its_texts_and_characters(client) -> None:
    response = client.post(SCORE, json=score_body())
    assert response.status_code == 200
    stances = [r["stance"]["label"] for r in response.get_json()["results"]]
    reference = response.get_json()["reference"]["id"]

    scrape = client.get("/metrics")
    assert scrape.status_code == 200
    assert scrape.content_type.startswith("text/plain")
    text = scrape.get_data(as_text=True)
    assert metric_value(
        text, "discourse_http_requests_total", route=SCORE, method="POST", status="200"
    ) == pytest.approx(1)
    assert metric_value(
        text, "discourse_http_request_duration_seconds_count", route=SCORE, method="POST"
    ) == pytest.approx(1)
    assert metric_value(text, "discourse_texts_scored_total", reference=reference) == pytest.approx(3)
    for label in set(stances):
        assert metric_value(
            text, "discourse_texts_scored_total", reference=reference, stance=label
        ) == pytest.approx(stances.count(label))
    assert metric_value(text, "discourse_similarity_count", reference=reference) == pytest.approx(3)
    assert metric_value(text, "discourse_texts_per_request_count") == pytest.approx(1)
    assert metric_value(text, "discourse_texts_per_request_sum") == pytest.approx(3)
    assert metric_value(text, "discourse_characters_scored_total", reference=reference) == pytest.approx(
        sum(len(t) for t in TEXTS)
    )
    assert metric_value(text, "discourse_errors_total") == 0


def test_the_known_series_exist_at_zero_before_any_request(app, client) -> None:
    """Every problem type, every status of the scoring route and each reference's stance
    series are exported from start-up, at 0."""
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(client.get("/metrics").get_data(as_text=True))
        for sample in family.samples
    }
    assert samples[("discourse_errors_total", (("type", "overloaded"),))] == 0
    assert samples[("discourse_errors_total", (("type", "deadline-exceeded"),))] == 0
    assert (
        samples[("discourse_http_requests_total", (("method", "POST"), ("route", SCORE), ("status", "422")))]
        == 0
    )
    reference = app.extensions["discourse"]["runtime"].scorer.default_reference
    for stance in ("agree", "disagree", "discuss", "unrelated", "none"):
        key = ("discourse_texts_scored_total", (("reference", reference), ("stance", stance)))
        assert samples[key] == 0
    # The label is the scoring route's template: a renamed route must rename it too.
    assert SCORING_ROUTE == SCORE
    assert any(r.rule == SCORING_ROUTE and "POST" in (r.methods or ()) for r in app.url_map.iter_rules())


def test_metrics_count_problems_by_type(client) -> None:
    client.post(SCORE, json={"texts": []})  # validation-error
    client.post(SCORE, data="{", content_type="application/json")  # malformed-request
    client.get("/v1/references/none-such")  # unknown-reference
    text = client.get("/metrics").get_data(as_text=True)
    assert metric_value(text, "discourse_errors_total", type="validation-error") == 1
    assert metric_value(text, "discourse_errors_total", type="malformed-request") == 1
    assert metric_value(text, "discourse_errors_total", type="unknown-reference") == 1
    assert metric_value(
        text, "discourse_http_requests_total", route="/v1/references/<string:reference_id>", status="404"
    ) == pytest.approx(1)
    # Nothing was scored.
    assert metric_value(text, "discourse_texts_per_request_count") == 0


def test_route_and_method_labels_stay_bounded(client) -> None:
    for path in ("/nope", "/v1/nope/1", "/v1/nope/2", "/a" * 50):
        assert client.get(path).status_code == 404
    client.open("/livez", method="BREW")
    text = client.get("/metrics").get_data(as_text=True)
    routes = {
        s.labels["route"]
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "discourse_http_requests_total"
    }
    assert not any(r.startswith(("/nope", "/v1/nope", "/a/a")) for r in routes)
    assert metric_value(text, "discourse_http_requests_total", route="unmatched", status="404") == 4
    assert metric_value(text, "discourse_http_requests_total", method="OTHER") == 1
    assert metric_value(text, "discourse_http_requests_total", method="BREW") == 0


def test_model_info_names_the_loaded_model(client, runtime) -> None:
    text = client.get("/metrics").get_data(as_text=True)
    assert metric_value(
        text,
        "discourse_model_info",
        model_id=runtime.model.model_id,
        version=runtime.model.version,
        references=",".join(sorted(runtime.scorer.references)),
    ) == pytest.approx(1)


def test_each_app_has_its_own_registry(runtime) -> None:
    first = create_app(Settings(rate_limit_enabled=False), runtime).test_client()
    second = create_app(Settings(rate_limit_enabled=False), runtime).test_client()
    first.post(SCORE, json=score_body())
    scraped = [c.get("/metrics").get_data(as_text=True) for c in (first, second)]
    assert [metric_value(text, "discourse_texts_per_request_count") for text in scraped] == [1, 0]


def test_metrics_are_served_as_openmetrics_on_request(client) -> None:
    response = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert response.content_type.startswith("application/openmetrics-text")
    assert response.get_data(as_text=True).rstrip().endswith("# EOF")


# --- Request log --------------------------------------------------------------------------------------


def test_one_json_line_per_request_with_its_facts_and_never_the_text(runtime) -> None:
    client = create_app(Settings(rate_limit_enabled=False), runtime).test_client()
    stream = capture_log()
    texts = [SECRET_TEXT, "Another short text."]
    response = client.post(SCORE, json=score_body(texts), headers={REQUEST_ID_HEADER: "log-check-1"})
    assert response.status_code == 200
    client.post(SCORE, json={"texts": [{"text": SECRET_TEXT}], "unexpected": 1})
    client.get("/livez")

    records = request_records(stream)
    assert len(records) == 3
    scored, refused, probe = records
    assert scored["request_id"] == "log-check-1"
    assert scored["method"] == "POST" and scored["route"] == SCORE and scored["status"] == 200
    assert scored["texts"] == 2
    assert scored["characters"] == sum(len(t) for t in texts)
    assert scored["reference"] == response.get_json()["reference"]["id"]
    assert scored["latency_ms"] > 0
    assert scored["problem_type"] is None and scored["api_key_id"] is None
    assert scored["level"] == "INFO" and scored["time"].endswith("+00:00")
    assert refused["status"] == 422 and refused["problem_type"] == "validation-error"
    assert refused["texts"] is None
    assert probe["route"] == "/livez" and probe["status"] == 200
    assert SECRET_TEXT not in stream.getvalue()
    assert "zebra" not in stream.getvalue()


def test_building_apps_again_does_not_duplicate_log_lines(runtime) -> None:
    for _ in range(3):
        app = create_app(Settings(rate_limit_enabled=False), runtime)
    stream = capture_log()
    app.test_client().get("/livez")
    assert len(request_records(stream)) == 1


def test_log_level_comes_from_settings(runtime) -> None:
    client = create_app(Settings(rate_limit_enabled=False, log_level="WARNING"), runtime).test_client()
    stream = capture_log()
    client.get("/livez")
    assert request_records(stream) == []
    assert logging.getLogger("discourse").level == logging.WARNING
