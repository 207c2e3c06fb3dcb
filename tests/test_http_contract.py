"""The HTTP contract through the Flask test client: every endpoint, every error, the OpenAPI document."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate as validate_spec

from service.config import Settings
from service.domain.errors import DiscourseError
from service.domain.stance import STANCE_LABELS
from service.http.app import create_app
from service.loaders.runtime import Runtime, load_runtime

PROBLEM_FIELDS = {"type", "title", "status", "detail"}
ON_TOPIC = "NATO expansion is a threat to Russia's security. The Euro-Atlantic security order has failed."
OFF_TOPIC = "Roast the tomatoes with garlic and basil for forty minutes, then blend them into a soup."

# The limits of the `limited` app.
MAX_BODY = 4000
MAX_TEXTS = 3
MAX_CHARS = 300


@pytest.fixture(scope="module")
def spec(runtime: Runtime) -> dict:
    """The OpenAPI document the app serves."""
    app = create_app(Settings(rate_limit_enabled=False), runtime=runtime)
    response = app.test_client().get("/openapi.json")
    assert response.status_code == 200
    return response.get_json()


@pytest.fixture(scope="module")
def limited(runtime: Runtime) -> FlaskClient:
    """A client of an app with small, configured limits."""
    settings = Settings(
        rate_limit_enabled=False, max_body_bytes=MAX_BODY, max_texts=MAX_TEXTS, max_text_chars=MAX_CHARS
    )
    app = create_app(settings, runtime=runtime)
    app.config["TESTING"] = True
    return app.test_client()


def conforms(spec: dict, schema_name: str, instance: Any) -> list[str]:
    """Messages of every way ``instance`` breaks the named component schema (empty if it conforms)."""
    validator = OAS30Validator(
        {"$ref": f"#/components/schemas/{schema_name}", "components": spec["components"]}
    )
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(instance)]


def assert_problem(response, status: int, slug: str, spec: dict | None = None) -> dict:
    """``response`` is an RFC 9457 problem of ``status`` and type ``slug``, without internals."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert set(body) >= PROBLEM_FIELDS
    assert body["status"] == status
    assert body["type"] == f"/problems/{slug}"
    assert body["title"] and body["detail"]
    text = response.get_data(as_text=True)
    assert "Traceback" not in text and 'File "' not in text and "service/" not in text
    if spec is not None:
        assert conforms(spec, "Problem", body) == []
    return body


def error_fields(body: dict) -> set[str]:
    return {e["field"] for e in body["errors"]}


def post_json(client: FlaskClient, payload: Any):
    return client.post("/v1/score", json=payload)


# -- POST /v1/score ------------------------------------------------------------


def test_score_returns_results_in_order_with_ids(client: FlaskClient, spec: dict, runtime: Runtime) -> None:
    texts = [
        {"id": "b", "text": OFF_TOPIC},
        {"id": "a", "text": ON_TOPIC},
        {"text": "NATO threatens Russia."},
    ]
    response = post_json(client, {"texts": texts})
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert conforms(spec, "ScoreResponse", body) == []
    reference = runtime.scorer.reference()
    assert {k: body["reference"][k] for k in ("id", "title", "language", "claims_origin")} == {
        "id": reference.id,
        "title": reference.reference.title,
        "language": "en",
        "claims_origin": reference.claims_origin,
    }
    assert [c["id"] for c in body["reference"]["claims"]] == [c.id for c in reference.claims]
    assert body["model"] == {"id": runtime.model.model_id, "version": runtime.model.version}
    results = body["results"]
    assert [r["id"] for r in results] == ["b", "a", "2"]  # a missing id is the text's index
    for result in results:
        assert "evidence" not in result
        assert set(result["stance"]["scores"]) == set(STANCE_LABELS)
        assert sum(result["stance"]["scores"].values()) == pytest.approx(1.0, abs=1e-9)
        assert 0.0 <= result["similarity"] <= 1.0
        assert [c["id"] for c in result["claims"]] == [c.id for c in reference.claims]
    assert results[0]["stance"]["label"] == "unrelated"
    assert results[1]["stance"]["label"] != "unrelated"
    assert [w["code"] for w in results[2]["warnings"]] == ["too_short"]
    # The same as the domain scorer gives.
    domain = runtime.scorer.score([t["text"] for t in texts], ids=["b", "a", "2"])
    assert [r["stance"]["scores"] for r in results] == [r.stance.scores for r in domain]


