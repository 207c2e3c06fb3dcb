"""The web page at / through the Flask client: forms loaded and scored as the API does, escaping,
keys and limits on the page's actions, the many-texts upload and its downloads."""

from __future__ import annotations

import csv
import io
import json
import shlex
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from service.cli import main as cli_main
from service.config import DEFAULT_MODEL_DIR, Settings
from service.http.app import create_app
from service.http.page_downloads import FORMULA_TRIGGERS, csv_header, escape_formula, results_csv
from service.http.views.page import CONTENT_SECURITY_POLICY, highlight, similarity_sentence
from service.loaders.runtime import Runtime, load_runtime
from tests.page_support import (
    SECOND_REFERENCE_ID,
    SECOND_REFERENCE_TITLE,
    parse_page,
    seeds_with_second_reference,
)

TEXT = (
    "NATO expansion threatened Russia, and the Euro-Atlantic security order has failed. "
    "Russia and China are right to build a new Eurasian security architecture."
)
HOSTILE = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", '"><svg onload=alert(1)>']
HTMX = {"HX-Request": "true"}


def api_score(client: FlaskClient, payload: dict, headers: dict | None = None) -> dict:
    response = client.post("/v1/score", json=payload, headers=headers or {})
    assert response.status_code == 200, response.data
    return response.get_json()


def upload(client: FlaskClient, name: str, content: str | bytes, headers: dict | None = None, **form):
    data = content.encode("utf-8") if isinstance(content, str) else content
    return client.post(
        "/page/batch",
        data={"file": (io.BytesIO(data), name), **form},
        content_type="multipart/form-data",
        headers=headers or HTMX,
    )


# --- the page itself --------------------------------------------------------------------------------


