"""The HTTP layer: Flask app factory, views, schemas, problems, metrics and access control.

Thin by design: views validate, call :class:`service.domain.scorer.Scorer`
and serialise; all scoring logic lives in :mod:`service.domain`.
"""
