"""Access control and fairness: API keys, rate limits, CORS.

* API keys guard ``/v1/*`` (and ``/metrics`` when ``metrics_require_key``)
  as soon as one key is configured. Only SHA-256 digests are kept in memory
  and compared, with :func:`hmac.compare_digest`; the key id, never the key,
  is stored in ``g.api_key_id`` for the log and the rate limiter.
* Rate limits (flask-limiter) apply to ``/v1/*`` only, shared by all its
  routes, counted per API key id or else per client address.
* CORS (flask-cors) headers are sent on ``/v1/*`` to the configured origins only,
  matched exactly or by an anchored ``scheme://*.domain`` pattern
  (:func:`service.config.cors_origin`); every ``/v1/*`` answer then carries
  ``Vary: Origin`` so that a shared cache never serves one origin's answer to another.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import time
from collections.abc import Mapping

from apispec import BasePlugin
from flask import Flask, Response, g, request
from flask_cors import CORS
from flask_limiter import ApplicationLimit, Limiter
from flask_limiter.util import get_remote_address
from limits import parse
from limits.errors import ConfigurationError
from werkzeug.exceptions import MethodNotAllowed
from werkzeug.middleware.proxy_fix import ProxyFix

from service.config import PREFIX, Settings, SettingsError, cors_origin, key_digests
from service.http import observability
from service.http.observability import METRICS_PATH, REQUEST_ID_HEADER
from service.http.problems import Problem, problem_response

_log = logging.getLogger("discourse.app")

API_PREFIX = "/v1/"
PAGE_ACTIONS_PREFIX = "/page/"
"""The web page's actions (scoring, listing references): keys and rate limits apply as on /v1/."""
PAGE_KEY_FIELD = "api_key"
"""Form field of the page's plain form, the only way to send a key with JavaScript off."""
API_KEY_HEADER = "X-API-Key"
_WWW_AUTHENTICATE = 'Bearer realm="discourse-compare"'


def init_app(app: Flask, settings: Settings) -> None:
    """Install API-key checks, rate limits and CORS as ``settings`` ask."""
    if settings.trusted_proxies:
        # Without this, behind a load balancer every client has the balancer's address and shares
        # one rate-limit bucket; only the configured number of hops is trusted, so a client cannot
        # choose its own bucket by sending X-Forwarded-For itself.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies)  # type: ignore[method-assign]
    digests = key_digests(settings)
    if digests:
        _install_key_check(app, digests, settings.metrics_require_key)
    _log_access_summary(settings, digests)
    _install_rate_limits(app, settings)
    if settings.cors_origins:
        origins = [cors_origin(entry) for entry in settings.cors_origins]
        CORS(
            app,
            resources={r"/v1/*": {"origins": origins}},
            methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", API_KEY_HEADER, REQUEST_ID_HEADER],
            # Browsers hide every other response header from scripts; these are needed to retry well.
            expose_headers=[
                REQUEST_ID_HEADER,
                "Retry-After",
                "X-RateLimit-Limit",
                "X-RateLimit-Remaining",
                "X-RateLimit-Reset",
            ],
            # Keys travel in headers, never cookies, so credentialed CORS is not needed.
            supports_credentials=False,
            max_age=600,
        )

        @app.after_request
        def _vary_on_origin(response: Response) -> Response:
            # Sent whether or not this request's origin was allowed: the answer depends on it either way.
            if request.path.startswith(API_PREFIX):
                response.vary.add("Origin")
            return response


def _log_access_summary(settings: Settings, digests: Mapping[str, bytes]) -> None:
    """One start-up line: whether keys are on, how many, and what is open to anyone."""
    open_paths = ["/livez", "/readyz", "/docs", "/openapi.json"]
    if not (digests and settings.metrics_require_key):
        open_paths.append("/metrics")
    if digests:
        state = f"API keys on: {len(digests)} key(s) ({', '.join(sorted(digests))}) guard /v1/*"
        if settings.metrics_require_key:
            state += " and /metrics"
    else:
        state = f"API keys off: /v1/* is open to anyone who can reach it (set {PREFIX}API_KEYS to close it)"
    cors = ", ".join(settings.cors_origins) if settings.cors_origins else "none"
    _log.info("%s; open without a key: %s; CORS origins: %s", state, ", ".join(open_paths), cors)


