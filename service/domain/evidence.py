"""Evidence for a score: matching passages and the shared terms that weigh most."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from service.domain.encoding import TextEncoder
from service.domain.references import PreparedReference
from service.domain.vectors import EncodedTexts, cross
from service.domain.workload import text_chunks

__all__ = [
    "Evidence",
    "PassageMatch",
    "SharedTerm",
    "best_passages",
    "best_passages_by_characters",
    "find_evidence",
]


@dataclass(frozen=True)
class PassageMatch:
    """A sentence of the text and the reference passage closest to it.

    Offsets are Python string indices (Unicode code points), end exclusive:
    ``text[text_start:text_end]`` is the sentence of the submitted text and
    ``body[reference_start:reference_end]`` the passage of the reference body.
    """

    text_start: int
    text_end: int
    reference_start: int
    reference_end: int
    reference_passage: str
    similarity: float


@dataclass(frozen=True)
class SharedTerm:
    """A term of both texts and its share of their word TF-IDF cosine."""

    term: str
    weight: float


@dataclass(frozen=True)
class Evidence:
    """Why a text scored as it did against a reference."""

    passages: tuple[PassageMatch, ...]
    shared_terms: tuple[SharedTerm, ...]


def find_evidence(
    encoder: TextEncoder,
    texts: EncodedTexts,
    reference: PreparedReference,
    *,
    max_passages: int = 3,
    max_terms: int = 10,
    by_characters: bool = False,
) -> list[Evidence]:
    """Evidence for every text of ``texts`` against ``reference``.

    Sparse products compare every sentence of the batch with every passage
    of the reference, so the cost grows linearly with the total length of
    the texts; they run over chunks of sentences (:func:`best_passages`).

    Parameters
    ----------
    encoder:
        The encoder that encoded ``texts`` and the reference.
    texts:
        The encoded texts, with their sentences.
    reference:
        The prepared reference, with its encoded passages.
    max_passages:
        Most passages kept per text, the closest first.
    max_terms:
        Most shared terms kept per text, the largest share of the word cosine first.
    by_characters:
        Compare sentences and passages by character n-gram TF-IDF cosine instead of
        words (:func:`best_passages_by_characters`): for a language whose words the
        model's vocabulary does not have.

    Returns
    -------
    list of Evidence
        One per text, in order: its sentences with the closest reference passage
        (code point offsets into the text as normalised and into the reference body,
        end exclusive; TF-IDF cosine in [0, 1]) and the shared terms with their share
        of the word cosine.
    """
    if by_characters:
        best_passage, best_sim = best_passages_by_characters(encoder, texts, reference)
    else:
        best_passage, best_sim = best_passages(texts, reference)
    # Contribution of each term to the word cosine: product of the two weights.
    contributions = texts.word.multiply(reference.body.word).tocsr()

    starts = np.searchsorted(texts.sentence_owner, np.arange(len(texts) + 1))
    results = []
    for i in range(len(texts)):
        lo, hi = starts[i], starts[i + 1]
        passages = _top_passages(texts, reference, i, lo, hi, best_passage, best_sim, max_passages)
        results.append(Evidence(passages, _top_terms(encoder, contributions, i, max_terms)))
    return results


def best_passages(texts: EncodedTexts, reference: PreparedReference) -> tuple[np.ndarray, np.ndarray]:
    """For each sentence of ``texts``: the index of its closest reference passage, and the cosine.

    Computed chunk by chunk (:func:`~service.domain.workload.text_chunks`), so the
    dense (sentences × passages) similarity never exists for the whole batch.
    """
    n_sentences = texts.sentence_word.shape[0]
    best_passage = np.zeros(n_sentences, dtype=np.intp)
    best_sim = np.zeros(n_sentences)
    for _, _, lo, hi in text_chunks(texts.sentence_owner, len(texts)):
        if hi <= lo:
            continue
        sims = cross(texts.sentence_word[lo:hi], reference.body, "sentence_word")  # (chunk, P)
        if sims.size:
            best_passage[lo:hi] = sims.argmax(axis=1)
            best_sim[lo:hi] = sims.max(axis=1)
    return best_passage, best_sim


def best_passages_by_characters(
    encoder: TextEncoder, texts: EncodedTexts, reference: PreparedReference
) -> tuple[np.ndarray, np.ndarray]:
    """As :func:`best_passages`, by the character n-gram cosine of each sentence and passage.

    Each sentence and passage is encoded as a text of its own; the reference's passages once,
    kept with the prepared reference.
    """
    sentences = [
        texts.normalized[i].text[span.start : span.end]
        for i, spans in enumerate(texts.sentences)
        for span in spans
    ]
    n_sentences = len(sentences)
    if n_sentences == 0 or not reference.passages:
        return np.zeros(n_sentences, dtype=np.intp), np.zeros(n_sentences)
    passages = reference.passage_characters(encoder)
    best_passage = np.zeros(n_sentences, dtype=np.intp)
    best_sim = np.zeros(n_sentences)
    for lo in range(0, n_sentences, _SENTENCES_PER_CHUNK):
        chunk = encoder.encode(sentences[lo : lo + _SENTENCES_PER_CHUNK]).char
        sims = (chunk @ passages.T).toarray()
        best_passage[lo : lo + len(sims)] = sims.argmax(axis=1)
        best_sim[lo : lo + len(sims)] = sims.max(axis=1)
    return best_passage, best_sim


_SENTENCES_PER_CHUNK = 512


def _top_passages(
    texts: EncodedTexts,
    reference: PreparedReference,
    i: int,
    lo: int,
    hi: int,
    best_passage: np.ndarray,
    best_sim: np.ndarray,
    limit: int,
) -> tuple[PassageMatch, ...]:
    if hi <= lo:
        return ()
    sims = best_sim[lo:hi]
    count = min(limit, int((sims > 0).sum()))
    if count == 0:
        return ()
    # argpartition keeps this linear in the number of sentences.
    top = np.argpartition(-sims, count - 1)[:count] if count < len(sims) else np.arange(len(sims))
    top = top[np.argsort(-sims[top], kind="stable")]
    matches = []
    normalized = texts.normalized[i]
    for local in top:
        sentence = texts.sentences[i][local]
        # Offsets index the text as the client sent it, whatever normalisation changed.
        text_start, text_end = normalized.source_span(sentence.start, sentence.end)
        passage = reference.passages[best_passage[lo + local]]
        matches.append(
            PassageMatch(
                text_start=text_start,
                text_end=text_end,
                reference_start=passage.start,
                reference_end=passage.end,
                reference_passage=passage.text,
                similarity=round(float(sims[local]), 4),
            )
        )
    return tuple(matches)


def _top_terms(
    encoder: TextEncoder, contributions: sp.csr_matrix, i: int, limit: int
) -> tuple[SharedTerm, ...]:
    row = slice(contributions.indptr[i], contributions.indptr[i + 1])
    columns, weights = contributions.indices[row], contributions.data[row]
    if weights.size == 0:
        return ()
    total = weights.sum()
    order = np.argsort(-weights, kind="stable")[:limit]
    return tuple(
        SharedTerm(encoder.vocabulary[columns[j]], round(float(weights[j] / total), 4)) for j in order
    )
