"""The one table from an exception to its RFC 9457 problem, and the app's one error handler.

Views, hooks and the domain raise; nothing else turns an exception into a response (the web
page renders the same problems as HTML). Kept apart from :mod:`service.http.problems`, which
the gunicorn config loads before numpy may be imported: this module imports the domain.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Response, current_app
from flask_limiter import RateLimitExceeded
from werkzeug.exceptions import HTTPException

from service.domain.reference_cache import ReferenceNotCachedError
from service.domain.references import ReferenceContentError
from service.domain.scorer import UnknownReferenceError
from service.domain.workload import WorkLimitError
from service.http.problems import Problem, flatten_messages, problem_response, problem_type_for_status
from service.http.schemas import OverLimit

_log = logging.getLogger("discourse.app")

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


def _reference_not_cached(error: ReferenceNotCachedError) -> Problem:
    return Problem("reference-not-cached", str(error), errors=[{"field": "reference", "message": str(error)}])


def _unusable_reference(error: ReferenceContentError) -> Problem:
    field = f"reference.{error.field}"
    return Problem(
        "validation-error",
        f"Unusable reference: {field}.",
        errors=[{"field": field, "message": error.message}],
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
            first = errors[0]["message"]
            given = (
                f" ({first.given})"
                if len(errors) == 1 and isinstance(first, OverLimit) and first.given
                else ""
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


PROBLEM_OF: dict[type[Exception], Callable[[Any], Problem]] = {
    Problem: lambda problem: problem,
    UnknownReferenceError: _unknown_reference,
    WorkLimitError: _over_work_limits,
    ReferenceNotCachedError: _reference_not_cached,
    ReferenceContentError: _unusable_reference,
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
