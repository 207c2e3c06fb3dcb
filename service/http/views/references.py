"""``GET /v1/references`` and ``GET /v1/references/<id>``."""

from __future__ import annotations

from flask_smorest import Blueprint

from service.domain.references import PreparedReference
from service.http.schemas import ReferenceDetailSchema, ReferenceListSchema
from service.http.views.context import current_runtime
from service.http.views.documentation import documents_access_problems, documents_problem

blp = Blueprint("references", __name__, url_prefix="/v1", description="Reference documents and their claims.")


def describe(prepared: PreparedReference, default_id: str) -> dict:
    """The API form of a reference (without its text)."""
    reference = prepared.reference
    return {
        "id": reference.id,
        "title": reference.title,
        "default": reference.id == default_id,
        "metadata": reference.metadata,
        "claims_origin": prepared.claims_origin,
        "languages": [prepared.language, *prepared.variants],
        "claims": [
            {
                "id": claim.id,
                "text": claim.text,
                "source_start": claim.source.start if claim.source else None,
                "source_end": claim.source.end if claim.source else None,
            }
            for claim in prepared.claims
        ],
    }


def describe_scored(prepared: PreparedReference) -> dict:
    """The ``reference`` of a score response: id, title, language, and the claims used with their origin."""
    described = describe(prepared, "")
    return {
        "id": described["id"],
        "title": described["title"],
        "language": prepared.reference.metadata.get("language", "en"),
        "claims_origin": described["claims_origin"],
        "claims": described["claims"],
    }


@blp.route("/references", methods=["GET"])
@blp.response(200, ReferenceListSchema)
@documents_access_problems(blp)
def list_references():
    """List the reference documents

    Each with its metadata, whether it is the default, and its main claims.
    """
    scorer = current_runtime().scorer
    return {"references": [describe(r, scorer.default_reference) for r in scorer.references.values()]}


@blp.route("/references/<string:reference_id>", methods=["GET"])
@blp.response(200, ReferenceDetailSchema)
@documents_access_problems(blp)
@documents_problem(blp, 404, "Unknown reference id.")
def get_reference(reference_id: str):
    """Get one reference document with its text

    `text` is the body as written; evidence offsets (`reference_start`,
    `reference_end`) and claim sources index into it.
    """
    scorer = current_runtime().scorer
    prepared = scorer.reference(reference_id)  # UnknownReferenceError: a 404 problem
    return detail(prepared, scorer.default_reference)


def detail(prepared: PreparedReference, default_id: str) -> dict:
    """The API form of a reference with its text and its language variants."""
    return {
        **describe(prepared, default_id),
        "text": prepared.reference.body,
        "variants": {
            language: {
                "title": variant.reference.title,
                "text": variant.reference.body,
                "claims": describe(variant, default_id)["claims"],
            }
            for language, variant in prepared.variants.items()
        },
    }
