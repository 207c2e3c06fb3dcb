"""Bounds on the work one scoring call may do: sentence and token caps, chunks, checkpoints.

A request's byte size says little about its cost: two megabytes of ``". "`` are a million
sentences. A scoring call works through its texts in chunks of at most
:data:`TEXTS_PER_CHUNK` texts and :data:`CHARS_PER_CHUNK` characters. The encoder counts
sentences (with at least one word) and word tokens per text, and in total over the call's
chunks (:class:`WorkCounter`), while it tokenises; a text over :class:`WorkLimits` is
refused with :class:`WorkLimitError` before any of its per-sentence arrays is built. A call
whose total passes a limit in a later chunk has had its earlier chunks scored, work within
the limits, before it is refused; the rest is only counted, so that the error names every
text over a limit. Per-sentence features are computed in chunks of whole texts of at most
:data:`SENTENCE_CHUNK_ROWS` sentences (plus one text), so their memory does not grow with
the batch. A ``checkpoint`` callable, called between stages, lets the caller stop the work
(a deadline, a client gone) by raising.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from service.domain.errors import DiscourseError

__all__ = [
    "CHARS_PER_CHUNK",
    "CHAR_CHUNK",
    "SENTENCE_CHUNK_ROWS",
    "TEXTS_PER_CHUNK",
    "Checkpoint",
    "LimitViolation",
    "WorkCounter",
    "WorkLimitError",
    "WorkLimits",
    "char_chunks",
    "no_checkpoint",
    "text_chunks",
]

Checkpoint = Callable[[], None]
"""Called between scoring stages; raises (any exception) to stop the work."""

SENTENCE_CHUNK_ROWS = 4096
"""Sentences per chunk of per-sentence work (a chunk holds whole texts; a larger text is one chunk)."""

TEXTS_PER_CHUNK = 32
"""Most texts a scoring call encodes and scores together (:meth:`Scorer.score` loops over chunks)."""

CHARS_PER_CHUNK = 128 * 1024
"""Most characters a scoring chunk holds (a longer text is a chunk by itself).

Python's allocator keeps a 1 MiB arena as long as one object in it lives, so a worker
keeps part of a request's peak of small objects for good; scoring a 2 MB request 128 K
characters at a time keeps that peak, and what stays, to one chunk's (docs/robustness.md).
Texts of 2,000 characters still go 32 at a time and texts of 8,000 characters 16 at a
time, at the CPU cost per text of larger batches (bench/cpu_rates.py)."""

CHAR_CHUNK = 256 * 1024
"""Characters per chunk of character n-gram hashing (a longer text is one chunk by itself)."""


def no_checkpoint() -> None:
    """The default checkpoint: never stops the work."""


@dataclass(frozen=True)
class WorkLimits:
    """Most sentences (with at least one word) and word tokens per text and per call."""

    max_sentences_per_text: int = 5_000
    max_tokens_per_text: int = 40_000
    max_sentences_per_request: int = 50_000
    max_tokens_per_request: int = 400_000


@dataclass(frozen=True)
class LimitViolation:
    """One limit exceeded: ``field`` is ``texts.<i>.text`` or ``texts``; ``limit`` the limit's name."""

    field: str
    limit: str
    message: str


class WorkLimitError(DiscourseError, ValueError):
    """A call exceeds :class:`WorkLimits`; ``violations`` name each limit and text."""

    def __init__(self, violations: list[LimitViolation]) -> None:
        super().__init__("; ".join(f"{v.field}: {v.message}" for v in violations))
        self.violations = tuple(violations)


class WorkCounter:
    """Counts sentences and tokens text by text and notes every limit exceeded.

    Once a limit is exceeded the caller stops storing per-sentence data
    (``over`` is True) and only keeps counting, so that the error can name every
    text over its own limits while memory stays bounded.
    """

    def __init__(self, limits: WorkLimits | None) -> None:
        self.limits = limits
        self.texts = 0
        self.sentences = 0
        self.tokens = 0
        self.violations: list[LimitViolation] = []
        self._request_noted = False

    @property
    def over(self) -> bool:
        """True once any limit is exceeded."""
        return bool(self.violations)

    def add_text(self, sentences: int, tokens: int) -> None:
        """Count the next text (texts are numbered from 0 in the order counted, across every
        call that shares this counter) with ``sentences`` sentences and ``tokens`` tokens."""
        index = self.texts
        self.texts += 1
        self.sentences += sentences
        self.tokens += tokens
        limits = self.limits
        if limits is None:
            return
        field = f"texts.{index}.text"
        if sentences > limits.max_sentences_per_text:
            self.violations.append(
                LimitViolation(
                    field,
                    "max_sentences_per_text",
                    f"At most {limits.max_sentences_per_text} sentences per text (this one has {sentences}).",
                )
            )
        if tokens > limits.max_tokens_per_text:
            self.violations.append(
                LimitViolation(
                    field,
                    "max_tokens_per_text",
                    f"At most {limits.max_tokens_per_text} words per text (this one has {tokens}).",
                )
            )
        if self._request_noted:
            return
        if self.sentences > limits.max_sentences_per_request:
            self._request_noted = True
            self.violations.append(
                LimitViolation(
                    "texts",
                    "max_sentences_per_request",
                    f"At most {limits.max_sentences_per_request} sentences per request "
                    f"(over it by text {index}).",
                )
            )
        elif self.tokens > limits.max_tokens_per_request:
            self._request_noted = True
            self.violations.append(
                LimitViolation(
                    "texts",
                    "max_tokens_per_request",
                    f"At most {limits.max_tokens_per_request} words per request (over it by text {index}).",
                )
            )

    def raise_if_over(self) -> None:
        """Raise :class:`WorkLimitError` if any limit was exceeded."""
        if self.violations:
            raise WorkLimitError(self.violations)


def text_chunks(
    owner: np.ndarray, n_texts: int, rows: int | None = None
) -> Iterator[tuple[int, int, int, int]]:
    """Chunks of whole texts: ``(first_text, end_text, first_sentence, end_sentence)``.

    ``owner`` (non-decreasing) gives each sentence's text. Each chunk ends at the
    first text boundary at or after ``rows`` sentences, so a text's sentences are
    never split between chunks and per-text reductions stay exactly as unchunked.
    ``rows`` defaults to :data:`SENTENCE_CHUNK_ROWS`.
    """
    rows = SENTENCE_CHUNK_ROWS if rows is None else rows
    starts = np.searchsorted(owner, np.arange(n_texts + 1))
    first = 0
    while first < n_texts:
        end = int(np.searchsorted(starts, starts[first] + rows, side="left"))
        end = min(max(end, first + 1), n_texts)
        yield first, end, int(starts[first]), int(starts[end])
        first = end


def char_chunks(
    lengths: list[int], chars: int | None = None, max_texts: int | None = None
) -> Iterator[tuple[int, int]]:
    """Ranges ``(start, end)`` of consecutive texts of at most ``chars`` characters together
    (a longer text is a range by itself) and at most ``max_texts`` texts (``None``: any number);
    ``chars`` defaults to :data:`CHAR_CHUNK`."""
    chars = CHAR_CHUNK if chars is None else chars
    start, total = 0, 0
    for i, length in enumerate(lengths):
        if i > start and (total + length > chars or i - start == max_texts):
            yield start, i
            start, total = i, 0
        total += length
    if start < len(lengths) or not lengths:
        yield start, len(lengths)
