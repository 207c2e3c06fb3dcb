"""References sent with a request, prepared once and kept per process, least recently used first out.

A client sends a reference (title, text, optional claims, language, format) with
``POST /v1/score``; preparing it (normalising, encoding, deriving claims) costs a
few milliseconds per 10,000 characters, so the prepared reference is kept under its
content id (``sha256:<hex>``, :func:`service.domain.references.content_id`) and later
requests may name it by that id alone. The cache is bounded twice: at most
``max_entries`` references and at most ``max_bytes`` of their estimated memory,
whichever comes first; the least recently used ones are evicted.

Why our own and not ``cachetools``: cachetools' ``LRUCache`` bounds one measure
(entries or sizes through ``getsizeof``) and is not thread-safe; this one bounds both
under one lock, counts hits, misses and evictions, and is about thirty lines.

Inline references are never written anywhere: the cache lives in the process's
memory only.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

import numpy as np
import scipy.sparse as sp

from service.domain.encoding import TextEncoder
from service.domain.errors import DiscourseError
from service.domain.normalization import normalize
from service.domain.references import Claim, PreparedReference, Reference, content_id, prepare_reference
from service.domain.text import Span
from service.domain.vectors import EncodedTexts


class ReferenceNotCachedError(DiscourseError, KeyError):
    """A ``sha256:`` reference id that is not (or no longer) in this process's cache."""

    def __init__(self, reference_id: str) -> None:
        super().__init__(reference_id)
        self.reference_id = reference_id

    def __str__(self) -> str:
        return (
            f"reference {self.reference_id!r} is not in the cache (never sent to this worker, or "
            "evicted); send the reference's title and text again"
        )


@dataclass(frozen=True)
class CacheEvent:
    """What one lookup did: ``hit``, how many entries it evicted, and the cache's size after it."""

    hit: bool
    evicted: int
    entries: int
    bytes: int


