"""The web page for analysts, at ``/``: score one text or a file of texts, see why.

Server-rendered (Jinja, autoescaped) with htmx for partial updates; every
action also works as a plain form post, so one text can be scored with
JavaScript off. The page adds no rule of its own: a form is loaded through the
app's request schema (:func:`service.http.schemas.score_request_schema`, with its limits)
and scored by :func:`score_request`, exactly as ``POST /v1/score`` does, and its actions
under ``/page/`` are guarded by the same API keys and rate limits (see :mod:`service.http.access`).
"""

from __future__ import annotations

import itertools
import json
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from flask import Blueprint, Response, current_app, g, render_template, request
from flask_limiter import RateLimitExceeded
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from service.config import key_digests
from service.domain.stance import STANCE_LABELS
from service.file_scoring import error_document
from service.http.access import API_KEY_HEADER, PAGE_ACTIONS_PREFIX, PAGE_KEY_FIELD
from service.http.body import accepts_form
from service.http.errors import PROBLEM_OF, to_problem
from service.http.page_downloads import results_csv, results_jsonl
from service.http.problems import PROBLEM_TYPES, Problem, flatten_messages, problem_type_for_status
from service.http.schemas import ScoreResponseSchema
from service.http.views.context import current_request_schema, current_runtime, current_settings
from service.http.views.references import describe
from service.http.views.scoring import score_request
from service.textfiles import ReadOptions, TextFileError, format_of, read_texts

blp = Blueprint(
    "page",
    __name__,
    template_folder="../templates",
    static_folder="../static",
    static_url_path="/assets",
)

BATCH_PAGE_SIZE = 25
"""Rows per page of the many-texts table."""

# Everything the page loads comes from this service; no inline script or style, no framing.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)

_PICKER_FIELDS = ("one-reference", "many-reference")
_RESPONSE_SCHEMA = ScoreResponseSchema()


@blp.after_request
def _security_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    if response.mimetype == "text/html":
        # The result of a scored text must not linger in shared caches or the back-forward cache.
        response.headers["Cache-Control"] = "no-store"
    return response


# --- views ------------------------------------------------------------------------------------------


@blp.get("/")
def index():
    """The page: the one-text form, the file upload, and (with keys configured) the key prompt."""
    return render_template("page.html", **_page_context())


@blp.get(PAGE_ACTIONS_PREFIX + "references")
def reference_picker():
    """The reference picker alone (htmx loads it once a key is entered, when keys are required)."""
    field_id = request.args.get("field")
    if field_id not in _PICKER_FIELDS:
        field_id = _PICKER_FIELDS[0]
    return render_template(
        "_reference_picker.html", references=_references(), selected=None, field_id=field_id
    )


@blp.post(PAGE_ACTIONS_PREFIX + "score")
@accepts_form
def score_one():
    """Score the text of the one-text form; a fragment for htmx, else the whole page."""
    form = request.form
    payload: dict = {"texts": [{"text": form.get("text", "")}], "explain": form.get("explain") == "on"}
    if form.get("id", "").strip():
        payload["texts"][0]["id"] = form["id"]
    if form.get("reference"):
        payload["reference"] = form["reference"]
    try:
        loaded = current_request_schema().load(payload)
    except ValidationError as error:
        errors = flatten_messages(error.messages)
        fields = ", ".join(sorted({e["field"] for e in errors}))
        raise Problem("validation-error", f"Invalid field(s): {fields}.", errors=errors) from None
    document = _RESPONSE_SCHEMA.dump(score_request(loaded))
    view = one_text_view(document, form.get("text", ""), loaded, request.host_url)
    if _is_htmx():
        return render_template("_one_result.html", view=view)
    return render_template("page.html", **_page_context(form=form), one=view)


@blp.post(PAGE_ACTIONS_PREFIX + "batch")
@accepts_form
def score_many():
    """Score every row of an uploaded CSV or JSONL file; rows that break a rule are listed, not scored."""
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise Problem(
            "validation-error",
            "Choose a CSV or JSONL file to upload.",
            errors=[{"field": "file", "message": "No file was sent."}],
        )
    reference = request.form.get("reference") or None
    try:
        rows, row_errors = read_upload(upload.filename, upload.stream.read())
    except TextFileError as error:
        raise Problem(
            "validation-error", str(error), errors=[{"field": "file", "message": str(error)}]
        ) from None
    limit = current_settings().page_max_rows
    if len(rows) > limit:
        raise Problem(
            "validation-error",
            f"{upload.filename}: {len(rows):,} rows to score; the page scores at most {limit:,} from one "
            "file. Split the file, or score it with the command line (discourse score).",
            errors=[{"field": "file", "message": f"At most {limit} rows per file ({len(rows)} given)."}],
        )
    document = score_rows(rows, reference)
    documents = document["results"]
    reference_id = document["reference"]["id"]
    claim_ids = [c.id for c in current_runtime().scorer.reference(reference_id).claims]
    view = {
        "file_name": upload.filename,
        "reference": document["reference"],
        "model": document["model"],
        "results": documents,
        "row_errors": row_errors,
        "pages": list(_pages(documents, BATCH_PAGE_SIZE)),
        "downloads": {
            "csv": results_csv(documents, reference_id, claim_ids),
            "jsonl": results_jsonl(documents, reference_id),
            # The errors file of discourse score: {"file", "line", "field", "reason"[, "id"]} a line.
            "errors": "".join(
                json.dumps({k: v for k, v in e.items() if k != "id" or v}, ensure_ascii=False) + "\n"
                for e in row_errors
            ),
        },
        "download_name": _download_stem(upload.filename),
    }
    if _is_htmx():
        return render_template("_many_result.html", view=view)
    return render_template("page.html", **_page_context(), many=view)


