"""gunicorn settings for the Procfile's ``web`` process.

Read by gunicorn itself (``--config python:service.http.gunicorn_config``);
the platform conventions ``PORT`` and ``WEB_CONCURRENCY`` set the bind port
and the number of worker processes.
"""

import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Load the model once in the master, before forking: workers share its pages
# and a bad artifact stops the whole server before it listens.
preload_app = True
