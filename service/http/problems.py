"""RFC 9457 problem details: the one error shape of the API.

Every 4xx and 5xx answer is ``application/problem+json`` with ``type``,
``title``, ``status``, ``detail``, ``instance`` (the request id as a URN)
and ``request_id``; validation problems add ``errors``, a list of
``{"field": "texts.3.text", "message": ...}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Response, g, json

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "/problems/"


@dataclass(frozen=True)
class ProblemType:
    """A kind of problem: its URI slug, HTTP status and human title."""

    slug: str
    status: int
    title: str
    retry: bool = False  # whether retrying the same request later can succeed

    @property
    def uri(self) -> str:
        """The problem type URI (relative to the API root, as RFC 9457 allows)."""
        return PROBLEM_BASE + self.slug


PROBLEM_TYPES: dict[str, ProblemType] = {
    t.slug: t
    for t in (
        ProblemType("malformed-request", 400, "The request body is not valid JSON"),
        ProblemType("unauthorized", 401, "A valid API key is required"),
        ProblemType("not-found", 404, "No such resource"),
        ProblemType("unknown-reference", 404, "No reference has this id"),
        ProblemType("reference-not-cached", 404, "This sent reference is no longer cached; send it again"),
        ProblemType("method-not-allowed", 405, "Method not allowed on this resource"),
        ProblemType("not-acceptable", 406, "No acceptable representation"),
        ProblemType("payload-too-large", 413, "The request body is too large"),
        ProblemType("uri-too-long", 414, "The request URI is too long"),
        ProblemType("unsupported-media-type", 415, "Send the body as application/json"),
        ProblemType("validation-error", 422, "The request does not match the schema"),
        ProblemType("rate-limited", 429, "Too many requests", retry=True),
        ProblemType("request-header-too-large", 431, "Request header fields too large"),
        ProblemType("internal-error", 500, "Internal error", retry=True),
        ProblemType("not-ready", 503, "The service is not ready", retry=True),
        ProblemType("request-timeout", 408, "The request body arrived too slowly", retry=True),
        ProblemType("overloaded", 503, "Too many large requests in progress", retry=True),
        ProblemType("deadline-exceeded", 503, "Scoring took longer than the deadline", retry=True),
        # Never seen by the client (it has gone); recorded in the log and metrics, as nginx does.
        ProblemType("client-closed-request", 499, "The client closed the connection"),
        ProblemType("bad-request", 400, "Bad request"),
    )
}

_BY_STATUS: dict[int, ProblemType] = {}
for _t in PROBLEM_TYPES.values():
    _BY_STATUS.setdefault(_t.status, _t)


@dataclass
class Problem(Exception):
    """Raise to answer with a problem document."""

    slug: str
    detail: str
    errors: list[dict[str, str]] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    extensions: dict[str, Any] = field(default_factory=dict)

    @property
    def type(self) -> ProblemType:
        """The problem type."""
        return PROBLEM_TYPES[self.slug]


def problem_type_for_status(status: int) -> ProblemType:
    """The generic problem type of an HTTP status (``bad-request`` for an unlisted 4xx)."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return PROBLEM_TYPES["internal-error"] if status >= 500 else PROBLEM_TYPES["bad-request"]


def problem_response(problem: Problem) -> Response:
    """Render a :class:`Problem` as an ``application/problem+json`` response."""
    kind = problem.type
    request_id = getattr(g, "request_id", None)
    body: dict[str, Any] = {
        "type": kind.uri,
        "title": kind.title,
        "status": kind.status,
        "detail": problem.detail,
    }
    if request_id:
        body["instance"] = f"urn:request:{request_id}"
        body["request_id"] = request_id
    if problem.errors:
        body["errors"] = problem.errors
    body.update(problem.extensions)
    # Remembered for the request log and the errors metric.
    g.problem_type = kind.slug
    response = Response(json.dumps(body), status=kind.status, mimetype=PROBLEM_MEDIA_TYPE)
    for name, value in problem.headers.items():
        response.headers[name] = value
    return response


def flatten_messages(messages: Any, prefix: str = "") -> list[dict[str, str]]:
    """Turn marshmallow's nested error messages into ``[{"field": "a.0.b", "message": ...}]``.

    ``_schema`` entries (errors of a whole object) take the object's own path.
    """
    errors: list[dict[str, str]] = []
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            path = prefix if key == "_schema" else (f"{prefix}.{key}" if prefix else str(key))
            errors.extend(flatten_messages(value, path))
    elif isinstance(messages, list | tuple):
        if all(isinstance(m, str) for m in messages):
            errors.extend({"field": prefix or "$", "message": m} for m in messages)
        else:
            for m in messages:
                errors.extend(flatten_messages(m, prefix))
    else:
        errors.append({"field": prefix or "$", "message": str(messages)})
    return errors
