"""Request ids, Prometheus metrics and the structured request log.

Metrics work in two modes, chosen when the app is built (never at import):

* ``PROMETHEUS_MULTIPROC_DIR`` set (the gunicorn config sets it): every worker
  process writes its samples to files in that directory and ``/metrics``
  aggregates all of them with :class:`~prometheus_client.multiprocess.MultiProcessCollector`,
  so a scrape gives the same totals whichever worker answers it.
* otherwise: the metrics live in a :class:`~prometheus_client.CollectorRegistry`
  owned by the app, so building many apps in one process (the tests do) never
  collides with an earlier registration.

Telemetry never fails a request or hides one (service.http.telemetry): the
request's log line is written first, a failed metric write is caught, counted
(``discourse_telemetry_failures_total``) and logged at most once a minute per
process, and ``/readyz`` (``checks.telemetry``) and ``discourse_telemetry_healthy``
say when metrics are broken. In multiprocess mode ``process_*`` series come
for the master and each live worker, labelled ``process``.

Every label has a bounded set of values: route templates (not paths), a fixed
list of methods, HTTP status codes, reference ids the runtime knows (``inline`` for every
reference sent with a request), the four stance labels and the problem type slugs.
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

from flask import Flask, Response, current_app, g, request
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.exposition import choose_encoder
from pythonjsonlogger.json import JsonFormatter
from werkzeug.exceptions import MethodNotAllowed

from service.config import Settings
from service.domain.stance import STANCE_LABELS
from service.http import telemetry
from service.http.problems import PROBLEM_TYPES
from service.loaders.runtime import Runtime

# Before any metric value exists: multiprocess files get their blocks allocated (no SIGBUS when full).
telemetry.install_allocation_guard()

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
SCORING_ROUTE = "/v1/score"
"""The scoring endpoint's route label, whose series exist from start-up (a test checks the route)."""

# Seconds: from a probe (milliseconds) to a full 256-text batch with evidence under load.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
SIMILARITY_BUCKETS = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
TEXTS_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


@dataclass(frozen=True)
class Metrics:
    """The metric objects of one app (see the module docstring for the two modes)."""

    registry: CollectorRegistry
    multiprocess_dir: str | None
    # The process that built the app: under gunicorn (preload_app), the master.
    app_pid: int
    requests: Counter
    duration: Histogram
    texts_scored: Counter
    similarity: Histogram
    texts_per_request: Histogram
    characters: Counter
    errors: Counter
    model_info: Gauge
    reference_cache: ReferenceCacheMetrics
    reloads: Counter

    @classmethod
    def create(cls, multiprocess_dir: str | None) -> Metrics:
        """Create the metrics on a fresh registry; in single-process mode add the process collector."""
        registry = CollectorRegistry(auto_describe=True)
        if multiprocess_dir is None:
            # Memory and CPU of this process; in multiprocess mode ProcessesCollector covers each process.
            ProcessCollector(registry=registry)
            registry.register(telemetry.HealthCollector(None))
        return cls(
            registry=registry,
            multiprocess_dir=multiprocess_dir,
            app_pid=os.getpid(),
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
            reference_cache=ReferenceCacheMetrics.create(registry),
            reloads=Counter(
                "discourse_reloads_total",
                "Reloads of the model and references on SIGHUP, by result (ok, or failed: the "
                "previous ones are kept; the log names the file).",
                ["result"],
                registry=registry,
            ),
        )

    def start_known_series(self, references: list[str]) -> None:
        """Create, at zero, the series of the scoring route, the problem types and ``references``.

        A series that exists before its first event shows in ``rate()`` and alerts from the
        start. It also keeps memory down: a series created during a large request is a few
        long-lived objects placed among the request's temporaries, which keep the allocator
        from giving their memory back afterwards (docs/robustness.md).
        """
        for slug in PROBLEM_TYPES:
            self.errors.labels(type=slug)
        for status in sorted({200} | {t.status for t in PROBLEM_TYPES.values()}):
            self.requests.labels(route=SCORING_ROUTE, method="POST", status=str(status))
        self.duration.labels(route=SCORING_ROUTE, method="POST")
        for reference in references:
            self.characters.labels(reference=reference)
            self.similarity.labels(reference=reference)
            for stance in (*STANCE_LABELS, "none"):
                self.texts_scored.labels(reference=reference, stance=stance)

    def exposition_registry(self) -> CollectorRegistry:
        """The registry to serialise for a scrape: all processes' files, or this app's own metrics."""
        if self.multiprocess_dir is None:
            return self.registry
        # A new registry per scrape, as prometheus_client documents: the collectors read the files then.
        registry = CollectorRegistry()
        registry.register(telemetry.FileCollector(self.multiprocess_dir))
        # Under gunicorn the app was built in the master and this worker is its child.
        master = self.app_pid if os.getppid() == self.app_pid else os.getpid()
        registry.register(telemetry.ProcessesCollector(master))
        registry.register(telemetry.HealthCollector(self.multiprocess_dir))
        return registry


