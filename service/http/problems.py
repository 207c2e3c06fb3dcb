"""RFC 9457 problem details: the one error shape of the API.

Every 4xx and 5xx answer is ``application/problem+json`` with ``type``,
``title``, ``status``, ``detail``, ``instance`` (the request id as a URN)
and ``request_id``; validation problems add ``errors``, a list of
``{"field": "texts.3.text", "message": ...}``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Response, current_app, g, json
from flask_limiter import RateLimitExceeded
from werkzeug.exceptions import HTTPException

from service.domain.scorer import UnknownReferenceError
from service.domain.workload import WorkLimitError
from service.http.schemas import OverLimit

_log = logging.getLogger("discourse.app")

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

_BY_STATUS = {}
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


# --- the one table from an exception to its problem --------------------------------------------------

# Statuses whose generic Werkzeug description is clearer than anything we could add.
_HTTP_DETAILS = {
    404: "No resource at this URL; see /docs for the endpoints.",
    405: "This method is not allowed here; the Allow header lists the ones that are.",
    413: "The request body exceeds the configured limit.",
    414: "The request URI exceeds the server's limit.",
    431: "The request headers exceed the server's limit.",
}


def _unknown_reference(error: UnknownReferenceError) -> Problem:
    return Problem(
        "unknown-reference",
        f"{error}; GET /v1/references lists the available ones.",
        errors=[{"field": "reference", "message": str(error)}],
    )


def _over_work_limits(error: WorkLimitError) -> Problem:
    fields = ", ".join(sorted({v.field for v in error.violations}))
    limits = ", ".join(sorted({v.limit for v in error.violations}))
    return Problem(
        "validation-error",
        f"Over the limits: {fields} ({limits}).",
        errors=[{"field": v.field, "message": v.message} for v in error.violations[:100]],
    )


def _rate_limited(error: RateLimitExceeded) -> Problem:
    # flask-limiter's after_request hook adds Retry-After and the X-RateLimit-* headers.
    return Problem(
        "rate-limited",
        f"Rate limit exceeded ({error.description}); retry after the number of seconds in "
        "the Retry-After header.",
    )


def _http_error(error: HTTPException) -> Problem:
    """Any HTTPException (raised by Flask, Werkzeug or webargs)."""
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    headers = dict(data.get("headers") or {})
    if status == 405 and error.get_response().headers.get("Allow"):
        headers["Allow"] = error.get_response().headers["Allow"]
    if status == 422 and "messages" in data:
        # webargs nests errors by location; the body's fields are what clients sent.
        messages = data["messages"]
        messages = messages.get("json", messages) if isinstance(messages, dict) else messages
        errors = flatten_messages(messages)
        if errors and all(isinstance(e["message"], OverLimit) for e in errors):
            fields = ", ".join(e["field"] for e in errors[:5]) + (" …" if len(errors) > 5 else "")
            given = (
                f" ({errors[0]['message'].given})" if len(errors) == 1 and errors[0]["message"].given else ""
            )
            detail = f"Over the limits: {fields}{given}."
        else:
            detail = f"Invalid field(s): {', '.join(sorted({e['field'] for e in errors}))}."
        return Problem("validation-error", detail, errors=errors, headers=headers)
    if status == 400 and "messages" in data:
        return Problem("malformed-request", "The request body could not be parsed as JSON.", headers=headers)
    kind = problem_type_for_status(status)
    detail = _HTTP_DETAILS.get(status) or (error.description or kind.title)
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if status == 413 and limit:
        detail = f"The request body exceeds the limit of {limit} bytes ({limit / 1048576:g} MiB)."
    if status >= 500:
        detail = "An unexpected error occurred; it was logged."
    return Problem(kind.slug, detail, headers=headers)


PROBLEM_OF: dict[type[BaseException], Callable[[Any], Problem]] = {
    Problem: lambda problem: problem,
    UnknownReferenceError: _unknown_reference,
    WorkLimitError: _over_work_limits,
    RateLimitExceeded: _rate_limited,  # an HTTPException too: the closest class in the MRO wins
    HTTPException: _http_error,
}
"""Every exception the HTTP layer answers as a problem, and how; anything else is a 500."""


def to_problem(error: BaseException) -> Problem | None:
    """The problem ``error`` is answered with (the entry of its closest class), or ``None``."""
    for kind in type(error).__mro__:
        if kind in PROBLEM_OF:
            return PROBLEM_OF[kind](error)
    return None


def error_response(error: Exception) -> Response:
    """The problem+json answer to ``error``: the app's one error handler.

    An exception outside :data:`PROBLEM_OF` is a bug: logged with its traceback for
    operators, answered with a 500 ``internal-error`` that gives the client no detail.
    """
    problem = to_problem(error)
    if problem is None:
        _log.error("unhandled error", exc_info=error)
        problem = Problem("internal-error", "An unexpected error occurred; it was logged.")
    return problem_response(problem)
