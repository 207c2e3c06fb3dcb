"""One text, one score: what users paste, scored with the shipped model against the seed (no Flask).

Each case of issue 12's table is here with its right answer: the same visible
words encoded differently score the same, markup is read as markup, keyword
lists do not pass for an article's echo, and a text in another language gets
no stance guess.
"""

from __future__ import annotations

import dataclasses

import pytest

from service.domain.normalization import normalize
from service.domain.scorer import Scorer, TextScore
from service.domain.text import split_sentences
from service.loaders.runtime import Runtime

AGREE = (
    "NATO expansion threatened the security of Russia, and the post-Cold War Euro-Atlantic security "
    "order has failed. Russia and China are right to start building a new Eurasian security architecture."
)
LIGATURES = (
    "The first conflict in Europe since the Cold War showed that the old order is not effective. A "
    "specific and final answer needs a different, Eurasian security architecture."
)
QUOTED = (
    "\"NATO is not a threat,\" said the minister. \"Russia's claims aren't true, and Moscow's Eurasian "
    "plan won't work.\""
)
ADVERT = (
    "Our new teak garden furniture collection has arrived. Weatherproof chairs, tables and loungers for "
    "your patio, made to last for decades and easy to clean. Order before Friday for free delivery "
    "anywhere in the country, and ask about our cushions in twelve colours. "
    "Tags: NATO, Russia, China, Eurasian security architecture, Euro-Atlantic."
)
RUSSIAN = (
    "Россия всё чаще рассматривает расширение НАТО как угрозу своей безопасности, и вместе с Китаем "
    "она может начать строить новую архитектуру евразийской безопасности."
)


@pytest.fixture(scope="module")
def scorer(runtime: Runtime) -> Scorer:
    return runtime.scorer


def scores_of(result: TextScore) -> dict:
    """Everything a client reads about a text's stance and similarity (not evidence or language)."""
    document = dataclasses.asdict(result)
    return {key: document[key] for key in ("similarity", "related", "stance", "claims")}


def assert_same_scores(scorer: Scorer, plain: str, variant: str, variant_format: str = "text") -> TextScore:
    plain_result, variant_result = scorer.score([plain, variant], formats=["text", variant_format])
    assert scores_of(variant_result) == scores_of(plain_result)
    return plain_result


@pytest.mark.parametrize(
    ("plain", "variant"),
    [
        pytest.param(
            AGREE,
            AGREE.replace("expansion", "ex\u00adpan\u00adsion")
            .replace("security", "se\u00adcu\u00adri\u00adty")
            .replace("architecture", "archi\u00adtec\u00adture"),
            id="soft hyphens",
        ),
        pytest.param(
            LIGATURES,
            LIGATURES.replace("fi", "\ufb01").replace("fl", "\ufb02").replace("ff", "\ufb00"),
            id="PDF ligatures",
        ),
        pytest.param(
            AGREE,
            "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else "\u3000" if c == " " else c for c in AGREE),
            id="full-width letters",
        ),
        pytest.param(
            QUOTED,
            QUOTED.replace('"NATO', "\u201cNATO")
            .replace('threat,"', "threat,\u201d")
            .replace('"Russia', "\u201cRussia")
            .replace("'", "\u2019")
            .replace('work."', "work.\u201d"),
            id="typographic quotes and apostrophes",
        ),
        pytest.param(
            AGREE, AGREE.replace("security", "secur\u200bity").replace(" ", "\u00a0"), id="invisible"
        ),
        pytest.param(
            AGREE,
            AGREE.replace("NATO", "N\u0410\u0422\u041e").replace("Russia", "Ru\u0455\u0455i\u0430"),
            id="Cyrillic look-alikes",
        ),
        pytest.param(AGREE, AGREE + " https://example.org/nato-russia-china?ref=feed", id="a link"),
    ],
)
def test_the_same_visible_text_gets_the_same_scores(scorer: Scorer, plain: str, variant: str) -> None:
    assert variant != plain
    result = assert_same_scores(scorer, plain, variant)
    assert result.similarity > 0.1  # on topic: the comparison is not between two zeros


def test_full_width_agreeing_text_is_english_and_agrees(scorer: Scorer) -> None:
    width = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in AGREE)
    (result,) = scorer.score([width])
    assert result.language is not None and result.language.code == "en"
    assert result.stance is not None and result.stance.label == "agree"
    assert "many_unknown_words" not in [w.code for w in result.warnings]