# --- API keys ---------------------------------------------------------------------------------------


def presented_key() -> str | None:
    """The key of the current request: ``Authorization: Bearer <key>``, else ``X-API-Key``.

    On a form post to the page's actions, the ``api_key`` field is read last.
    """
    scheme, _, credentials = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    key = request.headers.get(API_KEY_HEADER, "").strip() or None
    if key is None and request.method == "POST" and request.path.startswith(PAGE_ACTIONS_PREFIX):
        key = request.form.get(PAGE_KEY_FIELD, "").strip() or None
    return key


def match_key(key: str, digests: Mapping[str, bytes]) -> str | None:
    """The id of the key whose digest matches ``key``'s, or ``None``.

    Every digest is compared, in constant time each, so the time taken does
    not tell which entry (if any) came close.
    """
    offered = hashlib.sha256(key.encode()).digest()
    found = None
    for key_id, digest in digests.items():
        if hmac.compare_digest(offered, digest):
            found = key_id
    return found


def _guarded(path: str, metrics_require_key: bool) -> bool:
    return path.startswith((API_PREFIX, PAGE_ACTIONS_PREFIX)) or (
        metrics_require_key and path == METRICS_PATH
    )


def _install_key_check(app: Flask, digests: Mapping[str, bytes], metrics_require_key: bool) -> None:
    @app.before_request
    def _require_key() -> None:
        # CORS preflights carry no credentials by design; flask-cors answers them. A method the route
        # does not have is a 405 whoever asks (TRACE included): there is nothing to authorise.
        if (
            request.method == "OPTIONS"
            or isinstance(request.routing_exception, MethodNotAllowed)
            or not _guarded(request.path, metrics_require_key)
        ):
            return
        key = presented_key()
        if key is None:
            raise Problem(
                "unauthorized",
                "Send an API key as 'Authorization: Bearer <key>' or in the X-API-Key header.",
                headers={"WWW-Authenticate": _WWW_AUTHENTICATE},
            )
        key_id = match_key(key, digests)
        if key_id is None:
            raise Problem(
                "unauthorized",
                "The API key is not valid.",
                headers={"WWW-Authenticate": _WWW_AUTHENTICATE + ', error="invalid_token"'},
            )
        g.api_key_id = key_id


class SecurityPlugin(BasePlugin):
    """Declares in the OpenAPI document that ``/v1/*`` operations need a key, when keys are configured.

    Swagger UI (``/docs``) then sends the key given under Authorize, and
    generated clients know to ask for one.
    """

    def __init__(self, settings: Settings) -> None:
        self._keyed = bool(settings.api_keys or settings.api_keys_file)

    def operation_helper(self, path: str | None = None, operations: dict | None = None, **_: object) -> None:
        """Add ``security`` (bearer or X-API-Key) to every operation under ``/v1/``."""
        if not self._keyed or not path or not path.startswith(API_PREFIX) or not operations:
            return
        for operation in operations.values():
            operation.setdefault("security", [{"bearer": []}, {"apiKey": []}])


# --- Rate limits ------------------------------------------------------------------------------------


def rate_limit_key() -> str:
    """The rate-limit bucket of the current request: its API key id, else the client address."""
    key_id = getattr(g, "api_key_id", None)
    return f"key:{key_id}" if key_id else f"addr:{get_remote_address()}"


def request_cost() -> int:
    """Cost of the current request for the characters limit: the characters it had scored.

    flask-limiter calls this twice: before the request, to refuse one that would pass the
    limit (the body's Content-Length stands in for its characters, which are not known
    yet), and after the response, to deduct the real cost: the characters scored, or the
    body's size for a request that was refused (it was read and checked all the same).
    """
    scored = getattr(g, "scored", None)
    if scored is not None:
        return max(1, int(scored["characters"]))
    return max(1, request.content_length or 0)


