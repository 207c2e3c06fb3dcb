"""``POST /v1/score``."""

from __future__ import annotations

from flask import Request, current_app, g
from flask_smorest import Blueprint
from marshmallow import Schema, missing
from webargs.flaskparser import FlaskParser

from service.config import Settings
from service.domain.input_rules import assign_ids
from service.domain.reference_cache import CacheEvent, ReferenceCache, ReferenceNotCachedError, prepare_inline
from service.domain.references import PreparedReference
from service.domain.workload import WorkLimits
from service.http.admission import Deadline
from service.http.examples import SCORE_REQUEST_EXAMPLE
from service.http.problems import Problem
from service.http.schemas import ScoreResponseSchema
from service.http.views.context import current_runtime, current_settings
from service.http.views.documentation import documents_access_problems, documents_problem
from service.http.views.references import describe_scored

REFERENCE_CACHE_KEY = "discourse.reference_cache"
CONTENT_ID_PREFIX = "sha256:"
INLINE_LABEL = "inline"
"""The ``reference`` metric label of every sent reference (their ids would be unbounded)."""


class _ParsedBodyParser(FlaskParser):
    """Hands webargs the body :func:`service.http.body.check_json_body` parsed: it is parsed once."""

    def _raw_load_json(self, req: Request) -> object:
        return g.get("json_body", missing)


class _Blueprint(Blueprint):
    ARGUMENTS_PARSER = _ParsedBodyParser()


def create_blueprint(request_schema: Schema) -> Blueprint:
    """The ``/v1/score`` blueprint of one app, whose body is ``request_schema`` (with its limits)."""
    blp = _Blueprint("scoring", __name__, url_prefix="/v1", description="Score texts against a reference.")

    @blp.route("/score", methods=["POST"])
    @blp.arguments(request_schema, example=SCORE_REQUEST_EXAMPLE)
    @blp.response(200, ScoreResponseSchema)
    @documents_problem(blp, 400, "Body is not UTF-8 JSON (malformed-request).")
    @documents_access_problems(blp)
    @documents_problem(
        blp,
        404,
        "Unknown reference id (unknown-reference), or a `sha256:` id this worker no longer holds: "
        "send the reference object again (reference-not-cached).",
    )
    @documents_problem(blp, 408, "The body arrived too slowly (request-timeout).")
    @documents_problem(blp, 413, "Body over the size limit (payload-too-large).")
    @documents_problem(blp, 415, "Not application/json, or compressed.")
    @documents_problem(
        blp,
        422,
        "Schema violation: missing or extra fields, wrong types, empty list, blank text, "
        "too many texts, text too long, too many sentences or words per text or per request, duplicate "
        "ids; a sent reference without words or over its limit, or a claim without words "
        "(validation-error; `errors` names each field, e.g. `reference.claims.3`, or `texts` for a "
        "per-request limit).",
    )
    @documents_problem(
        blp,
        503,
        "Not ready (starting or draining: not-ready); this worker is already scoring its maximum of "
        "large requests (overloaded); or scoring passed the request deadline and was stopped "
        "(deadline-exceeded). Retry after the seconds in `Retry-After`.",
    )
    def score(payload: dict):
        """Score texts against a reference

        For each text, in order: TF-IDF similarity to the whole reference, the
        probability that it is about the reference (`related`), its overall
        stance with the probability of each label, its similarity and stance
        towards every claim of the reference, warnings, and with `explain: true`
        the evidence (matching passages with offsets, and shared terms).
        """
        return score_request(payload)

    return blp


def score_request(payload: dict) -> dict:
    """Score a request the app's request schema loaded: the API and the web page both call this.

    Looks up the reference, scores, and returns the response document (before
    :class:`ScoreResponseSchema` dumps it). Raises :class:`UnknownReferenceError` and
    :class:`WorkLimitError` (answered through :data:`service.http.errors.PROBLEM_OF`), and for a
    sent reference ``validation-error`` over its length limit, :class:`ReferenceNotCachedError`
    and :class:`service.domain.references.ReferenceContentError`.
    """
    settings = current_settings()
    texts = payload["texts"]
    runtime = current_runtime()
    sent = payload.get("reference")
    if isinstance(sent, dict) and len(sent["text"]) > settings.max_reference_chars:
        raise Problem(
            "validation-error",
            "Over the limits: reference.text.",
            errors=[
                {
                    "field": "reference.text",
                    "message": f"At most {settings.max_reference_chars} characters per reference "
                    f"(this one has {len(sent['text'])}).",
                }
            ],
        )
    reference = resolve_reference(sent)
    # The schema has already refused repeated given ids; defaults never collide with them.
    ids = assign_ids([item.get("id") for item in texts])
    characters = sum(len(item["text"]) for item in texts)
    # Admission: a large request got its slot in the body check, before its JSON was parsed.
    results = runtime.scorer.score(
        [item["text"] for item in texts],
        ids=ids,
        reference_id=reference,
        explain=payload["explain"],
        formats=[item["format"] for item in texts],
        limits=work_limits(settings),
        checkpoint=Deadline(settings.request_deadline),
    )
    # Read by the observability hooks (metrics and the request log), never the texts themselves.
    g.scored = {
        # Sent references get one label value: their ids are unbounded.
        "reference": INLINE_LABEL if reference.id.startswith(CONTENT_ID_PREFIX) else reference.id,
        "texts": len(texts),
        "characters": characters,
        "results": results,
    }
    return {
        "reference": describe_scored(reference),
        "model": {"id": runtime.model.model_id, "version": runtime.model.version},
        "results": results,
    }


def resolve_reference(sent: str | dict | None) -> PreparedReference:
    """The prepared reference a request names: a file reference, a cached sent one, or one sent now.

    Raises :class:`UnknownReferenceError` for an unknown file id,
    :class:`ReferenceNotCachedError` for a ``sha256:`` id this worker does not hold,
    :class:`ReferenceContentError` for a sent reference without words (the error table maps them).
    """
    runtime = current_runtime()
    cache = reference_cache()
    if isinstance(sent, dict):
        prepared, event = prepare_inline(
            cache,
            runtime.model.encoder,
            sent["title"],
            sent["text"],
            sent.get("claims"),
            sent.get("language"),
            sent["format"],
            identify=_language_code,
        )
        g.reference_cache = event
        return prepared
    if isinstance(sent, str) and sent.startswith(CONTENT_ID_PREFIX):
        found = cache.get(sent)
        g.reference_cache = CacheEvent(found is not None, 0, len(cache), cache.bytes)
        if found is None:
            raise ReferenceNotCachedError(sent)
        return found
    return runtime.scorer.reference(sent)


def reference_cache() -> ReferenceCache:
    """This worker's cache of sent references (made by the app factory)."""
    return current_app.extensions[REFERENCE_CACHE_KEY]


def _language_code(text: str) -> str | None:
    found = current_runtime().scorer.languages.identify([text])[0]
    return found.code if found is not None else None


def work_limits(settings: Settings) -> WorkLimits:
    """The sentence and token caps of ``settings``."""
    return WorkLimits(
        max_sentences_per_text=settings.max_sentences_per_text,
        max_tokens_per_text=settings.max_tokens_per_text,
        max_sentences_per_request=settings.max_sentences_per_request,
        max_tokens_per_request=settings.max_tokens_per_request,
    )
