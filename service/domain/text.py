"""Tokenising and sentence splitting of normalised text (see :mod:`service.domain.normalization`).

Every function here is linear in the length of its input: the patterns are
simple character classes with no nested quantifiers, so no input can make
them backtrack.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import accumulate, compress
from operator import add, sub

__all__ = [
    "WORD_PATTERN",
    "Span",
    "sentence_pieces",
    "split_sentences",
    "tokenize",
]

# Word tokens: runs of two or more word characters, as scikit-learn's default
# token pattern, but computed here once so that offsets can be kept.
WORD_PATTERN = re.compile(r"(?u)\b\w\w+\b")

# A sentence ends at ., ! or ? (optionally followed by closing quotes or
# brackets, which stay with the sentence) and whitespace, or at a blank line.
# The whole separator is captured, for re.split (see sentence_pieces).
_SENTENCE_END = re.compile(r"((?<=[.!?])[\"'\u201d\u2019)\]]*\s+|\n\s*\n)")


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
    starts, ends, texts = sentence_pieces(text, max_chars)
    return list(map(Span, starts, ends, texts))


def sentence_pieces(text: str, max_chars: int = 600) -> tuple[list[int], list[int], list[str]]:
    """The sentences of :func:`split_sentences` as three lists: starts, ends and texts.

    The same spans, without an object per sentence: a text of a thousand empty
    sentences (``". . . ."``) costs a few C-level passes over its pieces rather
    than a Python call for each, and the encoder builds :class:`Span` objects
    only for the sentences it keeps (those with a word).
    """
    # split() keeps each separator (the captured group): the sentence keeps its closing quotes,
    # which are what is left of the separator without its whitespace ("" at a blank line).
    parts = _SENTENCE_END.split(text)
    bodies, separators = parts[0::2], parts[1::2]
    quotes = list(map(str.rstrip, separators))
    quotes.append("")  # after the last sentence end
    raws = list(map(add, bodies, quotes)) if any(quotes) else bodies
    raw_lengths = list(map(len, raws))
    raw_starts = list(accumulate(map(add, map(len, bodies), map(len, separators)), initial=0))
    stripped = list(map(str.strip, raws))
    lengths = list(map(len, stripped))
    if max(lengths) > max_chars:
        return _cut_pieces(text, raw_starts, raw_lengths, stripped, max_chars)
    # Every step is a C-level pass over all pieces: no Python call per sentence.
    starts = list(map(add, raw_starts, map(sub, raw_lengths, map(len, map(str.lstrip, raws)))))
    ends = list(map(add, starts, lengths))
    return list(compress(starts, lengths)), list(compress(ends, lengths)), list(compress(stripped, lengths))


def _cut_pieces(
    text: str, raw_starts: list[int], raw_lengths: list[int], stripped: list[str], max_chars: int
) -> tuple[list[int], list[int], list[str]]:
    """:func:`sentence_pieces` of a text with a sentence longer than ``max_chars``."""
    spans: list[Span] = []
    for start, length, piece in zip(raw_starts, raw_lengths, stripped, strict=False):
        if piece:
            _append_span(spans, text, start, start + length, max_chars)
    return [s.start for s in spans], [s.end for s in spans], [s.text for s in spans]


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