def _install_rate_limits(app: Flask, settings: Settings) -> None:

    # Registered before the limiter's own after_request hook, so it runs after it (Flask runs them in
    # reverse), to correct two things in the Retry-After header flask-limiter writes.
    @app.after_request
    def _tidy_retry_after(response: Response) -> Response:
        if response.status_code not in (429, 503):
            # It is written on every limited response, but only means something on a refusal.
            response.headers.pop("Retry-After", None)
        elif response.status_code == 429 and response.headers.get("Retry-After", "1").isdigit():
            # It is rounded down to whole seconds: a wait under a second becomes "0", which invites
            # an immediate retry that is refused again.
            seconds = int(response.headers["Retry-After"]) if "Retry-After" in response.headers else 1
            response.headers["Retry-After"] = str(max(1, seconds))
        return response

    try:
        limiter = _limiter(app, settings)
    except ConfigurationError as error:  # unknown scheme, or its client library is not installed
        raise SettingsError(f"{PREFIX}RATE_LIMIT_STORAGE={settings.rate_limit_storage!r}: {error}") from None

    @limiter.request_filter
    def _not_limited() -> bool:
        # Probes, docs and metrics are never limited; preflights are answered without any work.
        return request.method == "OPTIONS" or not request.path.startswith((API_PREFIX, PAGE_ACTIONS_PREFIX))

    app.extensions["discourse.limiter"] = limiter
    _install_auth_failure_limit(app, limiter, settings)


def _install_auth_failure_limit(app: Flask, limiter: Limiter, settings: Settings) -> None:
    """Count 401 answers per client address; past ``auth_failure_limit`` refuse that address's
    ``/v1`` requests with 429 until the window has passed, so keys cannot be guessed quickly.

    Every request from the address is refused meanwhile, a valid key included: checking the
    key would tell a guesser when a guess is right.
    """
    if not settings.rate_limit_enabled:
        return
    items = [parse(part) for part in settings.auth_failure_limit.split(";") if part.strip()]

    def bucket() -> tuple[str, str, str]:
        return ("discourse", "auth-failures", f"addr:{get_remote_address()}")

    def refuse_if_over() -> Response | None:
        if request.method == "OPTIONS" or not request.path.startswith(API_PREFIX):
            return None
        try:
            over = [item for item in items if not limiter.limiter.test(item, *bucket())]
        except Exception:  # storage unreachable: keep serving, as the other limits do
            return None
        if not over:
            return None
        reset = max(limiter.limiter.get_window_stats(item, *bucket()).reset_time for item in over)
        return problem_response(
            Problem(
                "rate-limited",
                f"Too many failed authentications from this address ({settings.auth_failure_limit}); "
                "retry after the number of seconds in the Retry-After header.",
                headers={"Retry-After": str(max(1, math.ceil(reset - time.time())))},
            )
        )

    def count_failure(response: Response) -> Response:
        if response.status_code == 401 and request.path.startswith(API_PREFIX):
            try:
                for item in items:
                    limiter.limiter.hit(item, *bucket())
            except Exception:  # storage unreachable: the failure goes uncounted
                pass
        return response

    # Right after the request id and timer are set (the refusal is logged like any answer), before
    # the key check and the request limits.
    hooks = app.before_request_funcs.setdefault(None, [])
    position = max(
        (i + 1 for i, hook in enumerate(hooks) if hook.__module__ == observability.__name__), default=0
    )
    hooks.insert(position, refuse_if_over)
    app.after_request(count_failure)


def _limiter(app: Flask, settings: Settings) -> Limiter:
    """The flask-limiter extension, installed on ``app``."""
    return Limiter(
        rate_limit_key,
        app=app,
        # One budget shared by every /v1 route, rather than a separate budget per route; beside the
        # request count, the characters submitted (see request_cost).
        application_limits=[
            settings.rate_limit,
            ApplicationLimit(
                settings.characters_rate_limit,
                scope="characters",
                cost=request_cost,
                deduct_when=lambda response: True,
                error_message=f"{settings.characters_rate_limit} characters",
            ),
        ],
        storage_uri=settings.rate_limit_storage,
        # Counts a rolling window approximately, without the burst of twice the limit that fixed
        # windows allow at a boundary; the memory, Redis and Memcached storages support it.
        strategy="sliding-window-counter",
        headers_enabled=True,
        retry_after="delta-seconds",
        # If Redis is unreachable, keep serving (limits then count in each worker's memory) rather
        # than failing every request with a 500: the limits protect the service, not the reverse.
        swallow_errors=True,
        in_memory_fallback_enabled=True,
        key_prefix="discourse",
        enabled=settings.rate_limit_enabled,
    )
