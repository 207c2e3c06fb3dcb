"""flask-smorest's Api, answering every HTTP error as an RFC 9457 problem."""

from __future__ import annotations

from flask_smorest import Api
from werkzeug.exceptions import HTTPException

from service.http.problems import Problem, flatten_messages, problem_response, problem_type_for_status

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
        if status >= 500:
            detail = "An unexpected error occurred; it was logged."
        return problem_response(Problem(kind.slug, detail, headers=headers))
