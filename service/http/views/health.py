"""``GET /livez`` and ``GET /readyz``."""

from __future__ import annotations

import os

from flask_smorest import Blueprint

from service.http import shared_state, telemetry
from service.http.observability import MULTIPROC_ENV
from service.http.problems import Problem
from service.http.schemas import HealthSchema
from service.http.views.context import current_runtime, current_settings
from service.http.views.documentation import documents_problem
from service.loaders.runtime import Runtime

blp = Blueprint(
    "health", __name__, description="Liveness and readiness probes (never rate-limited or keyed)."
)


@blp.route("/livez", methods=["GET"])
@blp.response(200, HealthSchema)
def livez():
    """Liveness: the process answers"""
    return {"status": "ok"}


@blp.route("/readyz", methods=["GET"])
@blp.response(200, HealthSchema)
@documents_problem(blp, 503, "Draining after SIGTERM.")
def readyz():
    """Readiness: model and references loaded and verified, not draining

    The app is only built once the artifact's hashes, format and library
    versions and every reference file have been checked, so a running
    worker has a verified model; it reports 503 while draining after SIGTERM.
    """
    settings = current_settings()
    flagged = settings.draining_flag is not None and settings.draining_flag.exists()
    if flagged or shared_state.draining():
        raise Problem("not-ready", "The service is shutting down; send new requests elsewhere.")
    return readiness(current_runtime())


def readiness(runtime: Runtime) -> dict:
    """The body of a ready ``/readyz`` answer.

    ``checks.telemetry`` is ``ok`` or ``degraded: <what is wrong>``; broken
    metrics never make the instance unready (scoring works without them).
    """
    problems = telemetry.telemetry_problems(os.environ.get(MULTIPROC_ENV) or None)
    return {
        "status": "ready",
        "checks": {
            "model": f"{runtime.model.model_id} {runtime.model.version} (sha256 verified)",
            "references": ", ".join(runtime.scorer.references),
            "telemetry": "degraded: " + "; ".join(problems) if problems else "ok",
        },
    }