def test_html_read_as_markup_scores_as_its_text(scorer: Scorer) -> None:
    html = (
        '<p>The <b>expansion</b> of <a href="https://example.org/nato">NATO</a> threatened the security '
        "of Russia, and the post-Cold War Euro-Atlantic security order has failed.</p>"
        "<p>Russia and China are right to start building a new Eurasian security architecture.</p>"
    )
    plain = (
        "The expansion of NATO threatened the security of Russia, and the post-Cold War Euro-Atlantic "
        "security order has failed.\n\nRussia and China are right to start building a new Eurasian "
        "security architecture."
    )
    assert_same_scores(scorer, plain, html, "html")
    # Sent as plain text, the markup is flagged rather than silently read as words.
    (as_text,) = scorer.score([html])
    assert "markup_detected" in [w.code for w in as_text.warnings]
    # Evidence offsets index the HTML as sent.
    (explained,) = scorer.score([html], formats="html", explain=True)
    assert explained.evidence is not None and explained.evidence.passages
    sentences = {s.text for s in split_sentences(normalize(plain).text)}
    for passage in explained.evidence.passages:
        # The passage of the HTML as sent, read as HTML, is one of the sentences.
        assert normalize(html[passage.text_start : passage.text_end], "html").text.strip() in sentences


def test_a_keyword_tag_line_does_not_make_an_advert_an_echo_of_the_article(scorer: Scorer) -> None:
    advert, repeated, agreeing = scorer.score(
        [
            ADVERT,
            ADVERT + " " + " ".join(["Tags: NATO, Russia, China, Eurasian security architecture."] * 20),
            AGREE,
        ]
    )
    assert agreeing.stance is not None
    for result in (advert, repeated):
        assert "keyword_list" in [w.code for w in result.warnings]
        # Far below a text that argues the thesis, in similarity and in the agree probability.
        assert result.similarity < 0.25 * agreeing.similarity
        assert result.stance is not None
        assert result.stance.scores["agree"] < 0.5 * agreeing.stance.scores["agree"]
    # Repeating the tag line twenty times buys nothing.
    assert repeated.similarity <= advert.similarity + 0.01


@pytest.mark.parametrize(
    "stuffed",
    [
        "#NATO #Russia #China #Eurasia #security #architecture #EuroAtlantic #multipolar #BRICS #SCO",
        "NATO Russia China Eurasian security architecture Euro-Atlantic multipolar world order Valdai BRICS",
        "Keywords: NATO; Russia; China; Eurasian security architecture; Euro-Atlantic security; Valdai.",
    ],
)
def test_a_text_that_is_only_keywords_is_flagged_and_scored_low(scorer: Scorer, stuffed: str) -> None:
    result, agreeing = scorer.score([stuffed, AGREE])
    assert "keyword_list" in [w.code for w in result.warnings]
    assert result.similarity < 0.5 * agreeing.similarity


def test_real_agreeing_and_disagreeing_texts_are_not_taken_for_keyword_lists(scorer: Scorer) -> None:
    disagree = (
        "NATO is not a threat to Russia. The alliance is purely defensive and has never attacked Russia; "
        "the claim that its enlargement endangers Moscow is propaganda, and a Russia-China security bloc "
        "will not replace the Euro-Atlantic order."
    )
    for result in scorer.score([AGREE, disagree, ADVERT.split(" Tags:")[0]]):
        assert "keyword_list" not in [w.code for w in result.warnings]


def test_names_and_acronyms_are_english_with_a_rare_words_warning_at_most(scorer: Scorer) -> None:
    text = (
        "The SCO, BRICS, CSTO and EAEU summit in Astana endorsed a multipolar Eurasian security "
        "architecture; Lavrov, Wang Yi and Tokayev signed the communique."
    )
    (result,) = scorer.score([text])
    assert result.language is not None and result.language.code == "en"
    assert result.stance is not None
    codes = [w.code for w in result.warnings]
    assert "language_mismatch" not in codes
    assert set(codes) <= {"many_unknown_words"}


def test_a_text_in_another_language_gets_no_stance_guess(scorer: Scorer) -> None:
    (result,) = scorer.score([RUSSIAN])
    assert result.language is not None and result.language.code == "ru" and result.language.probability > 0.9
    assert result.stance is None and result.related is None
    assert all(claim.stance is None and claim.related is None for claim in result.claims)
    warning = result.warnings[0]
    assert warning.code == "language_mismatch" and "ru" in warning.message and "en" in warning.message
    assert 0.0 <= result.similarity <= 1.0


def test_a_text_that_is_mostly_links_is_flagged(scorer: Scorer) -> None:
    text = "See https://example.org/nato/expansion-russia-security-2024 and https://example.org/china-eurasia"
    (result,) = scorer.score([text])
    assert "mostly_links" in [w.code for w in result.warnings]
    assert "no_words" not in [w.code for w in result.warnings]  # "See" and "and" remain
