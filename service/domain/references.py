"""Reference documents, their main claims, and their features computed once at load."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from service.domain.encoding import TextEncoder
from service.domain.errors import DiscourseError
from service.domain.normalization import NormalizedText, normalize
from service.domain.text import WORD_PATTERN, Span, tokenize
from service.domain.vectors import EncodedTexts

__all__ = [
    "FULL_SENTENCE_WORDS",
    "MAX_CLAIMS",
    "MAX_DERIVED_CLAIMS",
    "MIN_DERIVED_CLAIMS",
    "Claim",
    "PreparedReference",
    "Reference",
    "ReferenceContentError",
    "derive_claims",
    "prepare_reference",
]

MAX_CLAIMS = 20
"""Most claims a reference may state (in a file or in a request)."""
MIN_DERIVED_CLAIMS = 5
"""Fewest claims :func:`derive_claims` makes (fewer only when the body has fewer full sentences)."""
MAX_DERIVED_CLAIMS = 8
"""Most claims :func:`derive_claims` makes (the title, when it states a thesis, included)."""
SENTENCES_PER_DERIVED_CLAIM = 7
"""One derived claim per this many full sentences of the body, within the bounds above."""
REDUNDANCY_WEIGHT = 0.7
"""In maximal marginal relevance: how much a sentence's likeness to the claims already chosen
counts against its centrality (0: centrality only, five paraphrases of one point)."""
FULL_SENTENCE_WORDS = (6, 60)
"""A derived claim is a full sentence of this many words (fewer: a heading or a fragment; more:
a run-on passage nobody would read as one claim)."""
_OPENING_MARKS = "\"'\u201c\u2018\u00ab("
_CLOSING_MARKS = "\"'\u201d\u2019\u00bb)"
_DANGLING_OPENERS = frozenset("it this these they he she his her their its such but and so".split())
"""Words that open a sentence which leans on the one before (English): not a standalone claim."""
_THESIS_VERBS = frozenset(
    "is are was were will would must should can cannot could may might has have had does do did "
    "be been being shall".split()
)
"""English auxiliaries and copulas: a title with one of them (and no question mark) states
something; without, it is read as a label ("Eurasian security"), not a thesis."""


class ReferenceContentError(DiscourseError, ValueError):
    """A reference's content cannot be used; ``field`` names the part at fault.

    ``field`` is a path such as ``text`` or ``claims.3`` (relative to the
    reference), so that the API can prefix it (``reference.claims.3``) and a
    reference file loader can name the file.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Claim:
    """One main claim of a reference, with the passage of the body it restates."""

    id: str
    text: str
    source: Span | None = None


@dataclass(frozen=True)
class Reference:
    """A reference document as its file describes it."""

    id: str
    title: str
    body: str
    claims: tuple[Claim, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)
    default: bool = False
    claims_origin: str = "stated in the reference file"
    format: str = "text"
    """How to read ``body``: ``text``, ``html`` or ``markdown`` (as for scored texts)."""
    variants: dict[str, Reference] = field(default_factory=dict)
    """The same document in other languages, by language code; their claims share the ids of
    this one's (see :mod:`service.loaders.reference_files`)."""


@dataclass(frozen=True)
class PreparedReference:
    """A reference with everything scoring needs, computed once.

    ``claims`` are the stated claims, or derived ones when the file gave none;
    ``passages`` are the body's sentences with their offsets in ``body``.
    """

    reference: Reference
    claims: tuple[Claim, ...]
    claims_origin: str
    body: EncodedTexts
    claim_vectors: EncodedTexts
    passages: tuple[Span, ...]
    variants: dict[str, PreparedReference] = field(default_factory=dict)
    """Prepared variants in other languages, by language code."""
    _passage_characters: dict[str, sp.csr_matrix] = field(default_factory=dict, repr=False, compare=False)

    @property
    def id(self) -> str:
        """The reference id."""
        return self.reference.id

    @property
    def language(self) -> str:
        """The language of this (main) variant."""
        return self.reference.metadata.get("language", "en")

    def passage_characters(self, encoder: TextEncoder) -> sp.csr_matrix:
        """The character n-gram TF-IDF rows of ``passages`` (P × H, unit rows), made on first use
        and kept (evidence in languages the word vocabulary lacks)."""
        found = self._passage_characters.get("char")
        if found is None:
            found = self._passage_characters["char"] = encoder.encode([p.text for p in self.passages]).char
        return found

    def variant(self, language: str) -> PreparedReference:
        """The variant in ``language`` (this one for its own language or one it lacks)."""
        return self.variants.get(language, self)


