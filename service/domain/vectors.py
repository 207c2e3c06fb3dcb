"""Encoded texts and the exact, fast product of their vectors (:func:`cross`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from service.domain.normalization import NormalizedText
from service.domain.text import Span


@dataclass
class EncodedTexts:
    """Every representation of a batch of ``n`` texts; rows follow input order."""

    word: sp.csr_matrix  # (n, V) L2-normalised word TF-IDF
    char: sp.csr_matrix  # (n, H) L2-normalised character n-gram TF-IDF
    lead: sp.csr_matrix  # (n, V) L2-normalised word TF-IDF of the first sentences
    terms: sp.csr_matrix  # (n, V) 1 where a content term occurs
    bm25: sp.csr_matrix  # (n, V) BM25 weight of each content term
    negated: sp.csr_matrix  # (n, V) 1 where a content term follows a negation
    lexicon: np.ndarray  # (n, L) lexicon counts
    lead_lexicon: np.ndarray  # (n, L) lexicon counts in the lead sentences
    n_tokens: np.ndarray  # (n,) word tokens
    n_known: np.ndarray  # (n,) word tokens found in the vocabulary
    n_listed: np.ndarray  # (n,) word tokens in keyword lists or repeated sentences (down-weighted)
    normalized: list[NormalizedText] = field(repr=False)  # the texts as read, with offsets back
    sentences: list[list[Span]] = field(repr=False)  # offsets into normalized[i].text
    sentence_word: sp.csr_matrix = field(repr=False)  # (S, V) per sentence
    sentence_lexicon: np.ndarray = field(repr=False)  # (S, L)
    sentence_owner: np.ndarray = field(repr=False)  # (S,) index of the text
    # Right-hand factors of products with these texts, built on first use (see ``cross``).
    _factors: dict[str, _RightFactor] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return self.word.shape[0]

    def take(self, rows: Sequence[int]) -> EncodedTexts:
        """The encoded texts at ``rows`` (sorted, distinct), as if only they had been encoded."""
        sentence_mask = np.isin(self.sentence_owner, rows)
        remap = np.full(len(self), -1)
        remap[rows] = np.arange(len(rows))
        return EncodedTexts(
            word=self.word[rows],
            char=self.char[rows],
            lead=self.lead[rows],
            terms=self.terms[rows],
            bm25=self.bm25[rows],
            negated=self.negated[rows],
            lexicon=self.lexicon[rows],
            lead_lexicon=self.lead_lexicon[rows],
            n_tokens=self.n_tokens[rows],
            n_known=self.n_known[rows],
            n_listed=self.n_listed[rows],
            normalized=[self.normalized[i] for i in rows],
            sentences=[self.sentences[i] for i in rows],
            sentence_word=self.sentence_word[sentence_mask],
            sentence_lexicon=self.sentence_lexicon[sentence_mask],
            sentence_owner=remap[self.sentence_owner[sentence_mask]],
        )

    def factor(self, name: str) -> _RightFactor:
        """The :class:`_RightFactor` of the matrix attribute ``name``, built once and kept.

        Encoded texts are never modified, so the factor stays valid; a
        concurrent first use at worst builds it twice.
        """
        found = self._factors.get(name)
        if found is None:
            found = self._factors[name] = _RightFactor.of(getattr(self, name))
        return found

    def warm_factors(self, *names: str) -> None:
        """Build the factors of ``names`` now (for long-lived texts such as references)."""
        for name in names:
            self.factor(name)


DENSE_FACTOR_ROWS = 64
"""A right-hand side of at most this many rows (claims, a body) gets a dense factor; a
larger one (a body's passages) a sparse one, so its memory stays proportional to its entries."""


@dataclass(frozen=True)
class _RightFactor:
    """The transpose of a sparse matrix ``B`` (K × D, D up to 2**20), compacted to its used columns.

    ``columns`` are the sorted distinct columns of ``B``; ``transposed`` is
    ``B[:, columns].T`` (m × K), dense for small K, else CSR. With it,
    ``A @ B.T`` needs no transpose of ``B`` over all D columns (which costs
    O(D) per product), only a look-up of ``A``'s columns in ``columns``.
    ``usable`` is False when ``B`` stores duplicate entries (encoded texts never
    do); :func:`cross` then takes the plain product.
    """

    columns: np.ndarray
    transposed: np.ndarray | sp.csr_matrix
    usable: bool

    @classmethod
    def of(cls, matrix: sp.spmatrix) -> _RightFactor:
        """Build the factor of ``matrix`` (any sparse format)."""
        canonical = sp.csr_matrix(matrix, copy=True)
        canonical.sum_duplicates()
        n_rows = canonical.shape[0]
        columns = np.unique(canonical.indices)
        rows = np.repeat(np.arange(n_rows), np.diff(canonical.indptr))
        compact_columns = np.searchsorted(columns, canonical.indices)
        transposed: np.ndarray | sp.csr_matrix
        if n_rows <= DENSE_FACTOR_ROWS:
            transposed = np.zeros((len(columns), n_rows))
            transposed[compact_columns, rows] = canonical.data
        else:
            transposed = sp.csr_matrix(
                (canonical.data, (compact_columns, rows)), shape=(len(columns), n_rows)
            )
        return cls(columns, transposed, canonical.nnz == matrix.nnz)


def cross(left: sp.csr_matrix, right: EncodedTexts, name: str) -> np.ndarray:
    """``(left @ getattr(right, name).T).toarray()``, bit for bit, without transposing the right side.

    ``left`` keeps its storage order and only its entries in columns the right
    side uses, so every output element is the same sequence of floating-point
    products and additions that scipy's sparse product performs. (A dense
    factor adds exact zeros for the right rows without the column, which
    changes no sum of non-negative terms; every encoded matrix is non-negative.)
    """
    factor = right.factor(name)
    if not factor.usable:
        return (left @ getattr(right, name).T).toarray()
    n_rows, n_columns = left.shape[0], len(factor.columns)
    n_right = factor.transposed.shape[1]
    if n_columns == 0 or left.nnz == 0:
        return np.zeros((n_rows, n_right))
    position = np.searchsorted(factor.columns, left.indices)
    np.minimum(position, n_columns - 1, out=position)
    hit = factor.columns[position] == left.indices
    kept_before = np.concatenate(([0], np.cumsum(hit)))
    compact = sp.csr_matrix(
        (left.data[hit], position[hit], kept_before[left.indptr]), shape=(n_rows, n_columns)
    )
    product = compact @ factor.transposed
    return product.toarray() if sp.issparse(product) else np.asarray(product)


def blend_cosines(word: np.ndarray, char: np.ndarray, char_weight: float) -> np.ndarray:
    """The similarity of texts from their word and character TF-IDF cosines (arrays of one shape).

    Their mean weighted by ``char_weight`` (``EncoderConfig.char_weight``), which equals the
    cosine of the concatenated, weighted vectors, clipped to [0, 1] against rounding. The one
    formula of the service's ``similarity``: the encoder, the scorer's per-claim similarity and
    the training reports all call it.
    """
    return np.clip((1.0 - char_weight) * word + char_weight * char, 0.0, 1.0)
