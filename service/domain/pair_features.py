"""Features of (claim, text) pairs, shared by training and scoring.

FNC-1 pairs a claim (the headline) with an article (the body); the service
pairs each claim of a reference with each submitted text. Every feature is
computed for all pairs of two encoded batches at once with sparse matrix
products, so the cost is one product per feature, not a Python loop per pair.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from service.domain.encoding import LEXICON_NAMES, TextEncoder
from service.domain.stance import RELATED_LABELS
from service.domain.vectors import EncodedTexts, cross
from service.domain.workload import text_chunks

_PAIR = (
    "cos_word",
    "cos_char",
    "coverage",
    "bm25",
    "max_sentence_cos",
    "lead_cos",
    "negated_coverage",
)
_NEAR = tuple(f"{name}_near_claim" for name in LEXICON_NAMES)
# A text that denies what the claim asserts (or asserts what it denies) uses the
# lexicons differently from the claim: per lexicon, the count near the claim's
# sentences and in the lead minus the claim's own, and 1 when the lexicon occurs
# on one side only (near the claim in the text, or in the claim).
_CONTRAST = tuple(
    f"{name}_{kind}"
    for name in LEXICON_NAMES
    for kind in ("near_minus_in_claim", "lead_minus_in_claim", "presence_differs")
)
_TEXT = (
    "log_text_tokens",
    *(f"{name}_per_100_tokens" for name in LEXICON_NAMES),
    *(f"{name}_in_lead" for name in LEXICON_NAMES),
)
_WORDING = tuple(f"wording_{label}" for label in RELATED_LABELS)
_CLAIM = ("log_claim_tokens", *(f"{name}_in_claim" for name in LEXICON_NAMES))

FEATURE_NAMES: tuple[str, ...] = (*_PAIR, *_NEAR, *_CONTRAST, *_TEXT, *_WORDING, *_CLAIM)
"""Column names of the array :func:`compute_pair_features` returns, in order."""

# Added to denominators so that empty texts and claims give 0, never NaN.
_EPS = 1e-3


def compute_pair_features(
    encoder: TextEncoder, texts: EncodedTexts, claims: EncodedTexts, wording_scores: np.ndarray
) -> np.ndarray:
    """Features of every (text, claim) pair: an array of shape (len(texts), len(claims), F).

    ``F`` is ``len(FEATURE_NAMES)``; every value is finite. ``wording_scores``
    (shape (len(texts), 3)) are the texts' :class:`~service.domain.stance.WordingModel`
    scores, copied into the ``wording_*`` columns.
    """
    n_texts, n_claims = len(texts), len(claims)
    if wording_scores.shape != (n_texts, len(_WORDING)):
        raise ValueError(f"wording_scores must have shape ({n_texts}, {len(_WORDING)})")
    claim_terms = np.asarray(claims.terms.sum(axis=1)).ravel()
    claim_bm25_max = _bm25_ceiling(encoder, claims)

    # cross(x, claims, "word") is (x @ claims.word.T).toarray(), computed without transposing
    # the claims over the whole vocabulary or hash space on every call.
    cos_word = cross(texts.word, claims, "word")
    cos_char = cross(texts.char, claims, "char")
    coverage = cross(texts.terms, claims, "terms") / np.maximum(claim_terms, 1.0)
    bm25 = cross(texts.bm25, claims, "terms") / np.maximum(claim_bm25_max, _EPS)
    lead_cos = cross(texts.lead, claims, "word")
    negated = cross(texts.negated, claims, "terms") / np.maximum(claim_terms, 1.0)

    max_sentence, near = sentence_level_features(texts, claims)  # (N, K), (N, K, L)

    in_claim = claims.lexicon[None, :, :]  # (1, K, L)
    contrast = np.stack(
        [
            near - in_claim,
            texts.lead_lexicon[:, None, :] - in_claim,
            ((near > 0) != (in_claim > 0)).astype(np.float64),
        ],
        axis=-1,
    ).reshape(n_texts, n_claims, len(_CONTRAST))  # lexicon-major, as _CONTRAST is ordered

    per_100 = 100.0 * texts.lexicon / np.maximum(texts.n_tokens, 1.0)[:, None]
    text_level = np.column_stack([np.log1p(texts.n_tokens), per_100, texts.lead_lexicon, wording_scores])
    claim_level = np.column_stack([np.log1p(claims.n_tokens), claims.lexicon])

    pair_level = np.stack([cos_word, cos_char, coverage, bm25, max_sentence, lead_cos, negated], axis=-1)
    features = np.concatenate(
        [
            pair_level,
            near,
            contrast,
            np.broadcast_to(text_level[:, None, :], (n_texts, n_claims, text_level.shape[1])),
            np.broadcast_to(claim_level[None, :, :], (n_texts, n_claims, claim_level.shape[1])),
        ],
        axis=-1,
    )
    return np.nan_to_num(features, nan=0.0, posinf=0.0, neginf=0.0)


def sentence_level_features(texts: EncodedTexts, claims: EncodedTexts) -> tuple[np.ndarray, np.ndarray]:
    """Per text and claim: the closest sentence's cosine (N, K) and the similarity-weighted
    lexicon counts (N, K, L).

    Computed over chunks of whole texts (:func:`~service.domain.workload.text_chunks`): the
    (sentences × claims × lexicons) intermediate never exists for the whole batch, and as each
    text's sentences stay in one chunk, every value is the same as computed in one piece.
    """
    n_texts, n_claims = len(texts), len(claims)
    max_sentence = np.zeros((n_texts, n_claims))
    near = np.zeros((n_texts, n_claims, texts.sentence_lexicon.shape[1]))
    for first, end, lo, hi in text_chunks(texts.sentence_owner, n_texts):
        sentence_cos = cross(texts.sentence_word[lo:hi], claims, "word")  # (chunk, K)
        owner = texts.sentence_owner[lo:hi] - first
        max_sentence[first:end] = _max_by_owner(sentence_cos, owner, end - first)
        near[first:end] = _similarity_weighted_lexicon(
            sentence_cos, texts.sentence_lexicon[lo:hi], owner, end - first
        )
    return max_sentence, near


def _bm25_ceiling(encoder: TextEncoder, claims: EncodedTexts) -> np.ndarray:
    """Largest BM25 score a text could reach on each claim (sum of the claims' term IDFs × (k1 + 1))."""
    terms = claims.terms.tocsr()
    idf = sp.csr_matrix(
        (encoder.idf_of(terms.indices) * (encoder.config.bm25_k1 + 1.0), terms.indices, terms.indptr),
        shape=terms.shape,
    )
    return np.asarray(idf.sum(axis=1)).ravel()


def _max_by_owner(values: np.ndarray, owner: np.ndarray, n_groups: int) -> np.ndarray:
    """Row-wise maximum of ``values`` per owning text; 0 for texts without sentences."""
    result = np.zeros((n_groups, values.shape[1]))
    if values.shape[0] == 0:
        return result
    # Sentences of one text are contiguous and in order, so reduceat applies.
    starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
    result[owner[starts]] = np.maximum.reduceat(values, starts, axis=0)
    return result


def _similarity_weighted_lexicon(
    sentence_cos: np.ndarray, sentence_lexicon: np.ndarray, owner: np.ndarray, n_texts: int
) -> np.ndarray:
    """Lexicon counts of each text's sentences, weighted by how close each sentence is to the claim.

    A refuting word in the sentence that restates the claim says more than
    one in an unrelated paragraph.
    """
    n_sentences, n_claims = sentence_cos.shape
    n_lex = sentence_lexicon.shape[1]
    if n_sentences == 0:
        return np.zeros((n_texts, n_claims, n_lex))
    weights = np.clip(sentence_cos, 0.0, None) ** 2
    owner_matrix = sp.csr_matrix(
        (np.ones(n_sentences), (owner, np.arange(n_sentences))), shape=(n_texts, n_sentences)
    )
    weighted = weights[:, :, None] * sentence_lexicon[:, None, :]  # (S, K, L)
    numerator = (owner_matrix @ weighted.reshape(n_sentences, -1)).reshape(n_texts, n_claims, n_lex)
    denominator = owner_matrix @ weights  # (N, K)
    return numerator / (denominator[:, :, None] + _EPS)
