"""Tokenising and sentence splitting of normalised text (see :mod:`service.domain.normalization`).

Every function here is linear in the length of its input: the patterns are
simple character classes with no nested quantifiers, so no input can make
them backtrack.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "WORD_PATTERN",
    "Span",
    "split_sentences",
    "tokenize",
]

# Word tokens: runs of two or more word characters, as scikit-learn's default
# token pattern, but computed here once so that offsets can be kept.
WORD_PATTERN = re.compile(r"(?u)\b\w\w+\b")

# A sentence ends at ., ! or ? (optionally followed by closing quotes or
# brackets, which stay with the sentence: group 1) and whitespace, or at a
# blank line.
_SENTENCE_END = re.compile(r"(?<=[.!?])([\"'\u201d\u2019)\]]*)\s+|\n\s*\n")


@dataclass(frozen=True, slots=True)
class Span:
    """A passage of a text: its characters ``text[start:end]``."""

    start: int
    end: int
    text: str


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens of ``text`` (two or more word characters)."""
    return WORD_PATTERN.findall(text.lower())


def split_sentences(text: str, max_chars: int = 600) -> list[Span]:
    """Split ``text`` into sentence spans with character offsets.

    Sentences longer than ``max_chars`` are cut at the last space before the
    limit, so that one run-on "sentence" (or a text with no punctuation)
    cannot make a passage as long as the whole text. Blank spans are dropped.
    """
    spans: list[Span] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        end = match.start() if match.group(1) is None else match.end(1)
        _append_span(spans, text, start, end, max_chars)
        start = match.end()
    _append_span(spans, text, start, len(text), max_chars)
    return spans


def _append_span(spans: list[Span], text: str, start: int, end: int, max_chars: int) -> None:
    while start < end:
        # Trim surrounding whitespace without copying the whole text.
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if start >= end:
            return
        if end - start <= max_chars:
            spans.append(Span(start, end, text[start:end]))
            return
        cut = text.rfind(" ", start + 1, start + max_chars)
        if cut <= start:
            cut = start + max_chars
        piece_end = cut
        while piece_end > start and text[piece_end - 1].isspace():
            piece_end -= 1
        spans.append(Span(start, piece_end, text[start:piece_end]))
        start = cut
