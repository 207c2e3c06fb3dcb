"""flask-smorest's Api, documenting every HTTP error as an RFC 9457 problem."""

from __future__ import annotations

import http

from flask_smorest import Api
from flask_smorest.utils import prepare_response

from service.http.problems import PROBLEM_MEDIA_TYPE
from service.http.schemas import ProblemSchema


class ProblemApi(Api):
    """Documents the error responses as problem+json; the app's one handler sends them."""

    ERROR_SCHEMA = ProblemSchema

    def _register_error_handlers(self) -> None:
        """None: the app's one handler (:func:`service.http.errors.error_response`) answers them."""

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
