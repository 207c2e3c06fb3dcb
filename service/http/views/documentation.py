"""Decorators that document a view's problem responses in the OpenAPI document."""

from __future__ import annotations

from collections.abc import Callable

from flask_smorest import Blueprint

from service.http.problems import PROBLEM_MEDIA_TYPE
from service.http.schemas import ProblemSchema


def documents_problem(blp: Blueprint, status: int, description: str) -> Callable:
    """Document that the view may answer ``status`` with an RFC 9457 problem."""
    return blp.alt_response(
        status, schema=ProblemSchema, content_type=PROBLEM_MEDIA_TYPE, description=description
    )


def documents_access_problems(blp: Blueprint) -> Callable:
    """Document the answers every ``/v1`` view may give before it runs: 401 and 429."""

    def decorate(view: Callable) -> Callable:
        view = documents_problem(blp, 429, "Rate limit exceeded; see Retry-After.")(view)
        return documents_problem(blp, 401, "API keys are configured and none valid was sent.")(view)

    return decorate