class ReferenceCache:
    """A thread-safe LRU cache of prepared references, bounded in entries and in bytes.

    Parameters
    ----------
    max_entries:
        Most references kept (at least 1).
    max_bytes:
        Most estimated bytes kept (:func:`estimated_bytes`); a reference larger than
        this alone is still used for its request but not kept.
    """

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("a reference cache needs max_entries >= 1 and max_bytes >= 1")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, tuple[PreparedReference, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def get(self, reference_id: str, same_source: tuple[str, str] | None = None) -> PreparedReference | None:
        """The cached reference with ``reference_id`` (now the most recently used), or ``None``.

        With ``same_source`` = ``(text, format)``, a cached reference sent with another spelling
        of the same normalised content counts as absent: its offsets index the other spelling.
        Counts a hit or a miss.
        """
        with self._lock:
            found = self._entries.get(reference_id)
            if found is not None and same_source is not None:
                reference = found[0].reference
                if (reference.body, reference.format) != same_source:
                    found = None
            if found is None:
                self.misses += 1
                return None
            self._entries.move_to_end(reference_id)
            self.hits += 1
            return found[0]

    def put(self, prepared: PreparedReference) -> int:
        """Keep ``prepared`` under its id as the most recently used; return how many were evicted."""
        size = estimated_bytes(prepared)
        evicted = 0
        with self._lock:
            old = self._entries.pop(prepared.id, None)
            if old is not None:
                self._bytes -= old[1]
            if size > self.max_bytes:
                return 0
            while self._entries and (
                len(self._entries) >= self.max_entries or self._bytes + size > self.max_bytes
            ):
                _, (_, freed) = self._entries.popitem(last=False)
                self._bytes -= freed
                evicted += 1
            self._entries[prepared.id] = (prepared, size)
            self._bytes += size
            self.evictions += evicted
        return evicted

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, reference_id: object) -> bool:
        return reference_id in self._entries

    @property
    def bytes(self) -> int:
        """Estimated bytes of the cached references."""
        return self._bytes

    def clear(self) -> None:
        """Forget every reference (the counters stay)."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0


def estimated_bytes(prepared: PreparedReference) -> int:
    """Estimated memory of a prepared reference, in bytes: its arrays, sparse matrices and strings.

    Counts every numpy array (``nbytes``) and sparse matrix (data, indices, pointers) of its
    encodings and their cached product factors, every string (the text as sent and normalised,
    sentences, passages, claims) and the span objects; small objects' headers are left out, so
    it is a slight underestimate (``bench/reference_cache.py`` compares it with a worker's
    resident memory at a full cache). Linear in the number of sentences, no deep walk.
    """
    total = sum(_encoded_bytes(e) for e in (prepared.body, prepared.claim_vectors))
    total += _spans_bytes(prepared.passages)
    reference = prepared.reference
    total += sys.getsizeof(reference.body) + sys.getsizeof(reference.title)
    total += sum(sys.getsizeof(c.text) + _SPAN_BYTES for c in prepared.claims)
    return total


_SPAN_BYTES = sys.getsizeof(Span(0, 0, ""))


def _spans_bytes(spans: Sequence[Span]) -> int:
    return sys.getsizeof(spans) + sum(_SPAN_BYTES + sys.getsizeof(span.text) for span in spans)


def _array_bytes(value: object) -> int:
    if isinstance(value, np.ndarray):
        return value.nbytes
    if sp.issparse(value):
        return sum(
            getattr(value, name).nbytes for name in ("data", "indices", "indptr") if hasattr(value, name)
        )
    return 0


def _encoded_bytes(encoded: EncodedTexts) -> int:
    total = 0
    for f in fields(encoded):
        value = getattr(encoded, f.name)
        if f.name == "normalized":
            for text in value:
                total += sys.getsizeof(text.source) + sys.getsizeof(text.text)
                total += _array_bytes(text.starts) + _array_bytes(text.ends)
        elif f.name == "sentences":
            total += sum(_spans_bytes(spans) for spans in value)
        elif f.name == "_factors":
            for factor in value.values():
                total += sum(_array_bytes(getattr(factor, g.name)) for g in fields(factor))
        else:
            total += _array_bytes(value)
    return total


INLINE_CLAIMS_ORIGIN = "stated in the request"


def prepare_inline(
    cache: ReferenceCache,
    encoder: TextEncoder,
    title: str,
    text: str,
    claims: Sequence[str] | None = None,
    language: str | None = None,
    format: str = "text",
    identify: Callable[[str], str | None] | None = None,
) -> tuple[PreparedReference, CacheEvent]:
    """The prepared form of a reference sent with a request, from the cache or made now (and kept).

    ``text`` is read in ``format`` through the one normalisation; stated ``claims`` get ids
    ``claim-1``, ``claim-2``, … and, when one is found word for word in ``text``, its offsets;
    without claims, claims are derived (:func:`service.domain.references.derive_claims`).
    ``language`` defaults to ``identify(normalised text)`` (``und`` when it gives none).

    Raises :class:`service.domain.references.ReferenceContentError` (``text`` or
    ``claims.<i>``) when the text or a claim has no words.
    """
    title = title.strip()
    normalized = normalize(text, format)
    stated = [c.strip() for c in claims] if claims else None
    reference_id = content_id(title, normalized.text, stated, language)
    cached = cache.get(reference_id, same_source=(text, format))
    if cached is not None:
        return cached, CacheEvent(True, 0, len(cache), cache.bytes)
    if language is None:
        language = (identify(normalized.text) if identify is not None else None) or "und"
    reference = Reference(
        id=reference_id,
        title=title,
        body=text,
        claims=tuple(
            Claim(f"claim-{k + 1}", claim, _quoted_span(text, claim)) for k, claim in enumerate(stated or ())
        ),
        metadata={"language": language},
        claims_origin=INLINE_CLAIMS_ORIGIN,
        format=format,
    )
    prepared = prepare_reference(reference, encoder, normalized=normalized)
    warm(prepared)
    evicted = cache.put(prepared)
    return prepared, CacheEvent(False, evicted, len(cache), cache.bytes)


def warm(prepared: PreparedReference) -> None:
    """Build the product factors scoring uses, once (as the scorer does for file references)."""
    prepared.body.warm_factors("word", "char", "sentence_word")  # similarity, evidence
    prepared.claim_vectors.warm_factors("word", "char", "terms")  # pair features


def _quoted_span(text: str, claim: str) -> Span | None:
    start = text.find(claim)
    return Span(start, start + len(claim), claim) if start >= 0 else None
