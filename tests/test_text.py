"""Text handling: cleaning, tokenising and sentence splitting with offsets; the domain needs no Flask."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.config import PROJECT_ROOT
from service.domain.text import Span, _append_span, sentence_pieces, split_sentences, tokenize


def assert_spans_point_into(text: str, spans: list[Span]) -> None:
    """Every span's text is the slice of ``text`` it names, and spans are ordered and disjoint."""
    previous_end = 0
    for span in spans:
        assert text[span.start : span.end] == span.text
        assert span.text == span.text.strip() and span.text
        assert span.start >= previous_end
        previous_end = span.end


def test_importing_the_domain_does_not_import_flask() -> None:
    code = (
        "import sys\n"
        "import service.domain.scorer, service.domain.evidence, service.domain.references\n"
        "import service.domain.pair_features, service.domain.stance, service.domain.text\n"
        "import service.loaders.artifacts, service.loaders.reference_files, service.loaders.runtime\n"
        "web = ('flask', 'werkzeug', 'service.http')\n"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in web or m.startswith(web))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_sentences_carry_their_offsets() -> None:
    text = 'First claim here. "Second one?" she asked!  Third (quoted)!\n\nFourth paragraph without end'
    spans = split_sentences(text)
    assert [s.text for s in spans] == [
        "First claim here.",
        '"Second one?"',
        "she asked!",
        "Third (quoted)!",
        "Fourth paragraph without end",
    ]
    assert_spans_point_into(text, spans)


def test_closing_quotes_stay_with_their_sentence() -> None:
    text = "He said \u201cit is over.\u201d Then he left."
    spans = split_sentences(text)
    assert [s.text for s in spans] == ["He said \u201cit is over.\u201d", "Then he left."]
    assert_spans_point_into(text, spans)


def test_blank_lines_end_a_sentence_and_blank_spans_are_dropped() -> None:
    text = "\n\n  A heading without a full stop\n\n\n   \n\nBody text follows.  \n"
    spans = split_sentences(text)
    assert [s.text for s in spans] == ["A heading without a full stop", "Body text follows."]
    assert_spans_point_into(text, spans)


@pytest.mark.parametrize("text", ["", "   ", "\n\n\t\n"])
def test_empty_or_blank_text_has_no_sentences(text: str) -> None:
    assert split_sentences(text) == []


def test_long_run_on_sentences_are_cut_at_a_space_before_the_limit() -> None:
    text = " ".join(f"word{i}" for i in range(300))  # about 2 000 characters, no punctuation
    spans = split_sentences(text, max_chars=100)
    assert len(spans) > 15
    assert all(len(s.text) <= 100 for s in spans)
    assert_spans_point_into(text, spans)
    # Cut at spaces: no word is split, and all words survive in order.
    assert " ".join(s.text for s in spans) == text


def test_a_long_sentence_without_spaces_is_cut_at_the_limit() -> None:
    text = "x" * 250
    spans = split_sentences(text, max_chars=100)
    assert [len(s.text) for s in spans] == [100, 100, 50]
    assert_spans_point_into(text, spans)


def test_offsets_are_code_points_with_non_ascii_text() -> None:
    text = "Émigrés say 🙂 it’s true. Второе предложение! 第三句话。 End."
    spans = split_sentences(text)
    assert spans[0].text == "Émigrés say 🙂 it’s true."
    assert spans[1].text == "Второе предложение!"
    assert_spans_point_into(text, spans)


def test_tokenize_lowercases_and_keeps_words_of_two_or_more_characters() -> None:
    assert tokenize("NATO's expansion didn't stop: a 2024 plan, I think.") == [
        "nato",
        "expansion",
        "didn",
        "stop",
        "2024",
        "plan",
        "think",
    ]


# The sentence rule read literally, one separator at a time (the shipped splitter works over all
# pieces at once so that a text of a thousand empty sentences costs no Python call each).
_END = re.compile(r"(?<=[.!?])([\"'\u201d\u2019)\]]*)\s+|\n\s*\n")


def _sentences_one_by_one(text: str, max_chars: int) -> list[tuple[int, int, str]]:
    """The separators found one at a time, each sentence trimmed and (if long) cut by the
    shipped cut rule (its own tests are above)."""
    spans: list[Span] = []
    start = 0
    for match in _END.finditer(text):
        _append_span(spans, text, start, match.start() if match.group(1) is None else match.end(1), max_chars)
        start = match.end()
    _append_span(spans, text, start, len(text), max_chars)
    return [(s.start, s.end, s.text) for s in spans]


_PIECES = st.sampled_from(
    ["ab", "x", "Word", "İx", " ", "  ", "\t", "\n", "\n\n", " \n \n", ".", "!", "?", "...", '"', "'", ")",
     "]", "\u201d", "\u2019", "\u00a0", "\u2028", "\u3000", "é", "ǅ", "z" * 25]
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(_PIECES, max_size=80).map("".join), st.sampled_from([1, 4, 12, 40, 600]))
def test_sentence_splitting_follows_the_rule_read_one_separator_at_a_time(text: str, max_chars: int) -> None:
    expected = _sentences_one_by_one(text, max_chars)
    starts, ends, texts = sentence_pieces(text, max_chars)
    assert list(zip(starts, ends, texts, strict=True)) == expected
    assert [(s.start, s.end, s.text) for s in split_sentences(text, max_chars)] == expected


def test_a_thousand_empty_sentences_are_a_thousand_pieces() -> None:
    """Wordless sentences stay sentences (their characters are hashed), each with its offsets."""
    text = "ab. " + ". " * 1000 + "cd ef!"
    starts, ends, texts = sentence_pieces(text)
    assert len(texts) == 1002
    assert texts[0] == "ab." and texts[-1] == "cd ef!" and set(texts[1:-1]) == {"."}
    assert all(text[s:e] == t for s, e, t in zip(starts, ends, texts, strict=True))
