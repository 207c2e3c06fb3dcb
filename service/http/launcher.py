"""The Procfile's web process: check the environment, then run gunicorn in this process.

gunicorn reads ``WEB_CONCURRENCY`` with ``int()`` when it is imported, before
any config file, so a value such as ``abc`` ends in a traceback and ``0`` in a
server that listens and never answers. This module checks it, ``PORT`` and
every ``DISCOURSE_*`` setting first, and stops with one line naming the
variable (exit status 2) before anything listens. Then it hands its arguments
to gunicorn's own entry point, in this process: the gunicorn master keeps this
process id (PID 1 in a container).

Usage (as the Procfile): ``python -m service.http.launcher --config python:service.http.gunicorn_config APP``.
"""

from __future__ import annotations

import os
import sys

from service.config import SettingsError, check_platform_environment


def main() -> None:
    """Exit 2 with one line on a bad setting; otherwise run gunicorn with ``sys.argv[1:]``."""
    try:
        check_platform_environment(os.environ)
    except SettingsError as error:
        print(f"discourse-compare: configuration error: {error}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    from gunicorn.app.wsgiapp import run

    sys.argv[0] = "gunicorn"
    run()


if __name__ == "__main__":
    main()
