"""Access control and fairness: API keys, rate limits, CORS."""

from __future__ import annotations

from flask import Flask

from service.config import Settings


def init_app(app: Flask, settings: Settings) -> None:
    """Install API-key checks, rate limits and CORS as ``settings`` ask."""