def read_upload(filename: str, data: bytes) -> tuple[list[tuple[int, str, str]], list[dict]]:
    """The ``(line, id, text)`` rows of an uploaded file to score, and the rows refused.

    The file rules of ``discourse score`` (:mod:`service.textfiles`, the API's limits); each
    refused row is a line of the errors file of ``discourse score``, ``{"file", "line", "field",
    "reason", "id"}`` (``id`` empty when the row had none). Raises :class:`TextFileError`, its
    message starting with the file's name, when the file as a whole cannot be read.
    """
    name = filename.replace("\\", "/").rsplit("/", 1)[-1] or "upload"
    try:
        texts = read_texts(
            data, format_of(name), ReadOptions(max_text_chars=current_settings().max_text_chars)
        )
    except TextFileError as error:
        raise TextFileError(f"{name}: {error}") from None
    rows = [(record.line, record.id, record.text) for record in texts.records]
    return rows, [{"id": "", **error_document(name, error)} for error in texts.errors]


def score_rows(rows: Sequence[tuple[int, str, str]], reference: str | None) -> dict:
    """Score ``(row, id, text)`` rows in requests of at most ``max_texts``, as the API would.

    Returns one response document (reference, model, every result in row order).
    """
    runtime = current_runtime()
    prepared = runtime.scorer.reference(reference)
    size = current_settings().max_texts
    results: list[dict] = []
    scored = {"reference": prepared.reference.id, "texts": 0, "characters": 0, "results": []}
    for start in range(0, len(rows), size):
        chunk = rows[start : start + size]
        payload = {
            "texts": [{"id": text_id, "text": text} for _, text_id, text in chunk],
            "reference": prepared.reference.id,
            "explain": False,
        }
        document = _RESPONSE_SCHEMA.dump(score_request(current_request_schema().load(payload)))
        results.extend(document["results"])
        for key in ("texts", "characters", "results"):
            scored[key] += g.scored[key]
    if rows:
        g.scored = scored
    return {
        "reference": {"id": prepared.reference.id, "title": prepared.reference.title},
        "model": {"id": runtime.model.model_id, "version": runtime.model.version},
        "results": results,
    }


# --- errors: rendered as HTML on the page's own routes ----------------------------------------------


def _page_error(error: Exception):
    """The problem of :data:`PROBLEM_OF`; rate limits and HTTP errors worded for people, not programs."""
    if isinstance(error, RateLimitExceeded):
        detail = f"Too many requests ({error.description}); wait a moment and try again."
        problem = Problem("rate-limited", detail)
    elif isinstance(error, HTTPException):
        kind = problem_type_for_status(error.code or 500)
        detail = {
            413: f"The upload is larger than the limit of {current_settings().max_body_bytes:,} bytes.",
            404: "There is nothing at this address.",
            405: "This address does not take that method.",
        }.get(error.code or 500, kind.title)
        problem = Problem(kind.slug, detail)
    else:
        problem = to_problem(error) or Problem("internal-error", "An unexpected error occurred.")
    return _error_response(problem)


for _kind in PROBLEM_OF:
    blp.register_error_handler(_kind, _page_error)


def _error_response(problem: Problem):
    g.problem_type = problem.slug  # counted in the errors metric, as for the API
    status = PROBLEM_TYPES[problem.slug].status
    error = {
        "title": problem.type.title,
        "detail": problem.detail,
        "errors": problem.errors or [],
        "status": status,
        "key_problem": problem.slug == "unauthorized",
        "request_id": getattr(g, "request_id", None),
    }
    headers = {k: v for k, v in problem.headers.items() if k != "WWW-Authenticate"}
    if _is_htmx():
        return render_template("_error.html", error=error), status, headers
    if request.method == "GET" and request.path == "/":
        return render_template("page.html", **_page_context(), error=error), status, headers
    form = request.form if request.mimetype != "multipart/form-data" else None
    return render_template("page.html", **_page_context(form=form), error=error), status, headers