def test_score_with_explain_gives_evidence_with_offsets_into_both_texts(
    client: FlaskClient, spec: dict, runtime: Runtime
) -> None:
    text = "Smile 🙂. NATO expansion is a threat to Russia's security.\n\nCooking is fun."
    response = post_json(client, {"texts": [{"id": "x", "text": text}], "explain": True})
    assert response.status_code == 200
    body = response.get_json()
    assert conforms(spec, "ScoreResponse", body) == []
    evidence = body["results"][0]["evidence"]
    reference_text = client.get(f"/v1/references/{body['reference']['id']}").get_json()["text"]
    assert evidence["passages"]
    for passage in evidence["passages"]:
        sentence = text[passage["text_start"] : passage["text_end"]]
        assert sentence and sentence == sentence.strip() and sentence in text
        assert (
            reference_text[passage["reference_start"] : passage["reference_end"]]
            == passage["reference_passage"]
        )
    best = evidence["passages"][0]
    assert text[best["text_start"] : best["text_end"]] == "NATO expansion is a threat to Russia's security."
    assert "nato" in {t["term"] for t in evidence["shared_terms"]}


def test_reference_passages_match_the_reference_text_even_with_invisible_characters(
    runtime: Runtime, tmp_path: Path
) -> None:
    (tmp_path / "soft.toml").write_text(
        'id = "soft"\ntitle = "NATO"\nbody = "NATO expan\u00adsion is a threat to Russia. Cooking is fun."\n',
        encoding="utf-8",
    )
    custom = load_runtime(runtime.model.directory, tmp_path)
    client = create_app(Settings(rate_limit_enabled=False), runtime=custom).test_client()
    payload = {"texts": [{"text": "NATO expansion is a threat to Russia."}], "explain": True}
    passage = post_json(client, payload).get_json()["results"][0]["evidence"]["passages"][0]
    text = client.get("/v1/references/soft").get_json()["text"]
    assert text[passage["reference_start"] : passage["reference_end"]] == passage["reference_passage"]


def test_html_texts_are_read_as_markup_with_offsets_into_the_html_as_sent(
    client: FlaskClient, spec: dict
) -> None:
    html = (
        '<p>NATO <b>expansion</b> is a threat to Russia&#8217;s security.</p><p>The <a href="https://x.org">'
        "Euro-Atlantic</a> security order has failed.</p>"
    )
    plain = "NATO expansion is a threat to Russia's security. The Euro-Atlantic security order has failed."
    response = post_json(
        client,
        {"texts": [{"text": html, "format": "html"}, {"text": plain}, {"text": html}], "explain": True},
    )
    assert response.status_code == 200
    body = response.get_json()
    assert conforms(spec, "ScoreResponse", body) == []
    as_html, as_plain, as_text = body["results"]
    for key in ("similarity", "related", "stance", "claims"):
        assert as_html[key] == as_plain[key]
    assert as_html["language"]["code"] == "en" and 0.5 < as_html["language"]["probability"] <= 1
    assert as_text["warnings"][0]["code"] == "markup_detected"
    best = as_html["evidence"]["passages"][0]
    assert html[best["text_start"] : best["text_end"]] == (
        "NATO <b>expansion</b> is a threat to Russia&#8217;s security."
    )


def test_a_text_in_another_language_has_a_null_stance(client: FlaskClient, spec: dict) -> None:
    text = "Расширение НАТО угрожает безопасности России, а евро-атлантический порядок безопасности рухнул."
    response = post_json(client, {"texts": [{"text": text}]})
    assert response.status_code == 200
    body = response.get_json()
    assert conforms(spec, "ScoreResponse", body) == []
    (result,) = body["results"]
    assert result["stance"] is None and result["related"] is None
    assert all(c["stance"] is None and c["related"] is None for c in result["claims"])
    assert result["language"]["code"] == "ru"
    assert result["warnings"][0]["code"] == "language_mismatch"


