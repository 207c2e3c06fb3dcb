"""Service settings: one frozen dataclass, read from ``DISCOURSE_*`` environment variables.

Nothing reads the environment at import time: :func:`Settings.from_env` is
called by the application factory (or by the command line), and tests build
:class:`Settings` directly.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

PREFIX = "DISCOURSE_"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL_DIR = PROJECT_ROOT / "models" / "fnc1-stance"
DEFAULT_SEEDS_DIR = PROJECT_ROOT / "seeds"


class SettingsError(ValueError):
    """An environment variable has a value that cannot be used; the message names it."""


@dataclass(frozen=True)
class Settings:
    """Every setting of the service, with its default.

    Each field is read from the environment variable ``DISCOURSE_<FIELD>``
    (upper case); the README's configuration table lists them.
    """

    model_dir: Path = DEFAULT_MODEL_DIR
    seeds_dir: Path = DEFAULT_SEEDS_DIR
    max_body_bytes: int = 2 * 1024 * 1024
    max_texts: int = 256
    max_text_chars: int = 100_000
    # Comma-separated plain keys, as ``key_id:key`` or bare keys (id = position).
    api_keys: tuple[str, ...] = ()
    # File of ``key_id:sha256-hex-of-key`` lines; keys never stored in clear.
    api_keys_file: Path | None = None
    metrics_require_key: bool = False
    rate_limit: str = "120/minute;20/second"
    rate_limit_storage: str = "memory://"
    rate_limit_enabled: bool = True
    cors_origins: tuple[str, ...] = ()
    # Number of reverse proxies in front of the service whose X-Forwarded-For is trusted; 0 trusts none,
    # so per-address rate limits use the TCP peer address.
    trusted_proxies: int = 0
    log_level: str = "INFO"
    # A file whose existence makes /readyz answer 503; the gunicorn config creates it on SIGTERM.
    draining_flag: Path | None = None
    # The settings below are read by the gunicorn config only (docs/operations.md explains each).
    worker_threads: int = 32
    worker_timeout: int = 30
    graceful_timeout: int = 20
    drain_seconds: float = 5.0
    max_requests: int = 10_000
    # Bounded cost (docs/operations.md, "Bounded cost"): work caps, admission, deadline, slow bodies.
    max_sentences_per_text: int = 5_000
    max_tokens_per_text: int = 40_000
    max_sentences_per_request: int = 50_000
    max_tokens_per_request: int = 400_000
    # Scoring requests with a body of at least this many bytes are "heavy": at most max_heavy_in_flight
    # of them are parsed and scored at once per worker; more get a 503 at once.
    heavy_request_bytes: int = 32_768
    max_heavy_in_flight: int = 1
    request_deadline: float = 10.0
    # A request body must arrive within body_grace_seconds + its length / body_min_rate seconds.
    body_min_rate: int = 50_000
    body_grace_seconds: float = 10.0
    characters_rate_limit: str = "20000000/minute"
    auth_failure_limit: str = "20/minute"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``environ`` (default: ``os.environ``); unset variables keep defaults."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = PREFIX + f.name.upper()
            if name not in environ:
                continue
            raw = environ[name]
            try:
                values[f.name] = _parse(f.type, raw)
            except ValueError as error:
                raise SettingsError(f"{name}={raw!r}: {error}") from None
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        """Reject values that cannot work, naming the variable."""
        for name in ("max_body_bytes", "max_texts", "max_text_chars"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{PREFIX}{name.upper()} must be at least 1")
        if self.log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise SettingsError(f"{PREFIX}LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        for name in ("worker_threads", "worker_timeout", "graceful_timeout"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{PREFIX}{name.upper()} must be at least 1")
        for name in ("drain_seconds", "max_requests", "trusted_proxies"):
            if getattr(self, name) < 0:
                raise SettingsError(f"{PREFIX}{name.upper()} must not be negative")
        for name in (
            "max_sentences_per_text",
            "max_tokens_per_text",
            "max_sentences_per_request",
            "max_tokens_per_request",
            "heavy_request_bytes",
            "max_heavy_in_flight",
            "body_min_rate",
        ):
            if getattr(self, name) < 1:
                raise SettingsError(f"{PREFIX}{name.upper()} must be at least 1")
        for name in ("request_deadline", "body_grace_seconds"):
            if not getattr(self, name) > 0:
                raise SettingsError(f"{PREFIX}{name.upper()} must be more than 0 seconds")

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with some settings changed (for tests and the command line)."""
        return replace(self, **changes)


def _parse(kind: Any, raw: str) -> Any:
    kind = str(kind)
    if kind == "int":
        return int(raw)
    if kind == "float":
        value = float(raw)
        if not math.isfinite(value):
            raise ValueError("expected a finite number")
        return value
    if kind == "bool":
        lowered = raw.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ValueError("expected true or false")
    if kind.startswith("tuple"):
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    if "Path" in kind:
        return Path(raw) if raw.strip() else None
    return raw
