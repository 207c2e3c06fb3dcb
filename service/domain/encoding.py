"""TF-IDF encoding of texts, fitted on a background corpus.

One :class:`TextEncoder` turns a batch of texts into every representation the
scorer needs, from a single tokenising pass per text:

* word TF-IDF vectors (sublinear term frequency, content words only),
* hashed character n-gram TF-IDF vectors (robust to inflection and typos),
* per-sentence word vectors with character offsets (for evidence and for
  sentence-level stance features),
* term presence, BM25 term weights, terms that follow a negation, and counts
  of the lexicons in :mod:`service.domain.lexicon`.

The fitted state is a vocabulary, two IDF arrays and an :class:`EncoderConfig`:
plain data that :mod:`service.loaders.artifacts` stores as JSON and ``.npy`` arrays.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from itertools import compress

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, HashingVectorizer

from service.domain.char_hashing import hashed_char_wb_counts
from service.domain.lexicon import LEXICONS, NEGATING
from service.domain.normalization import NormalizedText, normalize
from service.domain.sparse_rows import (
    nonzero_csr,
    normalize_rows,
    pair_counts,
    select_rows,
    sum_rows,
    summing_matrix,
    weighted_shares,
)
from service.domain.text import WORD_PATTERN, Span, sentence_pieces
from service.domain.vectors import EncodedTexts, blend_cosines, cross
from service.domain.workload import Checkpoint, WorkCounter, char_chunks, no_checkpoint

__all__ = [
    "LEXICON_NAMES",
    "EncoderConfig",
    "TextEncoder",
    "char_hasher",
]

LEXICON_NAMES: tuple[str, ...] = tuple(LEXICONS)
# Characters that separate the items of a keyword list.
_SEPARATORS = (",", ";", "|", "#", "/", ":", "\n", "\u2022", "\u00b7")


@dataclass(frozen=True)
class EncoderConfig:
    """Settings of a :class:`TextEncoder`; stored beside the fitted arrays."""

    word_min_df: int = 2
    word_max_features: int = 60_000
    char_ngram_min: int = 3
    char_ngram_max: int = 5
    char_hash_bits: int = 20
    # Weight of the character cosine in ``similarity``; the rest is the word cosine.
    char_weight: float = 0.5
    negation_window: int = 4
    lead_sentences: int = 2
    bm25_k1: float = 1.2
    bm25_b: float = 0.75
    max_sentence_chars: int = 600
    # Term frequency saturates as in BM25: tf * (k + 1) / (tf + k), so repeating a word adds
    # less and less (at most k + 1 times one occurrence); 0 means 1 + log(tf), unbounded.
    tf_saturation: float = 1.2
    # Weight of the words of a sentence that is a keyword list (tags, hashtags, a run of names).
    # Their words still count in the text's norm, so a text whose matching words sit in lists
    # scores low. (A sentence repeated within a text counts once: its repeats are left out.)
    list_weight: float = 0.1
    # A sentence is a keyword list when it has at least list_min_tokens words, under
    # list_max_function_share of them function words (the, of, is, ...) and at least
    # list_min_separator_share separators (, ; | # / : line breaks) per word; or, with no
    # separators, at least soup_min_tokens words and under soup_max_function_share function words.
    list_min_tokens: int = 4
    list_max_function_share: float = 0.2
    list_min_separator_share: float = 0.3
    soup_min_tokens: int = 12
    soup_max_function_share: float = 0.05

    @classmethod
    def from_dict(cls, data: dict) -> EncoderConfig:
        """Build a config from its stored form, refusing unknown keys."""
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown encoder settings: {sorted(unknown)}")
        return cls(**data)

    def to_dict(self) -> dict:
        """The JSON-serialisable form of the config."""
        return asdict(self)


def char_hasher(config: EncoderConfig) -> HashingVectorizer:
    """scikit-learn's hasher of the character n-grams of ``config``: it fits the character IDF,
    and :func:`hashed_char_wb_counts` computes its counts (the tests hold the two equal)."""
    return HashingVectorizer(
        analyzer="char_wb",
        ngram_range=(config.char_ngram_min, config.char_ngram_max),
        n_features=2**config.char_hash_bits,
        alternate_sign=False,
        norm=None,
        lowercase=True,
        dtype=np.float64,
    )


class TextEncoder:
    """Encodes texts with a vocabulary and IDF weights fitted on a background corpus.

    Parameters
    ----------
    config:
        The encoder settings.
    vocabulary:
        Terms in column order. Stop words and lexicon words are kept in the
        vocabulary (stance features need them) but carry no weight in the
        TF-IDF vectors.
    word_idf, char_idf:
        Inverse document frequencies of the vocabulary terms and of the
        ``2 ** char_hash_bits`` hashed character n-grams.
    avg_tokens:
        Mean token count of the background documents (for BM25).
    """

    def __init__(
        self,
        config: EncoderConfig,
        vocabulary: Sequence[str],
        word_idf: np.ndarray,
        char_idf: np.ndarray,
        avg_tokens: float,
    ) -> None:
        if len(vocabulary) != len(word_idf):
            raise ValueError(
                f"vocabulary has {len(vocabulary)} terms but word_idf has {len(word_idf)} entries"
            )
        if len(char_idf) != 2**config.char_hash_bits:
            raise ValueError(f"char_idf has {len(char_idf)} entries, expected 2**{config.char_hash_bits}")
        self.config = config
        self.vocabulary: list[str] = list(vocabulary)
        self.index: dict[str, int] = {term: i for i, term in enumerate(self.vocabulary)}
        if len(self.index) != len(self.vocabulary):
            raise ValueError("vocabulary has duplicate terms")
        self.word_idf = np.asarray(word_idf, dtype=np.float64)
        self.char_idf = np.asarray(char_idf, dtype=np.float64)
        self.avg_tokens = float(avg_tokens)
        content = np.array(
            [term not in ENGLISH_STOP_WORDS and not term.isdigit() for term in self.vocabulary]
        )
        self.content_mask = content.astype(np.float64)
        # Function words (scikit-learn's English stop words) per column; last: unknown tokens.
        self._function = np.array(
            [term in ENGLISH_STOP_WORDS for term in self.vocabulary] + [False], dtype=np.float64
        )
        self._content_idf = self.word_idf * self.content_mask
        lexicon_columns = np.zeros((len(self.vocabulary), len(LEXICON_NAMES)))
        for j, name in enumerate(LEXICON_NAMES):
            for term in LEXICONS[name]:
                if term in self.index:
                    lexicon_columns[self.index[term], j] = 1.0
        self._lexicon_columns = sp.csr_matrix(lexicon_columns)
        self._negating = np.zeros(len(self.vocabulary) + 1, dtype=bool)  # last: unknown
        for term in NEGATING:
            if term in self.index:
                self._negating[self.index[term]] = True
        self._hasher = char_hasher(config)

    @property
    def n_terms(self) -> int:
        """Size of the word vocabulary."""
        return len(self.vocabulary)

    # -- fitting -----------------------------------------------------------

    @classmethod
    def fit(cls, documents: Iterable[str], *, config: EncoderConfig | None = None) -> TextEncoder:
        """Fit the vocabulary and both IDF arrays on ``documents``.

        Lexicon words always enter the vocabulary, so the stance features see
        them even if the corpus does not.

        Parameters
        ----------
        documents:
            The background corpus, plain text (normalised as :func:`normalize` does).
        config:
            Tokenising and weighting settings; ``None``: :class:`EncoderConfig` defaults.

        Returns
        -------
        TextEncoder
            A vocabulary of at most ``config.word_max_features`` corpus terms plus the
            lexicon words, their word IDF ``(V,)`` and the character IDF
            ``(2**config.char_hash_bits,)``, smoothed (``log((1 + n) / (1 + df)) + 1``).

        Raises
        ------
        ValueError
            ``documents`` is empty.
        """
        config = config or EncoderConfig()
        docs = [normalize(d).text for d in documents]
        if not docs:
            raise ValueError("cannot fit an encoder on no documents")
        doc_freq: Counter[str] = Counter()
        total_tokens = 0
        for doc in docs:
            tokens = WORD_PATTERN.findall(doc.lower())
            total_tokens += len(tokens)
            doc_freq.update(set(tokens))
        kept = [t for t, df in doc_freq.items() if df >= config.word_min_df]
        kept.sort(key=lambda t: (-doc_freq[t], t))
        kept = kept[: config.word_max_features]
        lexicon_terms = sorted(set().union(*LEXICONS.values()) - set(kept))
        vocabulary = kept + lexicon_terms
        n_docs = len(docs)
        dfs = np.array([doc_freq.get(t, 0) for t in vocabulary], dtype=np.float64)
        word_idf = np.log((1.0 + n_docs) / (1.0 + dfs)) + 1.0
        char_counts = char_hasher(config).transform(docs)
        char_df = np.bincount(char_counts.indices, minlength=2**config.char_hash_bits)
        char_idf = np.log((1.0 + n_docs) / (1.0 + char_df)) + 1.0
        return cls(config, vocabulary, word_idf, char_idf, total_tokens / n_docs)

    # -- encoding ----------------------------------------------------------

    def encode(
        self,
        texts: Sequence[str | NormalizedText],
        *,
        counter: WorkCounter | None = None,
        checkpoint: Checkpoint = no_checkpoint,
        claims: bool = False,
    ) -> EncodedTexts:
        """Encode ``texts`` (any strings, including empty ones) in one batch.

        Sentences without a word token are left out of the per-sentence data (they
        add nothing to any feature; the lead sentences still count them, so the
        result is the same as if they were kept).

        Parameters
        ----------
        texts:
            ``n`` texts. Strings are read as plain text through :func:`normalize`; pass
            :class:`NormalizedText` objects for HTML or Markdown.
        counter:
            Counts sentences and words against its limits while tokenising, before any
            per-sentence array is built; it may be shared by several calls (a request's
            chunks of texts), so that the limits apply to their total and errors number the
            texts across all of them. Once it is over a limit, a call only counts. ``None``:
            no limit.
        checkpoint:
            Called every few texts and between steps; may raise to stop the work.
        claims:
            The texts are claims or headlines (one statement each, often in title case):
            no sentence is taken for a keyword list; repeats still count once.

        Returns
        -------
        EncodedTexts
            Every representation, one row per text in input order: word and character
            TF-IDF (``(n, V)`` and ``(n, 2**char_hash_bits)``, L2-normalised), lead, term
            presence, BM25, negated terms, lexicon counts ``(n, L)``, token counts ``(n,)``,
            and per-sentence word vectors ``(S, V)`` with offsets into ``normalized[i].text``.

        Raises
        ------
        WorkLimitError
            ``counter`` is over its limits.
        """
        cfg = self.config
        n_texts = len(texts)
        n_terms = self.n_terms
        unknown = n_terms  # sentinel column for out-of-vocabulary tokens
        lookup = self.index.get
        normalized = [t if isinstance(t, NormalizedText) else normalize(t) for t in texts]

        all_sentences: list[list[Span]] = []
        token_ids: list[int] = []
        tokens_per_sentence: list[int] = []
        sentence_owner: list[int] = []
        sentence_rank: list[int] = []
        # Character n-grams come from every sentence, with words or not (its punctuation and
        # symbols are characters of the text): the pieces, their text and their sentence (-1: none).
        char_texts: list[str] = []
        char_owner: list[int] = []
        char_sentence: list[int] = []
        counter = WorkCounter(None) if counter is None else counter
        for i, item in enumerate(normalized):
            if i % 16 == 0:
                checkpoint()
            text = item.text
            # A text without a single word has no sentence to keep: not splitting it spares the
            # cost of up to one span per two characters (". . . ." is all sentence ends); its
            # characters are hashed as one piece.
            if WORD_PATTERN.search(text):
                starts, ends, pieces = sentence_pieces(text, cfg.max_sentence_chars)
            else:
                starts, ends, pieces = [], [], []
            # Only the sentences with a word become Span objects and rows; the others (". . .")
            # stay strings, hashed for their characters, so that they cost no Python call each.
            lowered = list(map(str.lower, pieces))
            worded = list(compress(range(len(pieces)), map(WORD_PATTERN.search, lowered)))
            words_of = [WORD_PATTERN.findall(lowered[k]) for k in worded]
            kept_spans = [Span(starts[k], ends[k], pieces[k]) for k in worded]
            if not counter.over:  # else only counting: the call will be refused
                if not pieces and text and not text.isspace():
                    pieces = [text]
                piece_sentence = [-1] * len(pieces)
                for rank, words in zip(worded, words_of, strict=True):
                    piece_sentence[rank] = len(tokens_per_sentence)
                    token_ids.extend([lookup(tok, unknown) for tok in words])
                    tokens_per_sentence.append(len(words))
                    sentence_owner.append(i)
                    sentence_rank.append(rank)
                char_texts.extend(pieces)
                char_owner.extend([i] * len(pieces))
                char_sentence.extend(piece_sentence)
            counter.add_text(len(kept_spans), sum(map(len, words_of)))
            all_sentences.append([] if counter.over else kept_spans)
        counter.raise_if_over()
        checkpoint()

        ids = np.asarray(token_ids, dtype=np.int64)
        per_sentence = np.asarray(tokens_per_sentence, dtype=np.int64)
        owner = np.asarray(sentence_owner, dtype=np.int64)
        n_sentences = len(per_sentence)
        token_sentence = np.repeat(np.arange(n_sentences), per_sentence)
        known = ids != unknown
        sentence_texts = [span.text for spans in all_sentences for span in spans]
        weights, repeated = self._sentence_weights(
            ids, token_sentence, per_sentence, owner, sentence_texts, lists=not claims
        )
        weighted = bool((weights != 1.0).any())

        sentence_counts = pair_counts(token_sentence[known], ids[known], n_sentences, n_terms)
        # Text-level counts: sum the sentence rows of each text. Keyword lists and repeats count
        # less: each term's saturated frequency is scaled by the weighted share of its
        # occurrences, and the row norm is that of the unweighted vector.
        # A repeated sentence counts once: its repeats are left out of the sums altogether.
        kept = None if not repeated.any() else (~repeated).astype(np.float64)
        owner_matrix = summing_matrix(owner, n_texts, kept)
        owner_weighted = summing_matrix(owner, n_texts, weights) if weighted else None
        counts = sum_rows(owner_matrix, sentence_counts)
        share = weighted_shares(owner_weighted, sentence_counts, counts)
        lead_rows = np.asarray(sentence_rank, dtype=np.int64) < cfg.lead_sentences
        lead_sentences = select_rows(sentence_counts, lead_rows)
        lead_owner = summing_matrix(owner[lead_rows], n_texts, None if kept is None else kept[lead_rows])
        lead_counts = sum_rows(lead_owner, lead_sentences)
        lead_weighted = summing_matrix(owner[lead_rows], n_texts, weights[lead_rows]) if weighted else None
        lead_share = weighted_shares(lead_weighted, lead_sentences, lead_counts)

        n_tokens = np.bincount(owner, weights=per_sentence, minlength=n_texts)
        n_known = np.bincount(token_sentence[known], minlength=n_sentences)
        n_known = np.bincount(owner, weights=n_known, minlength=n_texts)
        n_listed = np.bincount(owner, weights=per_sentence * ((weights != 1.0) | repeated), minlength=n_texts)

        negated = self._negated_terms(ids, token_sentence, per_sentence, owner, n_texts)
        sentence_lexicon = np.asarray((sentence_counts @ self._lexicon_columns).todense())
        lexicon = (owner_matrix if owner_weighted is None else owner_weighted) @ sentence_lexicon
        lead_lexicon = lead_owner @ sentence_lexicon[lead_rows]

        pieces_owner = np.asarray(char_owner, dtype=np.int64)
        if weighted:
            # Pieces without words weigh 1 and are kept; the others as their sentence.
            sentence_of = np.asarray(char_sentence, dtype=np.int64)
            has_words = sentence_of >= 0
            piece_weights = np.ones(len(sentence_of))
            piece_weights[has_words] = weights[sentence_of[has_words]]
            piece_kept = np.ones(len(sentence_of))
            piece_kept[has_words] = ~repeated[sentence_of[has_words]]
            piece_chars = self._char_counts(char_texts)
            char_counts = sum_rows(summing_matrix(pieces_owner, n_texts, piece_kept), piece_chars)
            char_share = weighted_shares(
                summing_matrix(pieces_owner, n_texts, piece_weights), piece_chars, char_counts
            )
        else:  # the same sums, counted straight into text rows
            char_counts, char_share = self._char_counts(char_texts, pieces_owner, n_texts), None

        return EncodedTexts(
            word=self._tfidf(counts, share),
            char=self._weighted_unit(char_counts, char_share, self.char_idf),
            lead=self._tfidf(lead_counts, lead_share),
            terms=self._presence(counts, share),
            bm25=self._bm25(counts, n_tokens, share),
            negated=negated,
            lexicon=np.asarray(lexicon),
            lead_lexicon=np.asarray(lead_lexicon),
            n_tokens=n_tokens,
            n_known=n_known,
            n_listed=n_listed,
            normalized=normalized,
            sentences=all_sentences,
            sentence_word=self._tfidf(sentence_counts, None),
            sentence_lexicon=sentence_lexicon,
            sentence_owner=owner,
        )

    def _sentence_weights(
        self,
        ids: np.ndarray,
        token_sentence: np.ndarray,
        per_sentence: np.ndarray,
        owner: np.ndarray,
        sentence_texts: Sequence[str],
        *,
        lists: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Weight of each sentence in its text (1, or ``list_weight`` for a keyword list), and
        whether it repeats an earlier sentence of its text (compared case-insensitively).

        Cost is linear: one pass over the tokens, separators counted only in
        the few sentences that are candidates (many words, few function words).
        """
        cfg = self.config
        n_sentences = len(per_sentence)
        weights = np.ones(n_sentences)
        repeated = np.zeros(n_sentences, dtype=bool)
        if n_sentences == 0:
            return weights, repeated
        function = np.bincount(token_sentence, weights=self._function[ids], minlength=n_sentences)
        known = np.bincount(token_sentence, weights=ids != self.n_terms, minlength=n_sentences)
        share = function / np.maximum(per_sentence, 1)
        candidates = np.flatnonzero(
            (per_sentence >= cfg.list_min_tokens) & (share < cfg.list_max_function_share) & lists
        )
        for s in candidates.tolist():
            separators = sum(map(sentence_texts[s].count, _SEPARATORS))
            # Without separators only a run of known words counts as a list: a sentence in
            # another language has no known function words either.
            if separators >= cfg.list_min_separator_share * per_sentence[s] or (
                per_sentence[s] >= cfg.soup_min_tokens
                and share[s] < cfg.soup_max_function_share
                and known[s] >= 0.5 * per_sentence[s]
            ):
                weights[s] = cfg.list_weight
        ends = np.flatnonzero(np.diff(np.append(owner, -1))) + 1
        first = 0
        for last in ends.tolist():
            if last - first > 1:
                seen: set[str] = set()
                for s in range(first, last):
                    key = sentence_texts[s].lower()
                    if key in seen and per_sentence[s]:
                        repeated[s] = True
                        weights[s] = 0.0
                    seen.add(key)
            first = last
        return weights, repeated

    def similarity(self, a: EncodedTexts, b: EncodedTexts) -> np.ndarray:
        """TF-IDF cosine of every text of ``a`` with every text of ``b``.

        Parameters
        ----------
        a, b:
            Texts encoded by this encoder.

        Returns
        -------
        numpy.ndarray
            Shape ``(len(a), len(b))``, float64 in [0, 1]: the word and character cosines'
            mean weighted by ``config.char_weight`` (:func:`blend_cosines`), which equals the
            cosine of the concatenated, weighted vectors.
        """
        return blend_cosines(cross(a.word, b, "word"), cross(a.char, b, "char"), self.config.char_weight)

    # -- helpers -----------------------------------------------------------

    def _saturate(self, tf: np.ndarray) -> np.ndarray:
        """The term-frequency weight: saturating, or ``1 + log(tf)`` when ``tf_saturation`` is 0."""
        k = self.config.tf_saturation
        if k <= 0:
            return 1.0 + np.log(tf)
        return tf * (k + 1.0) / (tf + k)

    def _tfidf(self, counts: sp.csr_matrix, share: np.ndarray | None) -> sp.csr_matrix:
        """Word TF-IDF of ``counts``, scaled by ``share`` (see :meth:`_weighted_unit`)."""
        return self._weighted_unit(counts, share, self._content_idf)

    def _weighted_unit(
        self, counts: sp.csr_matrix, share: np.ndarray | None, idf: np.ndarray
    ) -> sp.csr_matrix:
        """Saturated TF times IDF, scaled entry by entry by ``share``, over the unscaled row norm.

        ``share`` (aligned with ``counts.data``) is the weighted share of each term's
        occurrences, in (0, 1]; ``None`` means 1 everywhere, which gives the plain
        L2-normalised TF-IDF. Otherwise rows have norm at most 1.
        """
        values = self._saturate(counts.data) * idf[counts.indices]
        if share is None:
            return normalize_rows(nonzero_csr(values, counts))
        rows = np.repeat(np.arange(counts.shape[0]), np.diff(counts.indptr))
        norms = np.sqrt(np.bincount(rows, weights=values * values, minlength=counts.shape[0]))
        norms[norms == 0] = 1.0
        return nonzero_csr(values * share / norms[rows], counts)

    def _char_counts(
        self, texts: Sequence[str], rows: np.ndarray | None = None, n_rows: int | None = None
    ) -> sp.csr_matrix:
        """Hashed character n-gram counts: the same matrix as ``self._hasher.transform(texts)``,
        with texts summed into ``rows`` (non-decreasing) when given (see
        :func:`hashed_char_wb_counts`).

        Computed over chunks of about ``CHAR_CHUNK`` characters, cut between output rows,
        and stacked (rows are independent, so the matrix is the same): the temporary arrays
        of the hashing grow with the chunk, not with the batch.
        """
        if rows is None:
            rows, n_rows = np.arange(len(texts)), len(texts)
        elif n_rows is None:
            n_rows = int(rows[-1]) + 1 if len(rows) else 0
        row_chars = np.bincount(rows, weights=[len(t) for t in texts], minlength=n_rows)
        first_text = np.searchsorted(rows, np.arange(n_rows + 1))
        parts = []
        for first, end in char_chunks(row_chars.astype(np.int64).tolist()):
            lo, hi = int(first_text[first]), int(first_text[end])
            parts.append(self._char_counts_of(texts[lo:hi], rows[lo:hi] - first, end - first))
        if not parts:
            return sp.csr_matrix((n_rows, 2**self.config.char_hash_bits))
        return parts[0] if len(parts) == 1 else sp.vstack(parts, format="csr")

    def _char_counts_of(self, texts: Sequence[str], rows: np.ndarray, n_rows: int) -> sp.csr_matrix:
        cfg = self.config
        size = 2**cfg.char_hash_bits
        try:
            return hashed_char_wb_counts(
                texts, cfg.char_ngram_min, cfg.char_ngram_max, size, rows=rows, n_rows=n_rows
            )
        except UnicodeEncodeError:  # lone surrogates: let scikit-learn raise or cope as it does
            return (summing_matrix(np.asarray(rows), n_rows) @ self._hasher.transform(texts)).tocsr()

    def _presence(self, counts: sp.csr_matrix, share: np.ndarray | None) -> sp.csr_matrix:
        # A term met only in keyword lists is a partial presence.
        presence = self.content_mask[counts.indices]
        return nonzero_csr(presence if share is None else presence * share, counts)

    def _bm25(self, counts: sp.csr_matrix, n_tokens: np.ndarray, share: np.ndarray | None) -> sp.csr_matrix:
        k1, b = self.config.bm25_k1, self.config.bm25_b
        rows = np.repeat(np.arange(counts.shape[0]), np.diff(counts.indptr))
        norm = k1 * (1.0 - b + b * n_tokens[rows] / max(self.avg_tokens, 1.0))
        tf = counts.data
        values = self._content_idf[counts.indices] * tf * (k1 + 1.0) / (tf + norm)
        return nonzero_csr(values if share is None else values * share, counts)

    def _negated_terms(
        self,
        ids: np.ndarray,
        token_sentence: np.ndarray,
        per_sentence: np.ndarray,
        owner: np.ndarray,
        n_texts: int,
    ) -> sp.csr_matrix:
        """Content terms that follow a negation within the window, in the same sentence."""
        n_terms = self.n_terms
        if ids.size == 0:
            return sp.csr_matrix((n_texts, n_terms))
        is_negation = self._negating[ids].astype(np.int64)
        negations_before = np.concatenate(([0], np.cumsum(is_negation)))  # in tokens [0, j)
        positions = np.arange(ids.size)
        sentence_first = np.concatenate(([0], np.cumsum(per_sentence)))[token_sentence]
        window_start = np.maximum(positions - self.config.negation_window, sentence_first)
        follows_negation = (negations_before[positions] - negations_before[window_start]) > 0
        keep = follows_negation & (ids != n_terms)
        matrix = pair_counts(owner[token_sentence[keep]], ids[keep], n_texts, n_terms)
        return nonzero_csr(self.content_mask[matrix.indices], matrix)

    def idf_of(self, term_indices: np.ndarray) -> np.ndarray:
        """Content-word IDF of the given vocabulary columns (0 for stop words)."""
        return self._content_idf[term_indices]