def test_an_unknown_format_is_422_naming_the_field(client: FlaskClient, spec: dict) -> None:
    response = post_json(client, {"texts": [{"text": "NATO", "format": "pdf"}]})
    problem = assert_problem(response, 422, "validation-error", spec)
    assert [e["field"] for e in problem["errors"]] == ["texts.0.format"]


def test_score_against_a_named_reference(client: FlaskClient, runtime: Runtime) -> None:
    reference_id = runtime.scorer.default_reference
    response = post_json(client, {"texts": [{"text": ON_TOPIC}], "reference": reference_id, "explain": False})
    assert response.status_code == 200
    assert response.get_json()["reference"]["id"] == reference_id


def test_score_accepts_a_json_media_type_with_utf8_charset(client: FlaskClient) -> None:
    response = client.post(
        "/v1/score",
        data='{"texts": [{"text": "NATO – Россия 🙂"}]}'.encode(),
        content_type="application/json; charset=utf-8",
    )
    assert response.status_code == 200


# -- errors of POST /v1/score ----------------------------------------------------


@pytest.mark.parametrize(
    ("data", "content_type", "status", "slug"),
    [
        (b'{"texts": [', "application/json", 400, "malformed-request"),
        (b"", "application/json", 400, "malformed-request"),
        (b'{"texts": [{"text": "caf\xe9"}]}', "application/json", 400, "malformed-request"),
        (b'{"texts": [{"text": "a"}], "texts": []}', "application/json", 400, "malformed-request"),
        (b'{"texts": [{"text": "a"}], "explain": NaN}', "application/json", 400, "malformed-request"),
        (b'{"texts": [{"text": "a"}]}', "text/plain", 415, "unsupported-media-type"),
        (b"texts=a", "application/x-www-form-urlencoded", 415, "unsupported-media-type"),
        (b'{"texts": [{"text": "a"}]}', None, 415, "unsupported-media-type"),
        (b'{"texts": [{"text": "a"}]}', "application/json; charset=latin-1", 415, "unsupported-media-type"),
    ],
    ids=[
        "truncated JSON",
        "empty body",
        "invalid UTF-8",
        "duplicate key",
        "NaN",
        "text/plain",
        "form",
        "no content type",
        "latin-1 charset",
    ],
)
def test_unreadable_bodies_are_refused(
    client: FlaskClient, spec: dict, data: bytes, content_type: str | None, status: int, slug: str
) -> None:
    response = client.post("/v1/score", data=data, content_type=content_type)
    body = assert_problem(response, status, slug, spec)
    if "xe9" in repr(data):
        assert "UTF-8" in body["detail"]


@pytest.mark.parametrize(
    ("payload", "fields"),
    [
        ({}, {"texts"}),
        ({"texts": [{"text": "a"}], "extra": 1}, {"extra"}),
        ({"texts": [{"text": "a", "lang": "en"}]}, {"texts.0.lang"}),
        ({"texts": [{"id": "a"}]}, {"texts.0.text"}),
        ({"texts": "NATO is a threat"}, {"texts"}),
        ({"texts": ["NATO is a threat"]}, {"texts.0"}),
        ({"texts": [{"text": 5}]}, {"texts.0.text"}),
        ({"texts": [{"text": None}]}, {"texts.0.text"}),
        ({"texts": [{"text": "a", "id": 5}]}, {"texts.0.id"}),
        ({"texts": [{"text": "a", "id": ""}]}, {"texts.0.id"}),
        ({"texts": [{"text": "a"}], "explain": "yes please"}, {"explain"}),
        ({"texts": [{"text": "a"}], "reference": 5}, {"reference"}),
        ({"texts": []}, {"texts"}),
        ({"texts": [{"text": "ok"}, {"text": ""}]}, {"texts.1.text"}),
        ({"texts": [{"text": " \n\t "}]}, {"texts.0.text"}),
        ({"texts": [{"text": "\u3000\u00a0\u2003"}]}, {"texts.0.text"}),
        ({"texts": [{"id": "same", "text": "a"}, {"id": "same", "text": "b"}]}, {"texts"}),
        ([{"text": "a"}], {"$"}),
    ],
    ids=[
        "missing texts",
        "extra field",
        "extra field in a text",
        "missing text",
        "texts not a list",
        "text not an object",
        "text a number",
        "text null",
        "id a number",
        "empty id",
        "explain not a boolean",
        "reference a number",
        "empty list",
        "empty text",
        "whitespace text",
        "unicode whitespace text",
        "duplicate ids",
        "body a list",
    ],
)
def test_schema_violations_are_422_naming_the_field(
    client: FlaskClient, spec: dict, payload: Any, fields: set[str]
) -> None:
    body = assert_problem(post_json(client, payload), 422, "validation-error", spec)
    assert error_fields(body) == fields
    assert all(e["message"] for e in body["errors"])
    for field in fields:
        assert field in body["detail"]


