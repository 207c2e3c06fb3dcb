"""The application factory: the one place where settings, runtime and HTTP layer are wired."""

from __future__ import annotations

import logging

from flask import Flask
from flask.json.provider import DefaultJSONProvider

from service import __version__
from service.config import Settings
from service.domain.reference_cache import ReferenceCache
from service.http import access, observability
from service.http.admission import Admission
from service.http.api import ProblemApi, SchemaDocstringPlugin
from service.http.body import check_json_body, init_admission
from service.http.errors import error_response
from service.http.examples import document_examples
from service.http.schemas import ReferenceInputSchema, score_request_schema
from service.http.views import health, models, page, references, scoring
from service.http.views.scoring import REFERENCE_CACHE_KEY
from service.loaders.runtime import Runtime, load_runtime

log = logging.getLogger("discourse.app")


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> Flask:
    """Build the WSGI application.

    ``settings`` default to :meth:`Settings.from_env`; ``runtime`` (model and
    references) defaults to loading them from ``settings.model_dir`` and
    ``settings.seeds_dir``. A missing, altered or incompatible artifact, or a
    malformed reference file, raises here: the service does not start, so
    ``/readyz`` never reports ready with a bad model.
    """
    settings = settings or Settings.from_env()
    # Settings built in code are held to the same rules as the environment's (SettingsError).
    settings.check()
    if runtime is None:
        runtime = load_runtime(settings.model_dir, settings.seeds_dir)
        log.info(
            "loaded model %s %s and references %s",
            runtime.model.model_id,
            runtime.model.version,
            ", ".join(runtime.scorer.references),
        )

    app = Flask("discourse_compare")
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        # The request body is bounded by MAX_CONTENT_LENGTH; form parsing is not used.
        MAX_FORM_MEMORY_SIZE=settings.max_body_bytes,
        JSON_SORT_KEYS=False,
        API_TITLE="discourse-compare",
        API_VERSION=__version__,
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="/docs",
        # Served by this app from the swagger-ui-bundle package: works offline.
        OPENAPI_SWAGGER_UI_URL="/docs/assets/",
        API_SPEC_OPTIONS=_spec_options(settings, runtime),
    )
    app.extensions["discourse"] = {"settings": settings, "runtime": runtime}
    # Per process: every gunicorn worker forked from the master gets its own slots.
    app.extensions["discourse.admission"] = Admission(
        settings.max_heavy_in_flight, settings.heavy_request_bytes
    )
    if isinstance(app.json, DefaultJSONProvider):  # always, unless a provider class is configured
        app.json.sort_keys = False
    # Per process, like admission: each forked worker fills its own (empty at the fork).
    app.extensions[REFERENCE_CACHE_KEY] = ReferenceCache(
        settings.reference_cache_entries, settings.reference_cache_bytes
    )

    observability.init_app(app, settings, runtime)
    access.init_app(app, settings)
    app.before_request(check_json_body)
    init_admission(app)

    api = ProblemApi(
        app, spec_kwargs={"extra_plugins": [access.SecurityPlugin(settings), SchemaDocstringPlugin()]}
    )
    # The request contract with this app's limits: the API and the web page load bodies with it.
    request_schema = score_request_schema(settings)
    app.extensions["discourse.request_schema"] = request_schema
    for blueprint in (scoring.create_blueprint(request_schema), references.blp, models.blp, health.blp):
        api.register_blueprint(blueprint)
    document_examples(api.spec, runtime)
    api.spec.components.schema("ReferenceInput", schema=ReferenceInputSchema)
    # The web page at / (not part of the API's OpenAPI document).
    app.register_blueprint(page.blp)
    _register_docs_assets(app)

    # The one path from an exception to its response (the page's routes render the same problems as HTML).
    app.register_error_handler(Exception, error_response)

    return app


def _spec_options(settings: Settings, runtime: Runtime) -> dict:
    # The request's own limits are in its schema (maxItems, maxLength, descriptions); what is
    # not a property of one request is said here.
    limits = (
        f"A request body has at most {settings.max_body_bytes} bytes. Nothing is truncated: a request "
        "over a limit is refused whole (413 or 422). Requests of "
        f"{settings.heavy_request_bytes} bytes or more are large: each worker scores at most "
        f"{settings.max_heavy_in_flight} at once and answers more with 503 `overloaded` and Retry-After. "
        f"Scoring stops after {settings.request_deadline:g} s with 503 `deadline-exceeded`."
    )
    return {
        "info": {
            "description": (
                "Scores texts against reference articles: TF-IDF similarity, stance "
                "(agree / disagree / discuss / unrelated) overall and per claim of the reference, "
                "and evidence. Errors are RFC 9457 application/problem+json documents.\n\n"
                + limits
                + f"\n\nDefault reference: `{runtime.scorer.default_reference}`."
            )
        },
        "servers": [{"url": "/"}],
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            }
        },
        "x-limits": {
            "max_body_bytes": settings.max_body_bytes,
            "max_texts": settings.max_texts,
            "max_text_chars": settings.max_text_chars,
            "max_sentences_per_text": settings.max_sentences_per_text,
            "max_tokens_per_text": settings.max_tokens_per_text,
            "max_sentences_per_request": settings.max_sentences_per_request,
            "max_tokens_per_request": settings.max_tokens_per_request,
            "heavy_request_bytes": settings.heavy_request_bytes,
            "max_heavy_in_flight": settings.max_heavy_in_flight,
            "request_deadline_seconds": settings.request_deadline,
            "characters_rate_limit": settings.characters_rate_limit,
            "max_reference_chars": settings.max_reference_chars,
            "reference_cache_entries": settings.reference_cache_entries,
            "reference_cache_bytes": settings.reference_cache_bytes,
        },
    }


def _register_docs_assets(app: Flask) -> None:
    """Serve Swagger UI's files from the swagger-ui-bundle package, so /docs needs no CDN."""
    from flask import send_from_directory
    from swagger_ui_bundle import swagger_ui_path

    @app.get("/docs/assets/<path:filename>")
    def docs_assets(filename: str):
        return send_from_directory(swagger_ui_path, filename, max_age=86400)
