"""Strict checks of JSON request bodies, before any schema sees them.

webargs would answer most of these cases with a generic 400 or, for a wrong
content type, a misleading 422 ("missing texts"); checking here gives each
case its own precise problem: 415 for the media type or a compressed body
(Content-Encoding, or a transfer coding other than chunked),
413 over the size limit (with or without Content-Length), 400 for a body the
server cannot read (a malformed chunked encoding) or bytes that are not UTF-8
or not JSON (including duplicate keys, NaN/Infinity, out-of-range numbers and
nesting too deep to parse).
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import socket
import threading

import numpy as np
from flask import Flask, current_app, g, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from service.http.problems import Problem

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
MAX_JSON_DEPTH = 32
"""Deepest nesting of arrays and objects accepted; a score request needs 3."""
_TOO_DEEP = f"The JSON is nested too deeply (over {MAX_JSON_DEPTH} levels)."
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_OPENING = np.frombuffer(b"[{", dtype=np.uint8)
_CLOSING = np.frombuffer(b"]}", dtype=np.uint8)


def accepts_form(view):
    """Mark a view that takes HTML form posts (the web page): :func:`check_json_body` lets it be."""
    view.accepts_form = True
    return view


def check_json_body() -> None:
    """``before_request`` hook: refuse bodies the JSON endpoints cannot take, with a precise problem."""
    if request.method not in _BODY_METHODS or request.url_rule is None:
        return
    if getattr(current_app.view_functions.get(request.endpoint or ""), "accepts_form", False):
        return
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise Problem(
            "unsupported-media-type",
            f"Content-Encoding {encoding!r} is not accepted; send the JSON body uncompressed.",
        )
    # gunicorn frames "gzip, chunked" (or deflate, compress) by its chunks but does not decode the
    # gzip layer: the app would read compressed bytes as if they were the body.
    transfer = request.headers.get("Transfer-Encoding", "")
    codings = {c.strip().lower() for c in transfer.split(",")} - {"", "chunked", "identity"}
    if codings:
        raise Problem(
            "unsupported-media-type",
            f"Transfer-Encoding {transfer.strip()!r} is not accepted; send the JSON body uncompressed.",
        )
    mimetype = request.mimetype
    if mimetype != "application/json" and not (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    ):
        raise Problem(
            "unsupported-media-type",
            f"Content-Type must be application/json, not {request.content_type or 'missing'!r}.",
        )
    charset = request.mimetype_params.get("charset", "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        raise Problem("unsupported-media-type", f"charset {charset!r} is not accepted; use UTF-8.")
    raw = read_body_within_limit()
    # A large body waits for nothing: it gets a slot now, before parsing, or a 503 (and the slot is
    # given back when the request ends: see init_admission).
    if current_app.extensions["discourse.admission"].enter(len(raw)):
        g.admitted = True
    # The one parse of the body: webargs loads the schema from it (see views/scoring.py).
    g.json_body = parse_json_strictly(raw)


def init_admission(app: Flask) -> None:
    """Give back, when each request ends, the admission slot its body check took."""

    @app.teardown_request
    def _leave(_: BaseException | None) -> None:
        if g.pop("admitted", False):
            current_app.extensions["discourse.admission"].leave()


class _BodyDeadline:
    """Ends the read of a request body that arrives too slowly.

    A slow upload holds a server thread while it crawls. Past the deadline the
    socket's reading side is shut down, so the blocked read returns at once and
    the client gets a 408 ``request-timeout`` (and the connection is closed).
    """

    def __init__(self, sock: socket.socket, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._sock = sock
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def _expire(self) -> None:
        self.expired = True
        with contextlib.suppress(OSError):  # already closed
            self._sock.shutdown(socket.SHUT_RD)

    def cancel(self) -> None:
        self._timer.cancel()

    def problem(self) -> Problem:
        return Problem(
            "request-timeout",
            f"The request body did not arrive within {self.seconds:.0f} s (at least "
            f"{current_app.extensions['discourse']['settings'].body_min_rate} bytes per second are needed).",
        )


def _body_deadline() -> _BodyDeadline | None:
    """A deadline for reading this request's body, when the server gives access to its socket."""
    sock = request.environ.get("gunicorn.socket")
    if sock is None:
        return None
    settings = current_app.extensions["discourse"]["settings"]
    length = request.content_length if request.content_length is not None else settings.max_body_bytes
    return _BodyDeadline(
        sock, settings.body_grace_seconds + min(length, settings.max_body_bytes) / settings.body_min_rate
    )


