"""discourse-compare: TF-IDF similarity and stance of texts towards reference articles.

The scoring domain (:mod:`service.domain`) imports neither Flask nor any
file loader; the HTTP application is built by :func:`service.http.app.create_app`.
"""

__version__ = "1.1.0"