def prepare_reference(
    reference: Reference, encoder: TextEncoder, *, normalized: NormalizedText | None = None
) -> PreparedReference:
    """Encode a reference's body, passages and claims (deriving claims if it has none).

    Parameters
    ----------
    reference:
        The reference, as read from its file or sent with a request.
    encoder:
        The model's encoder.
    normalized:
        The body already normalised (``normalize(body, format)``), to spare a second pass.

    Returns
    -------
    PreparedReference
        The reference with its claims (stated, or derived by :func:`derive_claims`), the
        claims' origin, and the encoded body (one row), claims (one row each) and passages.

    Raises
    ------
    ReferenceContentError
        The body, or a stated claim, has no words (``field`` is ``text`` or ``claims.<i>``,
        counted from 0).
    """
    normalized = normalized if normalized is not None else normalize(reference.body, reference.format)
    body = encoder.encode([normalized])
    if body.n_tokens[0] == 0:
        raise ReferenceContentError("text", "has no words (a word is two or more letters or digits)")
    claims, origin = reference.claims, reference.claims_origin
    if not claims:
        claims = derive_claims(reference, encoder, body)
        origin = DERIVATION_METHOD
    claim_vectors = encoder.encode([c.text for c in claims], claims=True)
    for k, n in enumerate(claim_vectors.n_tokens.tolist()):
        if n == 0:
            raise ReferenceContentError(
                f"claims.{k}", f"claim {claims[k].id!r} has no words (two or more letters or digits)"
            )
    variants = {}
    for language, variant in reference.variants.items():
        try:
            variants[language] = prepare_reference(variant, encoder)
        except ReferenceContentError as error:
            raise ReferenceContentError(f"variants.{language}.{error.field}", error.message) from None
    return PreparedReference(
        reference=reference,
        claims=tuple(claims),
        claims_origin=origin,
        body=body,
        claim_vectors=claim_vectors,
        passages=_source_spans(body, 0),
        variants=variants,
    )


def content_id(title: str, normalized_text: str, claims: list[str] | None, language: str | None) -> str:
    """``sha256:<hex>`` of a reference's normalised content: what its scores depend on.

    The same title, normalised body, stated claims (or none) and stated language (or none)
    give the same id whatever the format or the spelling of the body as sent.
    """
    canonical = json.dumps(
        {"title": title, "text": normalized_text, "claims": claims, "language": language},
        ensure_ascii=False,
        sort_keys=True,
        separators=(",", ":"),
    )
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _source_spans(encoded: EncodedTexts, row: int) -> tuple[Span, ...]:
    """The sentences of text ``row`` as spans of the text as written (not as normalised).

    Passages are cut from the body as written, so they equal the API's reference text and
    their offsets index it.
    """
    normalized = encoded.normalized[row]
    spans = []
    for sentence in encoded.sentences[row]:
        start, end = normalized.source_span(sentence.start, sentence.end)
        spans.append(Span(start, end, normalized.source[start:end]))
    return tuple(spans)


DERIVATION_METHOD = (
    "derived: full standalone sentences of the body (6-60 words, capitalised, ending with . ! or …, "
    "not opening with a pronoun or conjunction) chosen by "
    "maximal marginal relevance: centrality (the sentence's summed word TF-IDF cosine with the "
    "other sentences, scaled to 0..1) minus 0.7 x its largest cosine with a sentence already "
    "chosen (coverage); one claim per 7 full sentences, 5 to 8, in body order; the title first "
    "when it states a thesis (a declarative title with a verb)"
)
"""The ``claims_origin`` of derived claims: the method in one sentence (docs/references.md)."""


