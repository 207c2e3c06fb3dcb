"""Request ids, Prometheus metrics and the structured request log.

Metrics work in two modes, chosen when the app is built (never at import):

* ``PROMETHEUS_MULTIPROC_DIR`` set (the gunicorn config sets it): every worker
  process writes its samples to files in that directory and ``/metrics``
  aggregates all of them with :class:`~prometheus_client.multiprocess.MultiProcessCollector`,
  so a scrape gives the same totals whichever worker answers it.
* otherwise: the metrics live in a :class:`~prometheus_client.CollectorRegistry`
  owned by the app, so building many apps in one process (the tests do) never
  collides with an earlier registration.

Every label has a bounded set of values: route templates (not paths), a fixed
list of methods, HTTP status codes, reference ids the runtime knows, the four
stance labels and the problem type slugs.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, g, request
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector
from pythonjsonlogger.json import JsonFormatter

from service.config import Settings
from service.runtime import Runtime

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
METRICS_PATH = "/metrics"
EXTENSION_KEY = "discourse.observability"

# Loggers given the JSON handler: the service's own, and flask-limiter's (it reports storage outages).
# flask-limiter also logs every refused request at INFO, which the request line already records as
# problem_type "rate-limited": it is held at WARNING so that each request stays one line.
LOGGER_NAMES = ("discourse", "flask-limiter")
_MINIMUM_LEVELS = {"flask-limiter": logging.WARNING}
access_log = logging.getLogger("discourse.access")

# Any other method string is client-chosen, so it is folded into one label value.
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "unmatched"

# Seconds: from a probe (milliseconds) to a full 256-text batch with evidence under load.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
SIMILARITY_BUCKETS = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
TEXTS_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


@dataclass(frozen=True)
class Metrics:
    """The metric objects of one app (see the module docstring for the two modes)."""

    registry: CollectorRegistry
    multiprocess_dir: str | None
    requests: Counter
    duration: Histogram
    texts_scored: Counter
    similarity: Histogram
    texts_per_request: Histogram
    characters: Counter
    errors: Counter
    model_info: Gauge

    @classmethod
    def create(cls, multiprocess_dir: str | None) -> Metrics:
        """Create the metrics on a fresh registry; in single-process mode add the process collector."""
        registry = CollectorRegistry(auto_describe=True)
        if multiprocess_dir is None:
            # Memory and CPU of this process; in multiprocess mode per-process figures cannot be summed.
            ProcessCollector(registry=registry)
        return cls(
            registry=registry,
            multiprocess_dir=multiprocess_dir,
            requests=Counter(
                "discourse_http_requests_total",
                "HTTP requests answered, by route template, method and status code.",
                ["route", "method", "status"],
                registry=registry,
            ),
            duration=Histogram(
                "discourse_http_request_duration_seconds",
                "Time from the start of request handling to the response, in seconds.",
                ["route", "method"],
                buckets=DURATION_BUCKETS,
                registry=registry,
            ),
            texts_scored=Counter(
                "discourse_texts_scored_total",
                "Texts scored, by reference and overall stance label.",
                ["reference", "stance"],
                registry=registry,
            ),
            similarity=Histogram(
                "discourse_similarity",
                "TF-IDF cosine similarity of each scored text to the whole reference (0 to 1).",
                ["reference"],
                buckets=SIMILARITY_BUCKETS,
                registry=registry,
            ),
            texts_per_request=Histogram(
                "discourse_texts_per_request",
                "Number of texts in each successful scoring request.",
                buckets=TEXTS_BUCKETS,
                registry=registry,
            ),
            characters=Counter(
                "discourse_characters_scored_total",
                "Characters of text scored, by reference.",
                ["reference"],
                registry=registry,
            ),
            errors=Counter(
                "discourse_errors_total",
                "Problem responses sent, by problem type slug.",
                ["type"],
                registry=registry,
            ),
            # "max": every process of one server loads the same model, so the maximum over all
            # files (live or dead workers, and the master that preloaded the app) is 1 for it; "all"
            # or "liveall" would add a pid label and one series per worker.
            model_info=Gauge(
                "discourse_model_info",
                "The loaded model and references (value is always 1).",
                ["model_id", "version", "references"],
                multiprocess_mode="max",
                registry=registry,
            ),
        )

    def exposition_registry(self) -> CollectorRegistry:
        """The registry to serialise for a scrape: all processes' files, or this app's own metrics."""
        if self.multiprocess_dir is None:
            return self.registry
        # A new registry per scrape, as prometheus_client documents: the collector reads the files then.
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.multiprocess_dir)
        return registry


def init_app(app: Flask, settings: Settings, runtime: Runtime) -> None:
    """Install request ids, the metrics and ``/metrics``, and the one-line-per-request JSON log.

    Call it before any other ``before_request`` hook is registered, so the
    request id and the start time exist even when a later hook refuses the
    request (401, 413, 429 ...).
    """
    configure_logging(settings.log_level)
    metrics = Metrics.create(os.environ.get(MULTIPROC_ENV) or None)
    app.extensions[EXTENSION_KEY] = metrics
    metrics.model_info.labels(
        model_id=runtime.model.model_id,
        version=runtime.model.version,
        references=",".join(sorted(runtime.scorer.references)),
    ).set(1)

    @app.before_request
    def _start_request() -> None:
        g.request_started = time.perf_counter()
        offered = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = offered if _SANE_REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex

    # after_request hooks run in reverse order of registration: this one, registered first, runs
    # last and so sees the final status and headers (401/429 from access control included).
    @app.after_request
    def _finish_request(response: Response) -> Response:
        response.headers[REQUEST_ID_HEADER] = getattr(g, "request_id", "")
        try:
            _record(metrics, response)
        except Exception:
            # Telemetry must never turn an answered request into an error.
            logging.getLogger("discourse.app").exception("could not record request telemetry")
        return response

    @app.get(METRICS_PATH)
    def metrics_endpoint() -> Response:
        """Prometheus exposition (text format, or OpenMetrics when the scraper asks for it)."""
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        return Response(encoder(metrics.exposition_registry()), content_type=content_type)


def _record(metrics: Metrics, response: Response) -> None:
    """Count the request in the metrics and write its log line (never the submitted texts)."""
    started = getattr(g, "request_started", None)
    elapsed = time.perf_counter() - started if started is not None else 0.0
    route = request.url_rule.rule if request.url_rule is not None else UNMATCHED_ROUTE
    method = request.method if request.method in _KNOWN_METHODS else "OTHER"
    status = response.status_code
    problem_type = getattr(g, "problem_type", None)
    scored: dict[str, Any] | None = getattr(g, "scored", None)

    metrics.requests.labels(route=route, method=method, status=str(status)).inc()
    metrics.duration.labels(route=route, method=method).observe(elapsed)
    if problem_type:
        metrics.errors.labels(type=problem_type).inc()
    if scored is not None:
        reference = scored["reference"]
        metrics.texts_per_request.observe(scored["texts"])
        metrics.characters.labels(reference=reference).inc(scored["characters"])
        similarity = metrics.similarity.labels(reference=reference)
        for result in scored["results"]:
            metrics.texts_scored.labels(
                reference=reference, stance=result.stance.label if result.stance else "none"
            ).inc()
            similarity.observe(result.similarity)

    access_log.info(
        "request",
        extra={
            "request_id": getattr(g, "request_id", None),
            "method": method,
            "route": route,
            "status": status,
            "latency_ms": round(elapsed * 1000, 2),
            "texts": scored["texts"] if scored else None,
            "characters": scored["characters"] if scored else None,
            "reference": scored["reference"] if scored else None,
            "api_key_id": getattr(g, "api_key_id", None),
            "problem_type": problem_type,
        },
    )


def configure_logging(level: str) -> None:
    """Send the service's log records to stderr, one JSON object per line, at ``level``.

    Idempotent: the handler installed by an earlier call is replaced, so
    building several apps in one process never duplicates lines. The loggers
    do not propagate to the root logger, whose handlers (gunicorn's, a test
    runner's) would print each record a second time in another format.
    """
    formatter = JsonFormatter(
        ["levelname", "name", "message"],
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="time",
    )
    for name in LOGGER_NAMES:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if getattr(h, "discourse_json", False)]:
            logger.removeHandler(old)
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(formatter)
        handler.discourse_json = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.setLevel(max(logging.getLevelName(level.upper()), _MINIMUM_LEVELS.get(name, logging.NOTSET)))
        logger.propagate = False
