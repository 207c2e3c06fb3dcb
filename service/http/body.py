"""Strict checks of JSON request bodies, before any schema sees them.

webargs would answer most of these cases with a generic 400 or, for a wrong
content type, a misleading 422 ("missing texts"); checking here gives each
case its own precise problem: 415 for the media type or a compressed body,
413 over the size limit, 400 for bytes that are not UTF-8 or not JSON
(including duplicate keys, NaN/Infinity, out-of-range numbers and nesting too
deep to parse).
"""

from __future__ import annotations

import json
import math

from flask import request

from service.http.problems import Problem

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def check_json_body() -> None:
    """``before_request`` hook: refuse bodies the JSON endpoints cannot take, with a precise problem."""
    if request.method not in _BODY_METHODS or request.url_rule is None:
        return
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise Problem(
            "unsupported-media-type",
            f"Content-Encoding {encoding!r} is not accepted; send the JSON body uncompressed.",
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
    raw = request.get_data(cache=True)  # raises 413 past MAX_CONTENT_LENGTH
    parse_json_strictly(raw)


def parse_json_strictly(raw: bytes) -> object:
    """Parse ``raw`` as UTF-8 JSON, raising a ``malformed-request`` :class:`Problem` on any defect."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise Problem(
            "malformed-request", f"The body is not valid UTF-8 (invalid byte at offset {error.start})."
        ) from None
    try:
        return json.loads(
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
        raise Problem("malformed-request", "The JSON is nested too deeply.") from None
    except ValueError as error:  # e.g. an integer literal with thousands of digits
        raise Problem("malformed-request", f"The body is not acceptable JSON: {error}.") from None


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