def test_too_many_texts_is_422_on_texts(limited: FlaskClient, spec: dict) -> None:
    at_limit = post_json(limited, {"texts": [{"text": f"text {i}"} for i in range(MAX_TEXTS)]})
    assert at_limit.status_code == 200
    body = assert_problem(
        post_json(limited, {"texts": [{"text": f"text {i}"} for i in range(MAX_TEXTS + 1)]}),
        422,
        "validation-error",
        spec,
    )
    assert error_fields(body) == {"texts"}
    assert str(MAX_TEXTS) in body["errors"][0]["message"]
    assert body["detail"] == f"Over the limits: texts ({MAX_TEXTS + 1} given)."


def test_too_long_texts_are_422_naming_each_one(limited: FlaskClient, spec: dict) -> None:
    at_limit = post_json(limited, {"texts": [{"text": "é" * MAX_CHARS}]})  # characters, not bytes
    assert at_limit.status_code == 200
    texts = [{"text": "x" * (MAX_CHARS + 1)}, {"text": "fine"}, {"text": "y" * (MAX_CHARS + 5)}]
    body = assert_problem(post_json(limited, {"texts": texts}), 422, "validation-error", spec)
    assert error_fields(body) == {"texts.0.text", "texts.2.text"}
    assert str(MAX_CHARS) in body["errors"][0]["message"]
    assert body["detail"] == "Over the limits: texts.0.text, texts.2.text."


def test_a_body_over_the_limit_is_413(limited: FlaskClient, spec: dict) -> None:
    under = post_json(limited, {"texts": [{"text": "a " * 100}]})
    assert under.status_code == 200
    payload = {"texts": [{"text": "word " * 50} for _ in range(MAX_TEXTS)], "explain": False}
    payload["texts"][0]["text"] = "a" * 200 + " " + "b" * (MAX_BODY - 100)
    response = post_json(limited, payload)
    assert_problem(response, 413, "payload-too-large", spec)


def test_unknown_reference_is_404(client: FlaskClient, spec: dict) -> None:
    body = assert_problem(
        post_json(client, {"texts": [{"text": ON_TOPIC}], "reference": "no-such-reference"}),
        404,
        "unknown-reference",
        spec,
    )
    assert "no-such-reference" in body["detail"]
    assert error_fields(body) == {"reference"}


# -- other endpoints -------------------------------------------------------------


def test_list_references(client: FlaskClient, spec: dict, runtime: Runtime) -> None:
    response = client.get("/v1/references")
    assert response.status_code == 200
    body = response.get_json()
    assert conforms(spec, "ReferenceList", body) == []
    assert [r["id"] for r in body["references"]] == list(runtime.scorer.references)
    (reference,) = body["references"]
    assert reference["default"] is True
    assert "text" not in reference
    prepared = runtime.scorer.reference()
    assert reference["metadata"] == prepared.reference.metadata
    assert [c["id"] for c in reference["claims"]] == [c.id for c in prepared.claims]


def test_get_one_reference_with_its_text(client: FlaskClient, spec: dict, runtime: Runtime) -> None:
    reference_id = runtime.scorer.default_reference
    response = client.get(f"/v1/references/{reference_id}")
    assert response.status_code == 200
    body = response.get_json()
    assert conforms(spec, "ReferenceDetail", body) == []
    assert body["id"] == reference_id
    text = body["text"]
    prepared = runtime.scorer.reference()
    for claim, stated in zip(body["claims"], prepared.claims, strict=True):
        assert stated.source is not None
        assert text[claim["source_start"] : claim["source_end"]] == stated.source.text


