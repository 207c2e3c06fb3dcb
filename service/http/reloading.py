"""Reloading ``seeds/`` and the model without a restart (gunicorn's ``SIGHUP``).

gunicorn's answer to ``SIGHUP`` is a graceful reload: the master re-reads its
configuration, calls the ``on_reload`` hook, forks new workers and stops the old ones
gracefully (each finishes the requests it has), all on the same listening socket, so no
request is refused. With ``preload_app`` the master keeps the application it loaded at
start, so the hook (:func:`reload_runtime`, called from ``service.http.gunicorn_config``)
loads and verifies a fresh runtime in the master first; the new workers are forked from
it. If any file is broken, the old runtime stays: the new workers serve the old, working
set, the log names the file and the reason, ``discourse_reloads_total{result="failed"}``
counts it, and ``/readyz`` stays ready (nothing unverified is ever served).
"""

from __future__ import annotations

import logging

from flask import Flask

from service.http import telemetry
from service.http.observability import EXTENSION_KEY, Metrics
from service.loaders.artifacts import ArtifactError
from service.loaders.reference_files import ReferenceFileError
from service.loaders.runtime import Runtime, load_runtime

log = logging.getLogger("discourse.reload")


def reload_runtime(app: Flask) -> bool:
    """Load the model and references again into ``app``; keep the old ones if that fails.

    Returns whether the new runtime is in place. Never raises: a failure is logged
    (file and reason) and counted.
    """
    settings = app.extensions["discourse"]["settings"]
    old: Runtime = app.extensions["discourse"]["runtime"]
    try:
        new = load_runtime(settings.model_dir, settings.seeds_dir)
    except (ArtifactError, ReferenceFileError) as error:
        log.error("reload failed, still serving the previous model and references: %s", error)
        _count(app, "failed")
        return False
    except Exception:  # a bug must not take the master down with it: same outcome, with the traceback
        log.exception("reload failed, still serving the previous model and references")
        _count(app, "failed")
        return False
    app.extensions["discourse"]["runtime"] = new
    _count(app, "ok")
    metrics: Metrics = app.extensions[EXTENSION_KEY]
    try:
        metrics.model_info.labels(
            model_id=old.model.model_id,
            version=old.model.version,
            references=",".join(sorted(old.scorer.references)),
        ).set(0)
        metrics.model_info.labels(
            model_id=new.model.model_id,
            version=new.model.version,
            references=",".join(sorted(new.scorer.references)),
        ).set(1)
    except Exception as error:
        telemetry.report_failure("model info metric", error)
    log.info(
        "reloaded model %s %s and references %s",
        new.model.model_id,
        new.model.version,
        ", ".join(new.scorer.references),
    )
    return True


def _count(app: Flask, result: str) -> None:
    try:
        app.extensions[EXTENSION_KEY].reloads.labels(result=result).inc()
    except Exception as error:  # telemetry never stops the service
        telemetry.report_failure("reload metric", error)