def test_page_is_served_at_root_with_a_strict_policy_and_no_inline_script(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY and "unsafe" not in CONTENT_SECURITY_POLICY
    page = parse_page(response.get_data(as_text=True))
    scripts = page.with_tag("script")
    assert scripts and all(s.get("src", "").startswith("/assets/") for s in scripts)
    for tag, attributes in page.elements:
        assert "style" not in attributes, tag
        assert not [name for name in attributes if name.startswith("on")], (tag, attributes)
    for asset in [s["src"] for s in scripts] + [link["href"] for link in page.with_tag("link")]:
        assert client.get(asset).status_code == 200, asset


def test_every_form_control_has_a_label(client: FlaskClient) -> None:
    page = parse_page(client.get("/").get_data(as_text=True))
    controls = [
        a for tag, a in page.elements if tag in {"input", "select", "textarea"} and a.get("type") != "hidden"
    ]
    assert len(controls) >= 5
    assert {a["id"] for a in controls} <= page.label_targets


def test_htmx_is_vendored_pinned_and_served(client: FlaskClient) -> None:
    page = parse_page(client.get("/").get_data(as_text=True))
    (htmx,) = [s["src"] for s in page.with_tag("script") if "htmx" in (s.get("src") or "")]
    assert htmx == "/assets/htmx-2.0.11.min.js"
    response = client.get(htmx)
    head = response.get_data(as_text=True)[:600]
    assert "htmx 2.0.11" in head and "Zero-Clause BSD" in head
    assert 'version:"2.0.11"' in response.get_data(as_text=True).replace(" ", "")


def test_api_and_other_routes_are_unchanged(client: FlaskClient) -> None:
    assert client.get("/nope").mimetype == "application/problem+json"
    assert client.post("/", json={}).status_code == 405
    assert client.get("/v1/references").status_code == 200
    assert "/" not in client.get("/openapi.json").get_json()["paths"]


# --- one text ---------------------------------------------------------------------------------------


def test_plain_form_post_scores_as_the_api_does(client: FlaskClient) -> None:
    # No HX-Request header: what a browser without JavaScript sends; the answer is the whole page.
    response = client.post("/page/score", data={"text": TEXT, "explain": "on", "id": "t1"})
    assert response.status_code == 200
    page = parse_page(response.get_data(as_text=True))
    assert page.text_of("one-text") == TEXT  # the form keeps the text
    api = api_score(client, {"texts": [{"id": "t1", "text": TEXT}], "explain": True})
    shown = json.loads(page.text_of("one-json"))
    assert shown == api
    result = api["results"][0]
    assert result["stance"]["label"] in page.text_of("overall-stance")
    assert f"{result['similarity']:.2f}" in page.text_of("one-result-article")
    assert "not stored" in page.text_of("not-stored")


def test_result_fragment_for_htmx_has_bars_claims_and_evidence(client: FlaskClient, runtime: Runtime) -> None:
    response = client.post("/page/score", data={"text": TEXT, "explain": "on"}, headers=HTMX)
    html = response.get_data(as_text=True)
    assert "<html" not in html
    page = parse_page(html)
    result = api_score(client, {"texts": [{"text": TEXT}], "explain": True})["results"][0]
    meters = page.with_tag("meter")
    labelled = {m.get("aria-label") for m in meters}
    assert {f"probability of {label}" for label in result["stance"]["scores"]} <= labelled
    rows = [a for tag, a in page.elements if tag == "tr" and a.get("data-claim")]
    assert [r["data-claim"] for r in rows] == [c["id"] for c in result["claims"]]
    body = runtime.scorer.reference(None).reference.body
    marks_text = page.text_of("evidence-text")
    assert marks_text == TEXT  # the highlighted text is the text, character for character
    assert page.text_of("evidence-reference") == body
    for term in result["evidence"]["shared_terms"]:
        assert term["term"] in page.text_of("shared-terms")


def test_explain_off_shows_no_evidence(client: FlaskClient) -> None:
    page = parse_page(client.post("/page/score", data={"text": TEXT}, headers=HTMX).get_data(as_text=True))
    assert "Not asked for" in page.text_of("evidence")
    assert "evidence" not in json.loads(page.text_of("one-json"))["results"][0]


def test_copy_as_curl_sends_the_same_request(client: FlaskClient) -> None:
    html = client.post("/page/score", data={"text": TEXT + " ‘quoted’ $HOME", "explain": "on"}, headers=HTMX)
    page = parse_page(html.get_data(as_text=True))
    words = shlex.split(page.text_of("one-curl"))
    assert words[:5] == ["curl", "-sS", "-X", "POST", "http://localhost/v1/score"]
    body = json.loads(words[words.index("--data-raw") + 1])
    assert body["texts"][0]["text"] == TEXT + " ‘quoted’ $HOME"
    assert api_score(client, body) == json.loads(page.text_of("one-json"))


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"text": "   \n\t"}, "texts.0.text"),
        ({"text": TEXT, "id": "x" * 300}, "texts.0.id"),
        ({"text": TEXT, "reference": "y" * 70}, "reference"),
    ],
)
def test_form_errors_are_the_schemas(client: FlaskClient, form: dict, field: str) -> None:
    response = client.post("/page/score", data=form, headers=HTMX)
    assert response.status_code == 422
    payload = {"texts": [{"text": form["text"]}]}
    if "id" in form:
        payload["texts"][0]["id"] = form["id"]
    if "reference" in form:
        payload["reference"] = form["reference"]
    api_errors = client.post("/v1/score", json=payload).get_json()["errors"]
    assert [e["field"] for e in api_errors] == [field]
    html = response.get_data(as_text=True)
    for error in api_errors:
        assert f"<code>{error['field']}</code>: {error['message']}" in html


def test_unknown_reference_and_limits_are_the_apis(runtime: Runtime) -> None:
    app = create_app(Settings(rate_limit_enabled=False, max_text_chars=50), runtime=runtime)
    client = app.test_client()
    response = client.post("/page/score", data={"text": "word " * 20}, headers=HTMX)
    assert response.status_code == 422
    assert "At most 50 characters per text (this one has 100)" in response.get_data(as_text=True)
    response = client.post("/page/score", data={"text": "short text", "reference": "no-such"})
    assert response.status_code == 404
    assert "no reference with id" in response.get_data(as_text=True)
    assert "<html" in response.get_data(as_text=True)  # a plain post gets the whole page back