# --- view models ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    """A run of text, the (1-based) numbers of the evidence passages covering it, and of those
    that start with it (the page writes those numbers at the start of each highlight)."""

    text: str
    passages: tuple[int, ...]
    starts: tuple[int, ...] = ()


def highlight(text: str, spans: Iterable[tuple[int, int, int]]) -> list[Segment]:
    """Cut ``text`` into segments at every ``(start, end, number)`` span boundary.

    Offsets are code point indices, end exclusive (as the API gives them); spans may overlap,
    and a segment lists every span covering it. Joined, the segments give back ``text``.
    """
    spans = [(max(0, s), min(len(text), e), n) for s, e, n in spans if e > s]
    cuts = sorted({0, len(text), *(s for s, _, _ in spans), *(e for _, e, _ in spans)})
    segments = []
    for start, end in itertools.pairwise(cuts):
        covering = tuple(sorted(n for s, e, n in spans if s <= start and end <= e))
        starting = tuple(sorted(n for s, _, n in spans if s == start))
        segments.append(Segment(text[start:end], covering, starting))
    return segments


def similarity_sentence(similarity: float) -> str:
    """What a similarity (TF-IDF cosine, 0..1) means, in words."""
    if similarity >= 0.5:
        meaning = "the text closely follows the reference's wording"
    elif similarity >= 0.25:
        meaning = "the text shares much of the reference's vocabulary"
    elif similarity >= 0.1:
        meaning = "the text shares some words with the reference"
    else:
        meaning = "the text shares almost no vocabulary with the reference"
    return (
        f"Similarity {similarity:.2f} on a scale from 0 (no words in common) to 1 (the same words "
        f"in the same proportions): {meaning}."
    )


def one_text_view(document: dict, text: str, request_payload: dict, host_url: str) -> dict:
    """Everything the one-text result shows, from the API's response ``document``."""
    runtime = current_runtime()
    result = document["results"][0]
    prepared = runtime.scorer.reference(document["reference"]["id"])
    claim_texts = {claim.id: claim.text for claim in prepared.claims}
    passages = (result.get("evidence") or {}).get("passages", [])
    numbered = list(enumerate(passages, start=1))
    body = prepared.reference.body
    api_body = {
        "texts": [{k: v for k, v in item.items()} for item in request_payload["texts"]],
        "reference": document["reference"]["id"],
        "explain": request_payload["explain"],
    }
    return {
        "document": document,
        "result": result,
        "id_given": "id" in request_payload["texts"][0],
        "labels": STANCE_LABELS,
        "similarity_sentence": similarity_sentence(result["similarity"]),
        "claims": [{**claim, "text": claim_texts.get(claim["id"], "")} for claim in result["claims"]],
        "passages": [
            {**p, "number": n, "text_passage": text[p["text_start"] : p["text_end"]]} for n, p in numbered
        ],
        "text_segments": highlight(text, ((p["text_start"], p["text_end"], n) for n, p in numbered)),
        "reference_segments": highlight(
            body, ((p["reference_start"], p["reference_end"], n) for n, p in numbered)
        ),
        "curl": curl_command(host_url, api_body, _keys_required()),
        "response_json": json.dumps(document, ensure_ascii=False, indent=2),
    }


def curl_command(host_url: str, body: dict, with_key: bool) -> str:
    """A shell command that sends ``body`` to ``POST /v1/score`` (the key from an env variable)."""
    parts = [
        "curl",
        "-sS",
        "-X",
        "POST",
        host_url.rstrip("/") + "/v1/score",
        "-H",
        "Content-Type: application/json",
    ]
    command = " ".join(shlex.quote(p) for p in parts)
    if with_key:
        command += f' -H "{API_KEY_HEADER}: $DISCOURSE_API_KEY"'
    return command + " --data-raw " + shlex.quote(json.dumps(body, ensure_ascii=False))


def _page_context(form=None) -> dict:
    runtime = current_runtime()
    settings = current_settings()
    keys_required = _keys_required()
    return {
        "model": {"id": runtime.model.model_id, "version": runtime.model.version},
        "keys_required": keys_required,
        # With keys, the reference list is guarded like GET /v1/references: loaded once a key is given.
        "references": None if keys_required else _references(),
        "form": form or {},
        "explain_default": True,
        "key_field": PAGE_KEY_FIELD,
        "limits": {
            "max_body_bytes": settings.max_body_bytes,
            "max_text_chars": settings.max_text_chars,
            "page_max_rows": settings.page_max_rows,
        },
    }


def _references() -> list[dict]:
    scorer = current_runtime().scorer
    return [describe(r, scorer.default_reference) for r in scorer.references.values()]


def _keys_required() -> bool:
    state = current_app.extensions.setdefault("discourse.page", {})
    if "keys_required" not in state:
        state["keys_required"] = bool(key_digests(current_settings()))
    return state["keys_required"]


def _is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


def _pages(items: Sequence, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _download_stem(filename: str) -> str:
    stem = filename.rsplit("/", 1)[-1].rsplit("\\", 1)[-1].rsplit(".", 1)[0]
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in stem)[:80]
    return (safe or "texts") + "-scores"
