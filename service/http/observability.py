"""Request ids, Prometheus metrics and the structured request log."""

from __future__ import annotations

import re
import uuid

from flask import Flask, g, request

from service.config import Settings
from service.runtime import Runtime

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def init_app(app: Flask, settings: Settings, runtime: Runtime) -> None:
    """Install the request-id hooks."""

    @app.before_request
    def _assign_request_id() -> None:
        offered = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = offered if _SANE_REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex

    @app.after_request
    def _echo_request_id(response):
        response.headers[REQUEST_ID_HEADER] = getattr(g, "request_id", "")
        return response