@pytest.mark.parametrize("hostile", HOSTILE)
def test_user_text_and_ids_are_escaped(client: FlaskClient, hostile: str) -> None:
    response = client.post(
        "/page/score", data={"text": f"NATO and Russia {hostile}", "id": hostile, "explain": "on"}
    )
    html = response.get_data(as_text=True)
    assert hostile not in html
    page = parse_page(html)
    assert not [a for tag, a in page.elements if tag in {"img", "svg"}]
    assert [s for s in page.with_tag("script") if not s.get("src")] == []
    assert hostile in page.text_of("one-result-title")


def test_a_result_without_stance_says_why(app) -> None:
    """Results may come without a stance (with a warning saying why): the page shows the warning."""
    from flask import render_template

    from service.http.views.page import one_text_view

    with app.test_request_context("/"):
        client = app.test_client()
        document = api_score(client, {"texts": [{"text": TEXT}], "explain": True})
        result = document["results"][0]
        result["stance"] = None
        result["language"] = {"code": "de", "probability": 0.97}
        result["warnings"] = [{"code": "language_mismatch", "message": "the text is in German"}]
        for claim in result["claims"]:
            claim["stance"] = None
        view = one_text_view(document, TEXT, {"texts": [{"text": TEXT}], "explain": True}, "http://x/")
        page = parse_page(render_template("_one_result.html", view=view))
    stance = " ".join(page.text_of("overall-stance").split())
    assert "No stance: the text is in German" in stance
    assert "Language: de (probability 0.97)" in " ".join(page.text_of("one-result-article").split())


# --- highlights and wording -------------------------------------------------------------------------


def test_highlight_covers_exactly_the_spans_and_keeps_the_text() -> None:
    text = "0123456789abcdef"
    segments = highlight(text, [(2, 6, 1), (4, 9, 2), (12, 40, 3), (7, 7, 4)])
    assert "".join(s.text for s in segments) == text
    covered = {}
    position = 0
    for segment in segments:
        for offset in range(position, position + len(segment.text)):
            covered[offset] = segment.passages
        position += len(segment.text)
    assert covered[1] == () and covered[2] == (1,) and covered[4] == (1, 2) and covered[8] == (2,)
    assert covered[9] == () and covered[12] == (3,) and covered[15] == (3,)
    assert [s.starts for s in segments if s.starts] == [(1,), (2,), (3,)]
    assert highlight("", []) == []


def test_similarity_sentence_names_the_scale() -> None:
    assert "almost no vocabulary" in similarity_sentence(0.02)
    assert "closely follows" in similarity_sentence(0.8)
    assert "0 (no words in common) to 1" in similarity_sentence(0.3)


# --- keys and limits on the page's actions ----------------------------------------------------------


@pytest.fixture
def keyed_client(runtime: Runtime) -> FlaskClient:
    return create_app(
        Settings(rate_limit_enabled=False, api_keys=("desk:s3cret-desk-key-0001",)), runtime=runtime
    ).test_client()


def test_with_keys_the_page_asks_for_one_and_scores_nothing_without(keyed_client: FlaskClient) -> None:
    response = keyed_client.get("/")
    assert response.status_code == 200
    page = parse_page(response.get_data(as_text=True))
    assert page.with_tag("body")[0]["data-keys-required"] == "true"
    assert "api-key" in page.label_targets
    assert "valdai" not in response.get_data(as_text=True)  # references are listed only with a key
    response = keyed_client.post("/page/score", data={"text": TEXT}, headers=HTMX)
    assert response.status_code == 401
    assert "Send an API key" in response.get_data(as_text=True)
    assert keyed_client.get("/page/references", headers=HTMX).status_code == 401
    assert upload(keyed_client, "t.csv", "text\nhello world\n").status_code == 401