@dataclass(frozen=True)
class ReferenceCacheMetrics:
    """The per-worker cache of references sent with requests: lookups, evictions and size."""

    lookups: Counter
    evictions: Counter
    entries: Gauge
    bytes: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> ReferenceCacheMetrics:
        """The four metrics on ``registry`` (sizes summed over live workers in multiprocess mode)."""
        return cls(
            lookups=Counter(
                "discourse_reference_cache_lookups_total",
                "Lookups of sent references in the per-worker cache, by result (hit or miss).",
                ["result"],
                registry=registry,
            ),
            evictions=Counter(
                "discourse_reference_cache_evictions_total",
                "Sent references evicted from the per-worker cache (least recently used first).",
                registry=registry,
            ),
            entries=Gauge(
                "discourse_reference_cache_entries",
                "Sent references held in the cache, summed over live workers.",
                multiprocess_mode="livesum",
                registry=registry,
            ),
            bytes=Gauge(
                "discourse_reference_cache_bytes",
                "Estimated memory of the cached sent references, in bytes, summed over live workers.",
                multiprocess_mode="livesum",
                registry=registry,
            ),
        )

    def record(self, event: Any) -> None:
        """Count one lookup (a :class:`service.domain.reference_cache.CacheEvent`)."""
        self.lookups.labels(result="hit" if event.hit else "miss").inc()
        if event.evicted:
            self.evictions.inc(event.evicted)
        self.entries.set(event.entries)
        self.bytes.set(event.bytes)


def init_app(app: Flask, settings: Settings, runtime: Runtime) -> None:
    """Install request ids, the metrics and ``/metrics``, and the one-line-per-request JSON log.

    Call it before any other ``before_request`` hook is registered, so the
    request id and the start time exist even when a later hook refuses the
    request (401, 413, 429 ...).
    """
    configure_logging(settings.log_level)
    metrics = Metrics.create(os.environ.get(MULTIPROC_ENV) or None)
    app.extensions[EXTENSION_KEY] = metrics
    try:
        metrics.model_info.labels(
            model_id=runtime.model.model_id,
            version=runtime.model.version,
            references=",".join(sorted(runtime.scorer.references)),
        ).set(1)
        metrics.start_known_series(sorted(runtime.scorer.references))
    except Exception as error:  # a full or unwritable metrics directory must not stop the service
        telemetry.report_failure("model info metric", error)

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
        # Telemetry must never turn an answered request into an error, nor hide it: the log line is
        # written whatever happens to the metrics.
        try:
            facts = _request_facts(response)
        except Exception as error:
            telemetry.report_failure("request facts", error)
            return response
        _write_log_line(facts)
        try:
            _record(metrics, facts)
        except Exception as error:
            telemetry.report_failure("metric write", error)
        return response

    @app.get(METRICS_PATH)
    def metrics_endpoint() -> Response:
        """Prometheus exposition (text format, or OpenMetrics when the scraper asks for it)."""
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        return Response(encoder(metrics.exposition_registry()), content_type=content_type)


def route_label() -> str:
    """The route template of the current request; for a 405, the template of the route it reached."""
    if request.url_rule is not None:
        return request.url_rule.rule
    if isinstance(request.routing_exception, MethodNotAllowed):
        adapter = current_app.url_map.bind_to_environ(request.environ)
        for method in request.routing_exception.valid_methods or ():
            try:
                rule, _ = adapter.match(method=method, return_rule=True)
            except Exception:
                continue
            return rule.rule
    return UNMATCHED_ROUTE


def _request_facts(response: Response) -> dict[str, Any]:
    started = getattr(g, "request_started", None)
    scored: dict[str, Any] | None = getattr(g, "scored", None)
    return {
        "elapsed": time.perf_counter() - started if started is not None else 0.0,
        "route": route_label(),
        "method": request.method if request.method in _KNOWN_METHODS else "OTHER",
        "status": response.status_code,
        "problem_type": getattr(g, "problem_type", None),
        "scored": scored,
        "reference_cache": getattr(g, "reference_cache", None),
    }


def _write_log_line(facts: dict[str, Any]) -> None:
    """The request's one JSON log line (never the submitted texts)."""
    scored = facts["scored"]
    access_log.info(
        "request",
        extra={
            "request_id": getattr(g, "request_id", None),
            # Which worker answered (under gunicorn each worker is a process).
            "pid": os.getpid(),
            "method": facts["method"],
            "route": facts["route"],
            "status": facts["status"],
            "latency_ms": round(facts["elapsed"] * 1000, 2),
            "texts": scored["texts"] if scored else None,
            "characters": scored["characters"] if scored else None,
            "reference": scored["reference"] if scored else None,
            "api_key_id": getattr(g, "api_key_id", None),
            "problem_type": facts["problem_type"],
        },
    )


def _record(metrics: Metrics, facts: dict[str, Any]) -> None:
    """Count the request in the metrics."""
    route, method, scored = facts["route"], facts["method"], facts["scored"]
    metrics.requests.labels(route=route, method=method, status=str(facts["status"])).inc()
    metrics.duration.labels(route=route, method=method).observe(facts["elapsed"])
    if facts["problem_type"]:
        metrics.errors.labels(type=facts["problem_type"]).inc()
    if facts.get("reference_cache") is not None:
        metrics.reference_cache.record(facts["reference_cache"])
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