def derive_claims(
    reference: Reference, encoder: TextEncoder, body: EncodedTexts | None = None
) -> tuple[Claim, ...]:
    """Claims for a reference that states none: its most central full sentences, spread over
    its points, and its title when the title states a thesis.

    Method (maximal marginal relevance): every full sentence (see :data:`FULL_SENTENCE_WORDS`)
    scores its centrality, the sum of its word TF-IDF cosines with the other sentences of the
    body (scaled so that the most central scores 1); sentences are picked one by one, each
    time the one with the highest centrality minus :data:`REDUNDANCY_WEIGHT` times its largest
    cosine with a sentence already picked. ``n_full // 7`` claims are made, at least
    :data:`MIN_DERIVED_CLAIMS` and at most :data:`MAX_DERIVED_CLAIMS` (the title counts), fewer
    only when the body has fewer full sentences; if it has none at all, its longest sentences
    are taken. Chosen sentences keep their body order; each claim's ``source`` is its sentence,
    with offsets in the body as written.

    Returns
    -------
    tuple of Claim
        ``title`` (if a thesis) then ``sentence-<n>`` (n = the sentence's 1-based position
        among the body's sentences with words).
    """
    body = body if body is not None else encoder.encode([normalize(reference.body, reference.format)])
    sentences = _source_spans(body, 0)
    if not sentences:
        return ()
    sentence_word = body.sentence_word[body.sentence_owner == 0]
    likeness = (sentence_word @ sentence_word.T).toarray()
    # Degree centrality (as in LexRank): a sentence that shares words with many others states
    # what the body keeps coming back to. Scaled to [0, 1] so that it weighs like a cosine.
    degree = likeness.sum(axis=1) - likeness.diagonal()
    centrality = degree / degree.max() if degree.max() > 0 else degree
    full = [i for i, span in enumerate(sentences) if is_full_sentence(span.text)]
    if not full:
        full = sorted(range(len(sentences)), key=lambda i: -len(sentences[i].text))
    with_title = states_thesis(reference.title)
    wanted = min(MAX_DERIVED_CLAIMS, max(MIN_DERIVED_CLAIMS, len(full) // SENTENCES_PER_DERIVED_CLAIM))
    wanted -= int(with_title)
    chosen: list[int] = []
    available = np.zeros(len(sentences), dtype=bool)
    available[full] = True
    redundancy = np.zeros(len(sentences))  # largest cosine with a chosen sentence
    while available.any() and len(chosen) < wanted:
        gain = np.where(available, centrality - REDUNDANCY_WEIGHT * redundancy, -np.inf)
        best = int(np.argmax(gain))  # ties: the earlier sentence
        chosen.append(best)
        available[best] = False
        redundancy = np.maximum(redundancy, likeness[:, best])
    claims = [Claim(id="title", text=reference.title)] if with_title else []
    claims += [
        Claim(id=f"sentence-{i + 1}", text=sentences[i].text, source=sentences[i]) for i in sorted(chosen)
    ]
    return tuple(claims)


def is_full_sentence(text: str) -> bool:
    """Whether ``text`` reads as one full, standalone sentence: capitalised, ending with ``.``,
    ``!`` or ``…`` (a question states nothing), with a number of words within
    :data:`FULL_SENTENCE_WORDS`, not opening with a pronoun or conjunction that leans on the
    sentence before (:data:`_DANGLING_OPENERS`)."""
    text = text.strip()
    n_words = len(tokenize(text))
    low, high = FULL_SENTENCE_WORDS
    opening = text.lstrip(_OPENING_MARKS)
    first = opening[:1]
    if opening.split(maxsplit=1)[0].lower().strip(",;:") in _DANGLING_OPENERS:
        return False
    last = text.rstrip(_CLOSING_MARKS)[-1:]
    return low <= n_words <= high and (first.isupper() or first.isdigit()) and last in (".", "!", "\u2026")


def states_thesis(title: str) -> bool:
    """Whether a title states a thesis (English heuristic, no tagger): no question mark, three
    words or more, and a finite verb: an auxiliary or copula (:data:`_THESIS_VERBS`) or a
    lower-case word after the first ending in ``-s`` or ``-ed`` ("Meteorite hits Managua").
    Other titles ("Eurasian security", "Is neutering NATO the next project?") name a topic or
    ask; they are no claim. A lower-case plural noun can pass for a verb: such a title is
    then kept as a claim, which the per-claim scores make visible."""
    if "?" in title:
        return False
    words = WORD_PATTERN.findall(title)
    if len(words) < 3:
        return False
    lowered = [w.lower() for w in words]
    if any(w in _THESIS_VERBS for w in lowered):
        return True
    return any(
        w.islower() and ((w.endswith("s") and not w.endswith("ss")) or w.endswith("ed")) for w in words[1:]
    )
