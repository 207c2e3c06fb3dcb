"""Access to the objects the factory attached to the app."""

from __future__ import annotations

from flask import current_app
from marshmallow import Schema

from service.config import Settings
from service.runtime import Runtime


def current_runtime() -> Runtime:
    """The runtime (model and references) of the current app."""
    return current_app.extensions["discourse"]["runtime"]


def current_settings() -> Settings:
    """The settings of the current app."""
    return current_app.extensions["discourse"]["settings"]


def current_request_schema() -> Schema:
    """The body schema of ``POST /v1/score`` with the current app's limits."""
    return current_app.extensions["discourse.request_schema"]
