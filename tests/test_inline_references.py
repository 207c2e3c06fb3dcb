"""References sent with POST /v1/score: the object form, the sha256 id, the cache, errors, metrics."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from service.config import Settings
from service.domain.encoding import TextEncoder
from service.domain.reference_cache import ReferenceCache, estimated_bytes, prepare_inline
from service.domain.references import MAX_CLAIMS
from service.http.app import create_app
from service.loaders.runtime import Runtime
from tests.helpers import tiny_encoder_config
from tests.test_observability import capture_log

ON_TOPIC = "NATO expansion is a threat to Russia's security. The Euro-Atlantic security order has failed."
MARKER = "Zanzibarquetzal"  # a word that appears nowhere else: it must never reach the log
SHORT_REFERENCE = {
    "title": "Lake levels",
    "text": f"The lake near {MARKER} fell by two metres this summer. Farmers blamed the long drought. "
    "Engineers said the new dam upstream held back most of the water. The regional government "
    "promised to release more water in the autumn.",
}


def make_client(runtime: Runtime, **settings: object) -> FlaskClient:
    app = create_app(Settings(rate_limit_enabled=False, **settings), runtime=runtime)
    app.config["TESTING"] = True
    return app.test_client()


@pytest.fixture
def client(runtime: Runtime) -> FlaskClient:
    return make_client(runtime)


def score(client: FlaskClient, reference: object, texts: list[str] | None = None, **extra: object):
    body = {"texts": [{"text": t} for t in (texts or [ON_TOPIC])], **extra}
    if reference is not None:
        body["reference"] = reference
    return client.post("/v1/score", json=body)


def metric(client: FlaskClient, name: str) -> float:
    for line in client.get("/metrics").get_data(as_text=True).splitlines():
        if line.rsplit(" ", 1)[0] == name:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_the_seed_sent_inline_scores_as_the_seed_file(client: FlaskClient, runtime: Runtime) -> None:
    seed = runtime.scorer.reference().reference
    inline = {
        "title": seed.title,
        "text": seed.body,
        "claims": [c.text for c in seed.claims],
        "language": "en",
    }
    texts = [
        ON_TOPIC,
        "Roast the tomatoes with garlic and basil for forty minutes.",
        "NATO threatens Russia.",
    ]
    from_file = score(client, None, texts, explain=True).get_json()
    sent = score(client, inline, texts, explain=True).get_json()
    assert sent["reference"]["id"].startswith("sha256:")
    assert sent["reference"]["claims_origin"] == "stated in the request"
    assert [c["id"] for c in sent["reference"]["claims"]] == [
        f"claim-{k + 1}" for k in range(len(seed.claims))
    ]
    for a, b in zip(from_file["results"], sent["results"], strict=True):
        assert (
            a["similarity"] == b["similarity"] and a["stance"] == b["stance"] and a["related"] == b["related"]
        )
        assert [c["stance"] for c in a["claims"]] == [c["stance"] for c in b["claims"]]
        assert a["evidence"] == b["evidence"]


def test_a_sent_reference_is_cached_under_its_content_id(client: FlaskClient) -> None:
    first = score(client, SHORT_REFERENCE, ["The dam upstream held back the water, engineers said."])
    assert first.status_code == 200, first.get_json()
    reference = first.get_json()["reference"]
    assert reference["id"].startswith("sha256:") and len(reference["id"]) == 71
    assert reference["language"] == "en"  # identified
    assert metric(client, 'discourse_reference_cache_lookups_total{result="miss"}') == 1
    again = score(client, reference["id"], ["The dam upstream held back the water, engineers said."])
    assert again.status_code == 200
    assert again.get_json() == first.get_json()
    # The same content sent again is a hit too, and gets the same id.
    resent = score(client, SHORT_REFERENCE, ["The dam upstream held back the water, engineers said."])
    assert resent.get_json()["reference"]["id"] == reference["id"]
    assert metric(client, 'discourse_reference_cache_lookups_total{result="hit"}') == 2
    assert metric(client, "discourse_reference_cache_entries") == 1
    assert metric(client, "discourse_reference_cache_bytes") > 10_000


def test_derived_claims_are_full_sentences_of_the_sent_text(client: FlaskClient) -> None:
    reference = score(client, SHORT_REFERENCE).get_json()["reference"]
    assert reference["claims_origin"].startswith("derived: ")
    text = SHORT_REFERENCE["text"]
    assert reference["claims"]
    for claim in reference["claims"]:
        assert text[claim["source_start"] : claim["source_end"]] == claim["text"]


def test_stated_claims_found_in_the_text_get_offsets(client: FlaskClient) -> None:
    sent = {**SHORT_REFERENCE, "claims": ["Farmers blamed the long drought.", "The dam is to blame."]}
    claims = score(client, sent).get_json()["reference"]["claims"]
    start = SHORT_REFERENCE["text"].index("Farmers")
    assert claims[0] == {
        "id": "claim-1",
        "text": "Farmers blamed the long drought.",
        "source_start": start,
        "source_end": start + len("Farmers blamed the long drought."),
    }
    assert claims[1]["source_start"] is None


def test_an_html_reference_is_normalised_like_texts_and_offsets_index_it(client: FlaskClient) -> None:
    html = "<article><h1>Lake</h1><p>The lake fell by two metres this summer, farmers said.</p>" + (
        "<p>Engineers said the new dam upstream held back most of the water in the valley.</p></article>"
    )
    as_html = score(client, {"title": "Lake", "text": html, "format": "html"}, explain=True).get_json()
    reference = as_html["reference"]
    for claim in reference["claims"]:
        assert "<" not in claim["text"]
        assert html[claim["source_start"] : claim["source_end"]] == claim["text"]
    for match in as_html["results"][0]["evidence"]["passages"]:
        assert html[match["reference_start"] : match["reference_end"]] == match["reference_passage"]


@pytest.mark.parametrize(
    ("reference", "field"),
    [
        ({"title": "T", "text": "   "}, "reference.text"),
        ({"title": "T", "text": "... !!! ???"}, "reference.text"),
        ({"title": "T"}, "reference.text"),
        ({"text": "Some words here."}, "reference.title"),
        ({"title": " ", "text": "Some words here."}, "reference.title"),
        (
            {"title": "T", "text": "Some words here.", "claims": ["A claim.", "Another.", "!?", "x"]},
            "reference.claims.2",
        ),
        ({"title": "T", "text": "Some words here.", "claims": ["A claim.", "  "]}, "reference.claims.1"),
        (
            {"title": "T", "text": "Some words here.", "claims": ["A claim."] * (MAX_CLAIMS + 1)},
            "reference.claims",
        ),
        ({"title": "T", "text": "Some words here.", "claims": []}, "reference.claims"),
        ({"title": "T", "text": "Some words here.", "author": "me"}, "reference.author"),
        ({"title": "T", "text": "Some words here.", "format": "pdf"}, "reference.format"),
        ({"title": "T", "text": "Some words here.", "language": "English"}, "reference.language"),
        (["not", "an", "object"], "reference"),
        (42, "reference"),
        ("", "reference"),
    ],
)
def test_every_unusable_reference_is_a_problem_naming_the_field(
    client: FlaskClient, reference: object, field: str
) -> None:
    response = score(client, reference)
    assert response.status_code == 422, response.get_json()
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["type"] == "/problems/validation-error"
    assert field in [e["field"] for e in problem["errors"]], problem["errors"]


def test_a_reference_text_over_the_limit_is_refused_whole(runtime: Runtime) -> None:
    client = make_client(runtime, max_reference_chars=100)
    response = score(client, {"title": "T", "text": "word " * 30})
    assert response.status_code == 422
    [error] = response.get_json()["errors"]
    assert error["field"] == "reference.text" and "150" in error["message"]


def test_an_unknown_or_evicted_content_id_asks_to_send_the_text_again(runtime: Runtime) -> None:
    client = make_client(runtime, reference_cache_entries=2)
    ids = []
    for n in range(3):
        sent = {"title": f"Lake {n}", "text": SHORT_REFERENCE["text"]}
        ids.append(score(client, sent).get_json()["reference"]["id"])
    assert len(set(ids)) == 3
    assert metric(client, "discourse_reference_cache_evictions_total") == 1
    evicted = score(client, ids[0])
    assert evicted.status_code == 404
    assert evicted.mimetype == "application/problem+json"
    problem = evicted.get_json()
    assert problem["type"] == "/problems/reference-not-cached"
    assert "send the reference" in problem["detail"]
    assert problem["errors"][0]["field"] == "reference"
    assert score(client, ids[2]).status_code == 200
    unknown = score(client, "sha256:" + "0" * 64)
    assert unknown.get_json()["type"] == "/problems/reference-not-cached"


def test_a_sent_reference_never_reaches_the_log(client: FlaskClient) -> None:
    stream = capture_log()
    score(client, SHORT_REFERENCE)
    score(client, {**SHORT_REFERENCE, "claims": [f"{MARKER} fell."]})
    score(client, {"title": MARKER, "text": "!!!"})  # an error too
    written = stream.getvalue()
    assert written.count('"reference": "inline"') == 2
    assert MARKER not in written


# --- the cache itself, without Flask --------------------------------------------------------------


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return TextEncoder.fit(
        [SHORT_REFERENCE["text"], "A shark attacked a surfer near the beach."], config=tiny_encoder_config()
    )


def sent(encoder: TextEncoder, cache: ReferenceCache, n: int):
    return prepare_inline(cache, encoder, f"Lake {n}", SHORT_REFERENCE["text"], language="en")


def test_the_cache_evicts_the_least_recently_used_first(encoder: TextEncoder) -> None:
    cache = ReferenceCache(max_entries=2, max_bytes=10**9)
    a, event = sent(encoder, cache, 1)
    assert not event.hit and event.entries == 1
    b, _ = sent(encoder, cache, 2)
    assert sent(encoder, cache, 1)[1].hit  # a is now the most recently used
    c, event = sent(encoder, cache, 3)
    assert event.evicted == 1
    assert a.id in cache and c.id in cache and b.id not in cache
    assert (cache.hits, cache.misses, cache.evictions) == (1, 3, 1)


def test_the_cache_is_bounded_in_bytes(encoder: TextEncoder) -> None:
    one, _ = sent(encoder, ReferenceCache(10, 10**9), 1)
    size = estimated_bytes(one)
    assert size > len(SHORT_REFERENCE["text"])
    cache = ReferenceCache(max_entries=10, max_bytes=int(size * 2.5))
    for n in range(5):
        sent(encoder, cache, n)
    assert len(cache) == 2 and cache.bytes <= cache.max_bytes
    assert cache.evictions == 3
    # One reference larger than the whole cache is used but not kept.
    tiny = ReferenceCache(max_entries=10, max_bytes=100)
    prepared, event = sent(encoder, tiny, 1)
    assert prepared.claims and len(tiny) == 0 and not event.hit


def test_another_spelling_of_the_same_content_is_prepared_for_its_own_offsets(encoder: TextEncoder) -> None:
    cache = ReferenceCache(10, 10**9)
    text = "The lake fell by two metres this summer, farmers said in the valley."
    plain, _ = prepare_inline(cache, encoder, "Lake", text, language="en")
    assert cache.get(plain.id, same_source=(text, "text")) is plain
    assert cache.get(plain.id, same_source=(text, "markdown")) is None
    assert cache.get(plain.id, same_source=(text + " ", "text")) is None


def test_a_sent_reference_in_a_language_the_model_does_not_read_gets_no_stance(client: FlaskClient) -> None:
    russian = {
        "title": "Плотина и озеро",
        "text": "Озеро Верин этим летом обмелело на два метра. Главная причина обмеления — новая плотина "
        "выше по течению. Инженеры выяснили, что плотина задержала большую часть весеннего паводка.",
    }
    text = "Инженеры считают, что новая плотина задержала весенний паводок и озеро обмелело."
    body = score(client, russian, [text]).get_json()
    assert body["reference"]["language"] == "ru"
    [result] = body["results"]
    assert result["reference_language"] == "ru"
    assert result["stance"] is None and result["related"] is None
    assert "stance_not_modelled" in [w["code"] for w in result["warnings"]]
    assert result["similarity"] > 0.1