def test_unknown_reference_id_is_404(client: FlaskClient, spec: dict) -> None:
    by_path = assert_problem(client.get("/v1/references/no-such-reference"), 404, "unknown-reference", spec)
    in_body = assert_problem(
        post_json(client, {"texts": [{"text": ON_TOPIC}], "reference": "no-such-reference"}),
        404,
        "unknown-reference",
    )
    # One mapping from the error to its problem, whichever way the id came.
    for key in ("type", "title", "status", "detail", "errors"):
        assert by_path[key] == in_body[key]


def test_models_lists_the_loaded_card(client: FlaskClient, spec: dict, runtime: Runtime) -> None:
    response = client.get("/v1/models")
    assert response.status_code == 200
    body = response.get_json()
    assert conforms(spec, "ModelList", body) == []
    (card,) = body["models"]
    assert card == runtime.model.card


def test_liveness_and_readiness(client: FlaskClient, spec: dict) -> None:
    live = client.get("/livez")
    assert live.status_code == 200 and live.get_json()["status"] == "ok"
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert conforms(spec, "Health", ready.get_json()) == []
    assert ready.get_json()["status"] == "ready"


def test_readiness_is_503_while_draining(runtime: Runtime, tmp_path: Path, spec: dict) -> None:
    flag = tmp_path / "draining"
    app = create_app(Settings(rate_limit_enabled=False, draining_flag=flag), runtime=runtime)
    client = app.test_client()
    assert client.get("/readyz").status_code == 200
    flag.touch()
    assert_problem(client.get("/readyz"), 503, "not-ready", spec)
    assert client.get("/livez").status_code == 200


def test_unknown_path_is_404(client: FlaskClient, spec: dict) -> None:
    for path in ("/nope", "/v1/score/extra", "/v2/score", "/docs/assets/no-such-file.js"):
        assert_problem(client.get(path), 404, "not-found", spec)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("get", "/v1/score", {"POST"}),
        ("put", "/v1/score", {"POST"}),
        ("delete", "/v1/references", {"GET"}),
        ("post", "/v1/models", {"GET"}),
        ("post", "/readyz", {"GET"}),
    ],
)
def test_wrong_method_is_405_with_allow(
    client: FlaskClient, spec: dict, method: str, path: str, allowed: set[str]
) -> None:
    response = getattr(client, method)(path, json={"texts": [{"text": "a"}]})
    assert_problem(response, 405, "method-not-allowed", spec)
    assert allowed <= {m.strip() for m in response.headers["Allow"].split(",")}


def test_request_ids_are_echoed_or_made(client: FlaskClient) -> None:
    given = client.get("/livez", headers={"X-Request-ID": "abc-123"})
    assert given.headers["X-Request-ID"] == "abc-123"
    made = client.post("/v1/score", json={})
    request_id = made.headers["X-Request-ID"]
    assert request_id and made.get_json()["request_id"] == request_id


