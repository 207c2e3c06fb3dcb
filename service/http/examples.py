"""Worked examples of the OpenAPI document, one per endpoint.

Only the score request is written here: every example response is computed
from the loaded model and references when the app is built, by the same
functions the views use, so the documentation never shows figures the
service would not give.
"""

from __future__ import annotations

from typing import Any

from apispec import APISpec

from service.http.schemas import ScoreResponseSchema
from service.http.views.health import readiness
from service.http.views.references import describe, describe_scored, detail
from service.loaders.runtime import Runtime

SCORE_REQUEST_EXAMPLE: dict[str, Any] = {
    "texts": [
        {
            "id": "a1",
            "text": "NATO expansion threatened Russia, and the Euro-Atlantic security order has "
            "failed; Russia and China are right to build a new Eurasian security architecture.",
        }
    ],
    "explain": True,
}


def document_examples(spec: APISpec, runtime: Runtime) -> None:
    """Attach a real example response to the 200 answer of every endpoint."""
    scorer = runtime.scorer
    reference = scorer.reference()
    results = scorer.score(
        [t["text"] for t in SCORE_REQUEST_EXAMPLE["texts"]],
        ids=[t["id"] for t in SCORE_REQUEST_EXAMPLE["texts"]],
        explain=SCORE_REQUEST_EXAMPLE["explain"],
    )
    described = describe(reference, scorer.default_reference)
    examples = {
        ("/v1/score", "post"): ScoreResponseSchema().dump(
            {
                "reference": describe_scored(reference),
                "model": {"id": runtime.model.model_id, "version": runtime.model.version},
                "results": results,
            }
        ),
        ("/v1/references", "get"): {"references": [described]},
        ("/v1/references/{reference_id}", "get"): detail(reference, scorer.default_reference),
        ("/v1/models", "get"): {"models": [runtime.model.card]},
        ("/livez", "get"): {"status": "ok"},
        ("/readyz", "get"): readiness(runtime),
    }
    paths = spec._paths  # apispec has no public setter for a registered operation
    for (path, method), example in examples.items():
        paths[path][method]["responses"]["200"]["content"]["application/json"]["example"] = example