def read_body_within_limit() -> bytes:
    """The whole request body; 413 past ``MAX_CONTENT_LENGTH``, 400 if the server cannot read it.

    With a Content-Length over the limit Werkzeug raises 413 before reading. A body
    without one (chunked) is read through a stream that stops *at* the limit without
    an error, which would silently truncate it: one more byte read from the server's
    own stream tells a body of exactly the limit from a longer one.

    Under gunicorn the body must arrive within ``body_grace_seconds`` plus its
    length divided by ``body_min_rate``: else 408 (see :class:`_BodyDeadline`).
    """
    deadline = _body_deadline()
    try:
        raw = request.get_data(cache=True)
        limit = request.max_content_length
        at_limit = request.content_length is None and limit is not None and len(raw) >= limit
        if at_limit and request.input_stream.read(1):
            raise RequestEntityTooLarge()
    except HTTPException:
        if deadline is not None and deadline.expired:
            raise deadline.problem() from None
        raise
    except Exception as error:  # the server's stream, e.g. gunicorn's InvalidChunkSize: the client's fault
        if deadline is not None and deadline.expired:
            raise deadline.problem() from None
        raise Problem(
            "malformed-request", f"The request body could not be read ({type(error).__name__})."
        ) from None
    finally:
        if deadline is not None:
            deadline.cancel()
    if deadline is not None and deadline.expired:
        raise deadline.problem()
    return raw


def parse_json_strictly(raw: bytes) -> object:
    """Parse ``raw`` as UTF-8 JSON, raising a ``malformed-request`` :class:`Problem` on any defect."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise Problem(
            "malformed-request", f"The body is not valid UTF-8 (invalid byte at offset {error.start})."
        ) from None
    try:
        value = json.loads(
            text,
            object_pairs_hook=_reject_duplicate_keys,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
        )
    except Problem:
        raise
    except json.JSONDecodeError as error:
        raise Problem(
            "malformed-request",
            f"The body is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno}).",
        ) from None
    except RecursionError:
        # The C decoder stops at the interpreter's recursion limit: no crash, no stack overflow.
        raise Problem("malformed-request", _TOO_DEEP) from None
    except ValueError as error:  # e.g. an integer literal with thousands of digits
        raise Problem("malformed-request", f"The body is not acceptable JSON: {error}.") from None
    _check_depth(raw)
    return value


def _check_depth(raw: bytes) -> None:
    """Refuse valid JSON ``raw`` nested deeper than :data:`MAX_JSON_DEPTH`.

    The parse above succeeds up to the interpreter's recursion limit minus the
    current stack depth, which varies with the server and the hooks run before;
    a fixed limit gives the same answer to the same body everywhere. Outside its
    strings, the depth of valid JSON is the running count of brackets; computed
    in one pass.
    """
    if raw.count(b"[") + raw.count(b"{") <= MAX_JSON_DEPTH:
        return
    skeleton = np.frombuffer(_JSON_STRING.sub(b"", raw), dtype=np.uint8)
    steps = np.isin(skeleton, _OPENING).astype(np.int32) - np.isin(skeleton, _CLOSING)
    if steps.size and int(np.cumsum(steps).max()) > MAX_JSON_DEPTH:
        raise Problem("malformed-request", _TOO_DEEP)


def _reject_duplicate_keys(pairs: list[tuple[str, object]]) -> dict:
    result: dict = {}
    for key, value in pairs:
        if key in result:
            raise Problem("malformed-request", f"Duplicate key {key!r} in a JSON object.")
        result[key] = value
    return result


def _reject_constant(name: str) -> float:
    raise Problem("malformed-request", f"{name} is not valid JSON.")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise Problem("malformed-request", f"The number {literal[:40]} is out of range.")
    return value