def test_unexpected_errors_are_500_problems_without_details(runtime: Runtime, monkeypatch) -> None:
    app: Flask = create_app(Settings(rate_limit_enabled=False), runtime=runtime)

    def explode(*_args, **_kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(runtime.scorer, "score", explode)
    response = app.test_client().post("/v1/score", json={"texts": [{"text": "NATO"}]})
    body = assert_problem(response, 500, "internal-error")
    assert "secret" not in response.get_data(as_text=True)
    assert body["detail"] == "An unexpected error occurred; it was logged."


def test_a_user_error_outside_the_problem_table_is_still_a_500(runtime: Runtime, monkeypatch) -> None:
    """Only the table's errors become 4xx problems: a DiscourseError raised in the HTTP layer is a bug."""
    app: Flask = create_app(Settings(rate_limit_enabled=False), runtime=runtime)

    def refuse(*_args, **_kwargs):
        raise DiscourseError("DISCOURSE_SOMETHING is wrong")

    monkeypatch.setattr(runtime.scorer, "score", refuse)
    response = app.test_client().post("/v1/score", json={"texts": [{"text": "NATO"}]})
    body = assert_problem(response, 500, "internal-error")
    assert "DISCOURSE_SOMETHING" not in response.get_data(as_text=True)
    assert body["detail"] == "An unexpected error occurred; it was logged."


# -- the OpenAPI document and the docs page --------------------------------------

OPERATIONS = {
    ("/v1/score", "post"),
    ("/v1/references", "get"),
    ("/v1/references/{reference_id}", "get"),
    ("/v1/models", "get"),
    ("/livez", "get"),
    ("/readyz", "get"),
}


def resolve(spec: dict, item: dict) -> dict:
    """Follow a local ``$ref``."""
    while "$ref" in item:
        node: Any = spec
        for part in item["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        item = node
    return item


def test_openapi_document_is_valid_openapi_3(spec: dict) -> None:
    validate_spec(spec)
    assert spec["openapi"].startswith("3.")
    assert spec["info"]["title"] == "discourse-compare"


def test_openapi_documents_every_endpoint(spec: dict) -> None:
    documented = {
        (path, method) for path, item in spec["paths"].items() for method in item if method != "parameters"
    }
    assert documented == OPERATIONS
    for path, method in OPERATIONS:
        assert "200" in spec["paths"][path][method]["responses"], (path, method)


def test_openapi_documents_the_problem_responses(spec: dict) -> None:
    problem = spec["components"]["schemas"]["Problem"]
    assert set(problem["required"]) >= PROBLEM_FIELDS
    score = spec["paths"]["/v1/score"]["post"]["responses"]
    assert {"400", "404", "413", "415", "422"} <= set(score)
    assert "404" in spec["paths"]["/v1/references/{reference_id}"]["get"]["responses"]
    assert "503" in spec["paths"]["/readyz"]["get"]["responses"]
    for path, method in OPERATIONS:
        for status, response in spec["paths"][path][method]["responses"].items():
            if status == "200":
                continue
            content = resolve(spec, response)["content"]
            assert list(content) == ["application/problem+json"], (path, method, status)
            assert content["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}


def test_openapi_documents_the_configured_limits(limited: FlaskClient) -> None:
    spec = limited.get("/openapi.json").get_json()
    assert {key: spec["x-limits"][key] for key in ("max_body_bytes", "max_texts", "max_text_chars")} == {
        "max_body_bytes": MAX_BODY,
        "max_texts": MAX_TEXTS,
        "max_text_chars": MAX_CHARS,
    }
    # The request's limits document themselves in its schema.
    schemas = spec["components"]["schemas"]
    assert schemas["ScoreRequest"]["properties"]["texts"]["maxItems"] == MAX_TEXTS
    assert schemas["TextInput"]["properties"]["text"]["maxLength"] == MAX_CHARS
    assert f"at most {MAX_TEXTS}," in schemas["ScoreRequest"]["properties"]["texts"]["description"]
    assert f"{MAX_BODY} bytes" in spec["info"]["description"]


def test_every_schema_and_field_of_the_api_is_described(spec: dict) -> None:
    """/docs explains each schema (its docstring) and each field (its description)."""
    for name, schema in spec["components"]["schemas"].items():
        if name == "PaginationMetadata":  # flask-smorest's own, unused by this API
            continue
        assert schema.get("description"), name
        for field, prop in schema.get("properties", {}).items():
            assert prop.get("description"), f"{name}.{field}"


def test_openapi_examples_conform_to_their_schemas(spec: dict) -> None:
    operation = spec["paths"]["/v1/score"]["post"]
    request = operation["requestBody"]["content"]["application/json"]
    assert conforms(spec, "ScoreRequest", request["example"]) == []
    response = operation["responses"]["200"]["content"]["application/json"]
    assert conforms(spec, "ScoreResponse", response["example"]) == []


def test_docs_page_serves_its_assets_locally(client: FlaskClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets)
    assert not re.search(r"https?://", html), "the docs page must not load anything from another site"
    for asset in assets:
        assert asset.startswith("/docs/assets/"), asset
        response = client.get(asset)
        assert response.status_code == 200, asset
        assert len(response.data) > 1000
        assert response.mimetype in {"text/css", "text/javascript", "application/javascript"}
    assert "/openapi.json" in html
