"""flask-smorest's Api, documenting every HTTP error as an RFC 9457 problem."""

from __future__ import annotations

import http
import inspect
from typing import Any

from apispec import BasePlugin
from flask_smorest import Api
from flask_smorest.utils import prepare_response

from service.http.problems import PROBLEM_MEDIA_TYPE
from service.http.schemas import ProblemSchema


class SchemaDocstringPlugin(BasePlugin):
    """Puts each marshmallow schema's docstring in its OpenAPI component as ``description``.

    apispec reads a schema's description only from ``Meta.description``; the docstring is
    where this project writes it, so ``/docs`` shows it without writing it twice.
    """

    def schema_helper(self, name: str, definition: dict, **kwargs: Any) -> dict | None:
        """The ``description`` of the schema's class docstring, if it has one."""
        schema = kwargs.get("schema")
        kind = schema if isinstance(schema, type) else type(schema)
        ours = schema is not None and kind.__module__.startswith("service.")
        doc = inspect.getdoc(kind) if ours and kind.__doc__ else None
        return {"description": doc} if doc else None


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
