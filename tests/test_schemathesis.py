"""Schemathesis against the app's own ``/openapi.json``: no 5xx, every response as documented.

Every operation of the document is exercised in-process (WSGI) with schema-valid
(positive) and schema-violating (negative) requests, a bounded number of each, and
every response is checked by schemathesis's default checks: no server error, a
documented status code, the documented content type and headers, a body matching
the documented schema, valid data accepted and invalid data rejected.

The app is built at import time rather than from the ``app`` fixture because
``schemathesis.pytest.from_fixture`` fails under pytest 9.2 (it rewrites
``request.node._nodeid``, which pytest 9 removed); it is the same factory, settings
and shipped model as the fixture.

Two kinds of request rule cannot be written in OpenAPI 3.0 and are documented in prose
instead (the 422 description and ``x-limits``): text ids unique within a request, and a
sent reference's text limit and the words in its text and claims. The limits on texts
per request and characters per text are in the schema (maxItems, maxLength) and checked
here as well. A schema-valid request that
breaks one of them must get a 422 validation problem naming the field; every other
check still applies to it.
"""

from __future__ import annotations

import json
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import negative_data_rejection, positive_data_acceptance

from service.config import DEFAULT_MODEL_DIR, DEFAULT_SEEDS_DIR, Settings
from service.domain.normalization import normalize
from service.domain.text import tokenize
from service.http.app import create_app
from service.loaders.runtime import load_runtime

SETTINGS = Settings(rate_limit_enabled=False)
APP = create_app(SETTINGS, runtime=load_runtime(DEFAULT_MODEL_DIR, DEFAULT_SEEDS_DIR))
APP.config["TESTING"] = True

schema = schemathesis.openapi.from_wsgi("/openapi.json", APP)
schema.config.generation.update(modes=list(GenerationMode))
MAX_EXAMPLES = 50


def _body_as_received(case: Any) -> Any:
    """The JSON body as the server decodes it (escaped surrogate pairs become one character)."""
    try:
        return json.loads(json.dumps(case.body))
    except (TypeError, ValueError):
        return None


def _prose_rule_broken(case: Any) -> str | None:
    """The ``errors[].field`` a 422 must name when ``case`` breaks a rule OpenAPI cannot express."""
    body = _body_as_received(case)
    if case.path != "/v1/score" or not isinstance(body, dict) or not isinstance(body.get("texts"), list):
        return None
    texts = [t for t in body["texts"] if isinstance(t, dict)]
    if len(texts) != len(body["texts"]):
        return None
    ids = [t["id"] for t in texts if isinstance(t.get("id"), str)]
    if len(ids) != len(set(ids)) or len(texts) > SETTINGS.max_texts:
        return "texts"
    for i, item in enumerate(texts):
        if isinstance(item.get("text"), str) and len(item["text"]) > SETTINGS.max_text_chars:
            return f"texts.{i}.text"
    # A sent reference: its text within the limit, and words in its text and in each claim
    # (a word is Unicode-aware, which an OpenAPI 3.0 pattern cannot say).
    reference = body.get("reference")
    if isinstance(reference, dict) and isinstance(reference.get("text"), str):
        if len(reference["text"]) > SETTINGS.max_reference_chars:
            return "reference.text"
        if not tokenize(normalize(reference["text"], reference.get("format", "text")).text):
            return "reference.text"
        for k, claim in enumerate(reference.get("claims") or []):
            if isinstance(claim, str) and not tokenize(normalize(claim).text):
                return f"reference.claims.{k}"
    return None


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_every_operation_conforms_and_never_fails(case: Any) -> None:
    """No 5xx; status, media type, headers and body as documented; errors are problem+json."""
    response = case.call()
    assert response.status_code < 500, response.text[:500]
    if response.status_code >= 400:
        assert response.headers["content-type"][0].startswith("application/problem+json")
        problem = response.json()
        assert problem["status"] == response.status_code
    excluded = []
    field = _prose_rule_broken(case) if case.meta.generation.mode.is_positive else None
    if field is not None:
        assert response.status_code == 422, response.text[:500]
        assert field in {e["field"] for e in response.json()["errors"]}
        excluded.append(positive_data_acceptance)
    if response.status_code == 413:
        # Over the body limit (max_body_bytes, which OpenAPI cannot express): refused whole before
        # any schema check. With maxLength in the schema, generated texts can be that large.
        assert response.json()["type"].endswith("/payload-too-large")
        excluded += [positive_data_acceptance, negative_data_rejection]
    case.validate_response(response, excluded_checks=excluded)
    if case.method.upper() == "POST" and case.path == "/v1/score" and response.status_code == 200:
        # Nothing lost: one result per text, in order, ids echoed; a default id is the index
        # unless another text was given that id (service.domain.input_rules), and no two ids are equal.
        texts = _body_as_received(case)["texts"]
        ids = [r["id"] for r in response.json()["results"]]
        given = {t["id"] for t in texts if "id" in t}
        assert len(ids) == len(texts) == len(set(ids))
        for i, (text, got) in enumerate(zip(texts, ids, strict=True)):
            if "id" in text:
                assert got == text["id"]
            else:
                assert got == str(i) if str(i) not in given else got.startswith(f"{i}#")
