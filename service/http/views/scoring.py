"""``POST /v1/score``."""

from __future__ import annotations

from flask import g
from flask_smorest import Blueprint

from service.domain.scorer import UnknownReferenceError
from service.http.examples import SCORE_REQUEST_EXAMPLE
from service.http.problems import PROBLEM_MEDIA_TYPE, Problem
from service.http.schemas import ProblemSchema, ScoreRequestSchema, ScoreResponseSchema
from service.http.views.context import current_runtime, current_settings

blp = Blueprint("scoring", __name__, url_prefix="/v1", description="Score texts against a reference.")


@blp.route("/score", methods=["POST"])
@blp.arguments(ScoreRequestSchema, example=SCORE_REQUEST_EXAMPLE)
@blp.response(200, ScoreResponseSchema)
@blp.alt_response(
    400,
    schema=ProblemSchema,
    content_type=PROBLEM_MEDIA_TYPE,
    description="Body is not UTF-8 JSON (malformed-request).",
)
@blp.alt_response(
    401,
    schema=ProblemSchema,
    content_type=PROBLEM_MEDIA_TYPE,
    description="API keys are configured and none valid was sent.",
)
@blp.alt_response(
    404,
    schema=ProblemSchema,
    content_type=PROBLEM_MEDIA_TYPE,
    description="Unknown reference id (unknown-reference).",
)
@blp.alt_response(
    413,
    schema=ProblemSchema,
    content_type=PROBLEM_MEDIA_TYPE,
    description="Body over the size limit (payload-too-large).",
)
@blp.alt_response(
    415,
    schema=ProblemSchema,
    content_type=PROBLEM_MEDIA_TYPE,
    description="Not application/json, or compressed.",
)
@blp.alt_response(
    422,
    schema=ProblemSchema,
    content_type=PROBLEM_MEDIA_TYPE,
    description="Schema violation: missing or extra fields, wrong types, empty list, blank text, "
    "too many texts, text too long, duplicate ids (validation-error; `errors` names each field).",
)
@blp.alt_response(
    429,
    schema=ProblemSchema,
    content_type=PROBLEM_MEDIA_TYPE,
    description="Rate limit exceeded; see Retry-After.",
)
@blp.alt_response(
    503,
    schema=ProblemSchema,
    content_type=PROBLEM_MEDIA_TYPE,
    description="Not ready (starting or draining).",
)
def score(payload: dict):
    """Score texts against a reference

    For each text, in order: TF-IDF similarity to the whole reference, the
    probability that it is about the reference (`related`), its overall
    stance with the probability of each label, its similarity and stance
    towards every claim of the reference, warnings, and with `explain: true`
    the evidence (matching passages with offsets, and shared terms).
    """
    settings = current_settings()
    texts = payload["texts"]
    errors = []
    if len(texts) > settings.max_texts:
        errors.append({"field": "texts", "message": f"At most {settings.max_texts} texts per request."})
    for i, item in enumerate(texts):
        if len(item["text"]) > settings.max_text_chars:
            errors.append(
                {
                    "field": f"texts.{i}.text",
                    "message": f"At most {settings.max_text_chars} characters per text "
                    f"(this one has {len(item['text'])}).",
                }
            )
    if errors:
        fields = ", ".join(e["field"] for e in errors[:5]) + (" …" if len(errors) > 5 else "")
        raise Problem("validation-error", f"Over the limits: {fields}.", errors=errors)

    runtime = current_runtime()
    try:
        reference = runtime.scorer.reference(payload.get("reference"))
    except UnknownReferenceError as error:
        raise Problem(
            "unknown-reference",
            f"{error}; GET /v1/references lists the available ones.",
            errors=[{"field": "reference", "message": str(error)}],
        ) from None
    ids = [item.get("id", str(i)) for i, item in enumerate(texts)]
    results = runtime.scorer.score(
        [item["text"] for item in texts], ids=ids, reference_id=reference.id, explain=payload["explain"]
    )
    # Read by the observability hooks (metrics and the request log), never the texts themselves.
    g.scored = {
        "reference": reference.id,
        "texts": len(texts),
        "characters": sum(len(item["text"]) for item in texts),
        "results": results,
    }
    return {
        "reference": {"id": reference.id, "title": reference.reference.title},
        "model": {"id": runtime.model.model_id, "version": runtime.model.version},
        "results": results,
    }
