"""The one base class of the errors a user can act on."""

from __future__ import annotations

__all__ = ["DiscourseError"]


class DiscourseError(Exception):
    """An input, setting, file or request the service cannot use; the message names it.

    Every error meant for a user (a variable, field, file, line or reference that is
    wrong) derives from this class, beside the built-in class it has always had
    (``ValueError``, ``KeyError``, ``RuntimeError``), so that callers that caught
    the built-in one still do. The command line catches this class alone and prints
    the message; the HTTP layer maps its subclasses to problem documents in one
    table (:mod:`service.http.errors`). Anything else is a bug and keeps its
    traceback.
    """