def test_with_keys_a_wrong_key_is_refused_and_a_right_one_scores(keyed_client: FlaskClient) -> None:
    wrong = keyed_client.post("/page/score", data={"text": TEXT}, headers={**HTMX, "X-API-Key": "nope"})
    assert wrong.status_code == 401
    assert "The API key is not valid." in wrong.get_data(as_text=True)
    right = keyed_client.post(
        "/page/score", data={"text": TEXT}, headers={**HTMX, "X-API-Key": "s3cret-desk-key-0001"}
    )
    assert right.status_code == 200
    # Without JavaScript the key can only travel in the form.
    plain = keyed_client.post("/page/score", data={"text": TEXT, "api_key": "s3cret-desk-key-0001"})
    assert plain.status_code == 200
    picker = keyed_client.get(
        "/page/references?field=many-reference", headers={"Authorization": "Bearer s3cret-desk-key-0001"}
    )
    assert 'id="many-reference"' in picker.get_data(as_text=True)


def test_rate_limits_count_the_page_actions(runtime: Runtime) -> None:
    client = create_app(Settings(rate_limit="2/minute"), runtime=runtime).test_client()
    assert [client.post("/page/score", data={"text": TEXT}, headers=HTMX).status_code for _ in range(2)] == [
        200,
        200,
    ]
    limited = client.post("/page/score", data={"text": TEXT}, headers=HTMX)
    assert limited.status_code == 429
    assert "Too many requests" in limited.get_data(as_text=True)
    assert client.get("/").status_code == 200  # the page itself is never limited


# --- many texts -------------------------------------------------------------------------------------


def downloads_of(response) -> dict[str, str]:
    return json.loads(parse_page(response.get_data(as_text=True)).text_of("many-downloads"))


