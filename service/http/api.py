"""flask-smorest's Api, answering every HTTP error as an RFC 9457 problem."""

from __future__ import annotations

import http

from flask import current_app
from flask_smorest import Api
from flask_smorest.utils import prepare_response
from werkzeug.exceptions import HTTPException

from service.http.problems import (
    PROBLEM_MEDIA_TYPE,
    Problem,
    flatten_messages,
    problem_response,
    problem_type_for_status,
)
from service.http.schemas import ProblemSchema

# Statuses whose generic Werkzeug description is clearer than anything we could add.
_DETAILS = {
    404: "No resource at this URL; see /docs for the endpoints.",
    405: "This method is not allowed here; the Allow header lists the ones that are.",
    413: "The request body exceeds the configured limit.",
    414: "The request URI exceeds the server's limit.",
    431: "The request headers exceed the server's limit.",
}


class ProblemApi(Api):
    """Renders webargs validation errors and Werkzeug HTTP errors as problem+json."""

    ERROR_SCHEMA = ProblemSchema

    def _register_responses(self) -> None:
        """Document the shared error responses as application/problem+json, as they are sent."""
        for status in http.HTTPStatus:
            if status < 400:
                continue
            response = {"description": status.phrase, "schema": self.ERROR_SCHEMA}
            prepare_response(response, self.spec, PROBLEM_MEDIA_TYPE)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "Error (RFC 9457 problem details)", "schema": self.ERROR_SCHEMA}
        prepare_response(response, self.spec, PROBLEM_MEDIA_TYPE)
        self.spec.components.response(self.DEFAULT_ERROR_RESPONSE_NAME, response, lazy=True)

    def handle_http_exception(self, error: HTTPException):
        """Turn any HTTPException (raised by Flask, Werkzeug or webargs) into a problem response."""
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
            fields = ", ".join(sorted({e["field"] for e in errors}))
            return problem_response(
                Problem("validation-error", f"Invalid field(s): {fields}.", errors=errors, headers=headers)
            )
        if status == 400 and "messages" in data:
            return problem_response(
                Problem("malformed-request", "The request body could not be parsed as JSON.", headers=headers)
            )
        kind = problem_type_for_status(status)
        detail = _DETAILS.get(status) or (error.description or kind.title)
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        if status == 413 and limit:
            detail = f"The request body exceeds the limit of {limit} bytes ({limit / 1048576:g} MiB)."
        if status >= 500:
            detail = "An unexpected error occurred; it was logged."
        return problem_response(Problem(kind.slug, detail, headers=headers))
