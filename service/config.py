"""Service settings: one frozen dataclass, read from ``DISCOURSE_*`` environment variables.

Nothing reads the environment at import time: :func:`Settings.from_env` is
called by the application factory (or by the command line), and tests build
:class:`Settings` directly.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import importlib.util
import ipaddress
import math
import os
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from service.domain.errors import DiscourseError

PREFIX = "DISCOURSE_"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL_DIR = PROJECT_ROOT / "models" / "fnc1-stance"
DEFAULT_SEEDS_DIR = PROJECT_ROOT / "seeds"


MIN_KEY_CHARS = 16
"""Shortest API key accepted: shorter ones can be guessed."""
_SHA256_HEX_LENGTH = 64


class SettingsError(DiscourseError, ValueError):
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
    # Rows the web page scores from one uploaded file: its answer must come within worker_timeout.
    page_max_rows: int = 5_000
    # Comma-separated plain keys, as ``key_id:key`` or bare keys (id = position).
    api_keys: tuple[str, ...] = ()
    # File of ``key_id:sha256-hex-of-key`` lines; keys never stored in clear.
    api_keys_file: Path | None = None
    # Also guard /metrics with the keys (needs keys).
    metrics_require_key: bool = False
    rate_limit: str = "120/minute;20/second"
    rate_limit_storage: str = "memory://"
    rate_limit_enabled: bool = True
    cors_origins: tuple[str, ...] = ()
    # Number of reverse proxies in front of the service whose X-Forwarded-For is trusted; 0 trusts none,
    # so per-address rate limits use the TCP peer address.
    trusted_proxies: int = 0
    log_level: str = "INFO"
    # Address gunicorn listens on (the port is PORT); 127.0.0.1 keeps the service off the network.
    host: str = "0.0.0.0"
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
    # References sent with a request (docs/references.md): longest text, and the per-worker cache of
    # prepared ones, bounded in references and in estimated bytes, whichever is reached first.
    max_reference_chars: int = 100_000
    reference_cache_entries: int = 64
    reference_cache_bytes: int = 64 * 1024 * 1024

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``environ`` (default: ``os.environ``); unset variables keep defaults.

        Raises :class:`SettingsError` (one line naming the variable) for an
        unknown ``DISCOURSE_*`` name, a value of the wrong type or range, or a
        combination that cannot work; see :meth:`check`.
        """
        environ = os.environ if environ is None else environ
        known = {PREFIX + f.name.upper(): f for f in fields(cls)}
        unknown = sorted(name for name in environ if name.startswith(PREFIX) and name not in known)
        if unknown:
            name = unknown[0]
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]}?" if close else "; the README's configuration table lists them"
            raise SettingsError(f"{name}: unknown setting{hint}")
        values: dict[str, Any] = {}
        field_types = setting_types()
        for name, f in known.items():
            if name not in environ:
                continue
            raw = environ[name]
            try:
                values[f.name] = _parse(field_types[f.name], raw)
            except ValueError as error:
                raise SettingsError(f"{name}={raw!r}: {error}") from None
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        """Reject values that cannot work, naming the variable (reads the API keys file).

        Settings built in code are first held to their fields' types (a ``str`` where a
        ``Path`` is expected, say), so that a wrong one is named rather than failing later.
        """
        for name, kind in setting_types().items():
            value = getattr(self, name)
            if not _has_type(value, kind):
                expected = _type_name(kind)
                raise SettingsError(
                    f"{PREFIX}{name.upper()}={value!r}: expected {expected}, not {type(value).__name__}"
                )
        for name in ("max_body_bytes", "max_texts", "max_text_chars", "page_max_rows"):
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
        for name in ("model_dir", "seeds_dir"):
            path = getattr(self, name)
            if not path.is_dir():
                raise SettingsError(f"{PREFIX}{name.upper()}={str(path)!r}: not a directory")
        if self.draining_flag is not None and not self.draining_flag.parent.is_dir():
            raise SettingsError(
                f"{PREFIX}DRAINING_FLAG={str(self.draining_flag)!r}: its folder does not exist"
            )
        _check_host(self.host)
        _check_rate_limit(self)
        if self.metrics_require_key and not self.api_keys and self.api_keys_file is None:
            raise SettingsError(
                f"{PREFIX}METRICS_REQUIRE_KEY=true needs keys: set {PREFIX}API_KEYS or {PREFIX}API_KEYS_FILE"
            )
        key_digests(self)
        matchers = [cors_origin(entry) for entry in self.cors_origins]
        if "*" in matchers and len(matchers) > 1:
            raise SettingsError(
                f"{PREFIX}CORS_ORIGINS: '*' allows every origin, so it must be the only entry"
            )
        for name in (
            "max_sentences_per_text",
            "max_tokens_per_text",
            "max_sentences_per_request",
            "max_tokens_per_request",
            "heavy_request_bytes",
            "max_heavy_in_flight",
            "body_min_rate",
            "max_reference_chars",
            "reference_cache_entries",
            "reference_cache_bytes",
        ):
            if getattr(self, name) < 1:
                raise SettingsError(f"{PREFIX}{name.upper()} must be at least 1")
        for name in ("request_deadline", "body_grace_seconds"):
            if not getattr(self, name) > 0:
                raise SettingsError(f"{PREFIX}{name.upper()} must be more than 0 seconds")

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with some settings changed (for tests and the command line)."""
        return replace(self, **changes)


@functools.cache
def setting_types() -> dict[str, Any]:
    """The type of every :class:`Settings` field (the real types, not their annotation strings)."""
    return typing.get_type_hints(Settings)


def _has_type(value: object, kind: Any) -> bool:
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if typing.get_origin(kind) is tuple:
        return isinstance(value, tuple) and all(isinstance(item, str) for item in value)
    if typing.get_origin(kind) in (types.UnionType, typing.Union):
        return any(_has_type(value, option) for option in typing.get_args(kind))
    return isinstance(value, kind)


def _type_name(kind: Any) -> str:
    if typing.get_origin(kind) in (types.UnionType, typing.Union):
        return " or ".join(_type_name(option) for option in typing.get_args(kind))
    return "None" if kind is type(None) else getattr(kind, "__name__", str(kind))


def _parse(kind: Any, raw: str) -> Any:
    """The value of a variable of type ``kind`` written ``raw``; ValueError says what was expected."""
    if typing.get_origin(kind) in (types.UnionType, typing.Union):  # X | None: a set variable is an X
        (kind,) = (option for option in typing.get_args(kind) if option is not type(None))
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ValueError("expected true or false")
    if kind is int:
        try:
            return int(raw.strip())
        except ValueError:
            raise ValueError("expected a whole number") from None
    if kind is float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise ValueError("expected a number") from None
        if not math.isfinite(value):
            raise ValueError("expected a finite number")
        return value
    if typing.get_origin(kind) is tuple:
        parts = tuple(part.strip() for part in raw.split(","))
        if not any(parts):
            raise ValueError("is set but empty; unset the variable instead")
        if not all(parts):
            raise ValueError("has an empty entry (a stray comma?)")
        return parts
    if kind is Path:
        if not raw.strip():
            raise ValueError("is set but blank; give a path or unset the variable")
        return Path(raw)
    if kind is str:
        if not raw.strip():
            raise ValueError("is set but blank; give a value or unset the variable")
        return raw.strip()
    raise TypeError(f"no parser for settings of type {kind!r}")  # a new field of a new type


# --- API keys -----------------------------------------------------------------------------------------


def _add_digest(digests: dict[str, bytes], key_id: str, digest: bytes, where: str) -> None:
    if key_id in digests:
        raise SettingsError(f"{where}: key id {key_id!r} is defined twice")
    digests[key_id] = digest


def key_digests(settings: Settings) -> dict[str, bytes]:
    """Map each configured key id to the SHA-256 digest of its key.

    ``settings.api_keys`` entries are ``id:key`` or a bare key (whose id is
    ``key-<position>``, counting from 1), each key at least
    :data:`MIN_KEY_CHARS` characters; ``settings.api_keys_file`` has one
    ``id:sha256-hex`` per line, with blank lines and ``#`` comments allowed.
    Raises :class:`SettingsError` naming the variable or file line at fault.
    """
    digests: dict[str, bytes] = {}
    for position, entry in enumerate(settings.api_keys, start=1):
        key_id, sep, key = entry.partition(":")
        if not sep:
            key_id, key = f"key-{position}", entry
        if not key_id or not key:
            raise SettingsError(f"{PREFIX}API_KEYS entry {position} must be 'id:key' or a bare key")
        if len(key) < MIN_KEY_CHARS:
            raise SettingsError(
                f"{PREFIX}API_KEYS entry {position} ({key_id!r}): the key has {len(key)} characters, "
                f"at least {MIN_KEY_CHARS} are needed (e.g. python3 -c 'import secrets; "
                "print(secrets.token_urlsafe(32))')"
            )
        _add_digest(digests, key_id, hashlib.sha256(key.encode()).digest(), f"{PREFIX}API_KEYS")
    if settings.api_keys_file is not None:
        _digests_from_file(settings.api_keys_file, digests)
    return digests


def _digests_from_file(path: Path, digests: dict[str, bytes]) -> None:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise SettingsError(f"{PREFIX}API_KEYS_FILE={str(path)!r}: not UTF-8 text") from None
    except OSError as error:
        raise SettingsError(f"{PREFIX}API_KEYS_FILE={str(path)!r}: {error.strerror}") from None
    found = 0
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key_id, sep, hex_digest = (part.strip() for part in line.partition(":"))
        where = f"{path}:{number}"
        if not sep or not key_id:
            raise SettingsError(f"{where}: expected 'id:sha256-hex'")
        try:
            digest = bytes.fromhex(hex_digest)
        except ValueError:
            digest = b""
        if len(digest) * 2 != _SHA256_HEX_LENGTH:
            raise SettingsError(f"{where}: {key_id!r} needs a SHA-256 digest of 64 hex digits")
        _add_digest(digests, key_id, digest, where)
        found += 1
    if not found:
        # An empty file would otherwise leave the API open while the operator believes it keyed.
        raise SettingsError(f"{PREFIX}API_KEYS_FILE={str(path)!r}: the file holds no key")


# --- CORS origins -------------------------------------------------------------------------------------

_HOST_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_ORIGIN = re.compile(
    rf"(?P<scheme>https?)://(?P<wild>\*\.)?(?P<host>{_HOST_LABEL}(?:\.{_HOST_LABEL})*|\[[0-9a-f:.]+\])"
    r"(?::(?P<port>[0-9]{1,5}))?"
)
_DEFAULT_PORTS = {"http": "80", "https": "443"}


def cors_origin(entry: str) -> str | re.Pattern[str]:
    """The matcher of one ``DISCOURSE_CORS_ORIGINS`` entry: an exact origin string or an anchored pattern.

    Accepted forms (case-insensitive, no path, no trailing slash):

    * ``scheme://host[:port]`` with scheme ``http`` or ``https``: that origin
      exactly (a default port, :80 or :443, is dropped as browsers drop it);
    * ``scheme://*.domain[:port]``: any origin whose host ends in ``.domain``
      (one or more labels before it), with that scheme and port exactly; not
      ``domain`` itself;
    * ``*``: every origin (then the only entry).

    Raises :class:`SettingsError` naming the entry.
    """
    if entry == "*":
        return "*"
    match = _ORIGIN.fullmatch(entry.lower())
    problem = None
    if match is None:
        if "://" not in entry:
            problem = "needs a scheme, e.g. https://app.example.org"
        elif entry.endswith("/"):
            problem = "an origin has no path, not even a trailing slash"
        else:
            problem = "expected scheme://host[:port], scheme://*.domain[:port] or *"
    elif match["port"] and not 0 < int(match["port"]) < 65536:
        problem = "the port must be 1-65535"
    elif match["wild"] and match["host"].count(".") < 1:
        problem = "a wildcard needs a domain of at least two labels, e.g. https://*.example.org"
    if problem:
        raise SettingsError(f"{PREFIX}CORS_ORIGINS entry {entry!r}: {problem}")
    assert match is not None
    scheme, host, port = match["scheme"], match["host"], match["port"]
    suffix = "" if port in (None, _DEFAULT_PORTS[scheme]) else f":{port}"
    if not match["wild"]:
        return f"{scheme}://{host}{suffix}"
    return re.compile(
        rf"\A{scheme}://(?:{_HOST_LABEL}\.)+{re.escape(host)}{re.escape(suffix)}\Z", re.IGNORECASE
    )


# --- Other checks -------------------------------------------------------------------------------------


def _check_host(host: str) -> None:
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    if not re.fullmatch(rf"{_HOST_LABEL}(?:\.{_HOST_LABEL})*", host.lower()):
        raise SettingsError(
            f"{PREFIX}HOST={host!r}: expected an IP address (e.g. 127.0.0.1, ::) or a host name"
        )


def bind_address(host: str, port: int) -> str:
    """gunicorn's ``bind`` for ``host`` and ``port`` (IPv6 addresses in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _check_rate_limit(settings: Settings) -> None:
    from limits import parse_many
    from limits._storage_scheme import SCHEMES  # the schemes the limits library registers

    for name in ("rate_limit", "characters_rate_limit", "auth_failure_limit"):
        value = getattr(settings, name)
        try:
            parse_many(value)
        except ValueError:
            raise SettingsError(
                f"{PREFIX}{name.upper()}={value!r}: expected limits such as '120/minute;20/second'"
            ) from None
    uri = settings.rate_limit_storage
    scheme = uri.partition("://")[0] if "://" in uri else ""
    if scheme not in SCHEMES or scheme.startswith("async+"):
        known = ", ".join(sorted(s + "://" for s in SCHEMES if not s.startswith("async+")))
        raise SettingsError(f"{PREFIX}RATE_LIMIT_STORAGE={uri!r}: unknown storage; use one of {known}")
    dependencies = getattr(SCHEMES[scheme], "DEPENDENCIES", None) or []
    if dependencies and not any(importlib.util.find_spec(name) for name in dependencies):
        extra = " (pip install 'discourse-compare[redis]')" if scheme.startswith("redis") else ""
        raise SettingsError(
            f"{PREFIX}RATE_LIMIT_STORAGE={uri!r}: needs the Python package {' or '.join(dependencies)}{extra}"
        )


PLATFORM_LIMITS = {"WEB_CONCURRENCY": ("2", 256), "PORT": ("8000", 65535)}
"""The platform variables the server reads: default and largest value (the smallest is 1)."""


def platform_int(environ: Mapping[str, str], name: str) -> int:
    """The value of ``WEB_CONCURRENCY`` or ``PORT`` in ``environ`` (or its default), checked.

    Raises :class:`SettingsError` naming the variable unless it is a whole
    number from 1 to its maximum (0 workers would listen and never answer).
    """
    default, maximum = PLATFORM_LIMITS[name]
    raw = environ.get(name, default)
    try:
        value = int(raw.strip())
    except ValueError:
        value = 0
    if not 1 <= value <= maximum:
        raise SettingsError(f"{name}={raw!r}: expected a whole number from 1 to {maximum}")
    return value


def check_platform_environment(environ: Mapping[str, str]) -> Settings:
    """Check ``WEB_CONCURRENCY``, ``PORT`` and every ``DISCOURSE_*`` variable; the settings they give."""
    for name in PLATFORM_LIMITS:
        platform_int(environ, name)
    return Settings.from_env(environ)
