"""Reference documents, their main claims, and their features computed once at load."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from service.domain.encoding import TextEncoder
from service.domain.text import Span
from service.domain.vectors import EncodedTexts

__all__ = [
    "DERIVED_CLAIMS",
    "Claim",
    "PreparedReference",
    "Reference",
    "derive_claims",
    "prepare_reference",
]

DERIVED_CLAIMS = 5
"""How many claims :func:`derive_claims` makes for a reference that states none."""


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

    @property
    def id(self) -> str:
        """The reference id."""
        return self.reference.id


def prepare_reference(reference: Reference, encoder: TextEncoder) -> PreparedReference:
    """Encode a reference's body, passages and claims (deriving claims if it has none).

    Parameters
    ----------
    reference:
        The reference as read from its file.
    encoder:
        The model's encoder.

    Returns
    -------
    PreparedReference
        The reference with its claims (stated, or derived: the title and the body
        sentences closest to the body), the claims' origin, and the encoded body
        (one row), claims (one row each) and passages.

    Raises
    ------
    ValueError
        The body, or a claim, has no word the encoder counts (the message names the
        reference and the claims).
    """
    body = encoder.encode([reference.body])
    if body.n_tokens[0] == 0:
        raise ValueError(f"reference {reference.id!r}: the body has no words")
    claims, origin = reference.claims, reference.claims_origin
    if not claims:
        claims = derive_claims(reference, encoder, body)
        origin = (
            f"derived: the title and the {len(claims) - 1} body sentences closest to the whole "
            "body by TF-IDF cosine"
        )
    claim_vectors = encoder.encode([c.text for c in claims], claims=True)
    empty = [c.id for c, n in zip(claims, claim_vectors.n_tokens, strict=True) if n == 0]
    if empty:
        raise ValueError(f"reference {reference.id!r}: claim(s) {empty} have no words")
    return PreparedReference(
        reference=reference,
        claims=tuple(claims),
        claims_origin=origin,
        body=body,
        claim_vectors=claim_vectors,
        passages=_source_spans(body, 0),
    )


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


def derive_claims(
    reference: Reference, encoder: TextEncoder, body: EncodedTexts | None = None
) -> tuple[Claim, ...]:
    """Claims for a reference that states none: its title and its most central sentences.

    Centrality is the word TF-IDF cosine of a sentence with the whole body;
    the chosen sentences keep their order in the body.
    """
    body = body if body is not None else encoder.encode([reference.body])
    sentences = _source_spans(body, 0)
    centrality = (body.sentence_word @ body.word.T).toarray().ravel()
    chosen = sorted(np.argsort(-centrality, kind="stable")[: DERIVED_CLAIMS - 1])
    claims = [Claim(id="title", text=reference.title)]
    claims += [Claim(id=f"sentence-{i + 1}", text=sentences[i].text, source=sentences[i]) for i in chosen]
    return tuple(claims)