def test_upload_scores_like_the_cli_and_reports_bad_rows(client: FlaskClient, tmp_path: Path) -> None:
    rows = [("a1", TEXT), ("", "Russia and China will talk about security in Eurasia."), ("a3", "  ")]
    rows += [("a1", "A repeated id."), ("=HYPERLINK(1)", "Cooking pasta with basil and garlic tonight.")]
    content = io.StringIO()
    writer = csv.writer(content)
    writer.writerow(["id", "text"])
    writer.writerows(rows)
    response = upload(client, "texts.csv", content.getvalue())
    assert response.status_code == 200
    page = parse_page(response.get_data(as_text=True))
    refused = [a for tag, a in page.elements if tag == "tr" and a.get("data-line")]
    assert [r["data-line"] for r in refused] == ["2", "4", "5"]  # lines of the file (1 is the header)
    report = " ".join(page.text_of("row-errors").split())
    assert "non-whitespace" in report and "id 'a1' is also on line 5" in report
    assert "2 texts scored" in " ".join(page.text_of("many-summary").split())
    assert "3 rows refused" in " ".join(page.text_of("many-summary").split())
    errors = [json.loads(line) for line in downloads_of(response)["errors"].splitlines()]
    assert [(e["file"], e["line"], e["field"], e.get("id")) for e in errors] == [
        ("texts.csv", 2, "id", "a1"),
        ("texts.csv", 4, "text", "a3"),
        ("texts.csv", 5, "id", "a1"),
    ]

    good = tmp_path / "good.csv"
    with open(good, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text"])
        writer.writerows([("3", rows[1][1]), rows[4]])
    out = tmp_path / "cli.jsonl"
    assert cli_main(["score", str(good), "--out", str(out)]) == 0
    cli_lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    page_lines = [json.loads(line) for line in downloads_of(response)["jsonl"].splitlines()]
    assert page_lines == cli_lines


def test_csv_download_escapes_formulas(client: FlaskClient) -> None:
    ids = ["=1+1", "+sum", "-x", "@cmd", "\tTab", "\rcr", "plain"]
    lines = "".join(json.dumps({"id": i, "text": f"NATO text number {n}"}) + "\n" for n, i in enumerate(ids))
    response = upload(client, "texts.jsonl", lines)
    assert response.status_code == 200
    table = list(csv.reader(io.StringIO(downloads_of(response)["csv"].removeprefix("\ufeff"))))
    assert table[0][:5] == ["id", "reference", "similarity", "related", "stance"]
    assert [row[0] for row in table[1:]] == ["'" + i for i in ids[:-1]] + ["plain"]
    for row in table[1:]:
        assert not any(cell.startswith(FORMULA_TRIGGERS) for cell in row)


def test_escape_formula_and_null_stances() -> None:
    for trigger in FORMULA_TRIGGERS:
        assert escape_formula(trigger + "x") == "'" + trigger + "x"
    assert escape_formula("x=1") == "x=1" and escape_formula("") == ""
    result = {"id": "n", "similarity": 0.1, "related": 0.2, "stance": None, "claims": [], "warnings": []}
    result["warnings"] = [{"code": "language_mismatch", "message": "not English"}]
    (header, row) = list(csv.reader(io.StringIO(results_csv([result], "ref", ["c1"]).removeprefix("\ufeff"))))
    assert header == csv_header(["c1"])
    assert row[4:9] == [""] * 5 and row[9] == "language_mismatch: not English" and row[10:] == ["", ""]


def test_upload_errors_name_the_file_and_line(client: FlaskClient) -> None:
    response = upload(client, "notes.txt", "hello")
    assert response.status_code == 422
    assert "notes.txt: cannot tell the format from the name" in response.get_data(as_text=True)
    response = upload(client, "nocolumn.csv", "foo\nbar\n")
    assert response.status_code == 422
    assert "nocolumn.csv: no &#39;text&#39; column" in response.get_data(as_text=True)
    # A bad row is reported with its line; the other rows are still scored.
    page = parse_page(upload(client, "bad.jsonl", '{"text": "ok NATO"}\nnot json\n').get_data(as_text=True))
    assert "not JSON" in page.text_of("row-errors") and "1 text scored" in page.text_of("many-summary")
    page = parse_page(upload(client, "latin.csv", "text\ncaf\xe9\n".encode("latin-1")).get_data(as_text=True))
    assert "not UTF-8: byte 0xe9" in page.text_of("row-errors")
    assert "0 texts scored" in page.text_of("many-summary")
    assert json.loads(page.text_of("many-downloads"))["errors"].startswith('{"file": "latin.csv", "line": 2')
    assert client.post("/page/batch", data={}, headers=HTMX).status_code == 422


def test_upload_over_the_body_limit_is_refused_whole(runtime: Runtime) -> None:
    client = create_app(
        Settings(rate_limit_enabled=False, max_body_bytes=2000), runtime=runtime
    ).test_client()
    response = upload(client, "big.csv", "text\n" + "NATO is here.\n" * 400)
    assert response.status_code == 413
    assert "larger than the limit of 2,000 bytes" in response.get_data(as_text=True)


def test_upload_over_the_row_limit_is_refused_whole(runtime: Runtime) -> None:
    client = create_app(Settings(rate_limit_enabled=False, page_max_rows=3), runtime=runtime).test_client()
    assert upload(client, "ok.csv", "text\nNATO one\nNATO two\nNATO three\n").status_code == 200
    response = upload(client, "four.csv", "text\nNATO one\nNATO two\nNATO three\nNATO four\n")
    assert response.status_code == 422
    assert "four.csv: 4 rows to score; the page scores at most 3" in response.get_data(as_text=True)


def test_upload_can_use_another_reference(tmp_path: Path) -> None:
    runtime = load_runtime(DEFAULT_MODEL_DIR, seeds_with_second_reference(tmp_path / "seeds"))
    client = create_app(Settings(rate_limit_enabled=False), runtime=runtime).test_client()
    response = upload(
        client,
        "t.csv",
        "text\nThe council voted for bike lanes on the river road.\n",
        reference=SECOND_REFERENCE_ID,
    )
    assert response.status_code == 200
    assert SECOND_REFERENCE_TITLE in response.get_data(as_text=True)
    assert '"reference": "riverside-bike-lanes"' in downloads_of(response)["jsonl"]
