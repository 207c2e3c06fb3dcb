"""Service settings: one frozen dataclass, read from ``DISCOURSE_*`` environment variables.

Nothing reads the environment at import time: :func:`Settings.from_env` is
called by the application factory (or by the command line), and tests build
:class:`Settings` directly.
"""

from __future__ import annotations

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
    log_level: str = "INFO"
    # Set by the gunicorn config while a worker drains after SIGTERM.
    draining_flag: Path | None = None

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

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with some settings changed (for tests and the command line)."""
        return replace(self, **changes)


def _parse(kind: Any, raw: str) -> Any:
    kind = str(kind)
    if kind == "int":
        return int(raw)
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
