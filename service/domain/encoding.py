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
plain data that :mod:`service.artifacts` stores as JSON and ``.npy`` arrays.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, HashingVectorizer
from sklearn.utils.sparsefuncs_fast import inplace_csr_row_normalize_l2

from service.domain.lexicon import LEXICONS, NEGATING
from service.domain.normalization import NormalizedText, normalize
from service.domain.text import WORD_PATTERN, Span, split_sentences
from service.domain.workload import Checkpoint, WorkCounter, WorkLimits, char_chunks, no_checkpoint

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
        self._hasher = HashingVectorizer(
            analyzer="char_wb",
            ngram_range=(config.char_ngram_min, config.char_ngram_max),
            n_features=2**config.char_hash_bits,
            alternate_sign=False,
            norm=None,
            lowercase=True,
            dtype=np.float64,
        )

    @property
    def n_terms(self) -> int:
        """Size of the word vocabulary."""
        return len(self.vocabulary)

    # -- fitting -----------------------------------------------------------

    @classmethod
    def fit(cls, documents: Iterable[str], config: EncoderConfig | None = None) -> TextEncoder:
        """Fit the vocabulary and both IDF arrays on ``documents``.

        Lexicon words always enter the vocabulary, so the stance features see
        them even if the corpus does not.
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
        hasher = HashingVectorizer(
            analyzer="char_wb",
            ngram_range=(config.char_ngram_min, config.char_ngram_max),
            n_features=2**config.char_hash_bits,
            alternate_sign=False,
            norm=None,
            lowercase=True,
        )
        char_counts = hasher.transform(docs)
        char_df = np.bincount(char_counts.indices, minlength=2**config.char_hash_bits)
        char_idf = np.log((1.0 + n_docs) / (1.0 + char_df)) + 1.0
        return cls(config, vocabulary, word_idf, char_idf, total_tokens / n_docs)

    # -- encoding ----------------------------------------------------------

    def encode(
        self,
        texts: Sequence[str | NormalizedText],
        limits: WorkLimits | None = None,
        checkpoint: Checkpoint = no_checkpoint,
        *,
        claims: bool = False,
    ) -> EncodedTexts:
        """Encode ``texts`` (any strings, including empty ones) in one batch.

        Strings are read as plain text through :func:`normalize`; pass
        :class:`NormalizedText` objects for HTML or Markdown. Sentence offsets
        in the result index the normalised texts (``normalized[i].text``).
        With ``claims=True`` (claims and headlines: one statement each, often in
        title case) no sentence is taken for a keyword list; repeats still count once.

        Sentences without a word token are left out of the per-sentence data (they
        add nothing to any feature; the lead sentences still count them, so the
        result is the same as if they were kept). Raises
        :class:`~service.domain.workload.WorkLimitError` if the texts exceed
        ``limits``, before any per-sentence array is built; ``checkpoint`` is
        called every few texts and between steps, and may raise to stop.
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
        counter = WorkCounter(limits)
        for i, item in enumerate(normalized):
            if i % 16 == 0:
                checkpoint()
            kept: list[Span] = []
            text_tokens = 0
            text = item.text
            # A text without a single word has no sentence to keep: not splitting it spares the
            # cost of up to one span per two characters (". . . ." is all sentence ends); its
            # characters are hashed as one piece.
            spans = split_sentences(text, cfg.max_sentence_chars) if WORD_PATTERN.search(text) else []
            if not spans and not text.isspace() and text and not counter.over:
                char_texts.append(text)
                char_owner.append(i)
                char_sentence.append(-1)
            for rank, span in enumerate(spans):
                words = WORD_PATTERN.findall(span.text.lower())
                if counter.over:  # only counting from here on: the call will be refused
                    text_tokens += len(words)
                    kept += [span] if words else []
                    continue
                char_texts.append(span.text)
                char_owner.append(i)
                char_sentence.append(len(tokens_per_sentence) if words else -1)
                if not words:
                    continue
                text_tokens += len(words)
                kept.append(span)
                token_ids.extend([lookup(tok, unknown) for tok in words])
                tokens_per_sentence.append(len(words))
                sentence_owner.append(i)
                sentence_rank.append(rank)
            counter.add_text(i, len(kept), text_tokens)
            all_sentences.append([] if counter.over else kept)
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

        sentence_counts = _count_matrix(token_sentence[known], ids[known], n_sentences, n_terms)
        # Text-level counts: sum the sentence rows of each text. Keyword lists and repeats count
        # less: each term's saturated frequency is scaled by the weighted share of its
        # occurrences, and the row norm is that of the unweighted vector.
        # A repeated sentence counts once: its repeats are left out of the sums altogether.
        kept = None if not repeated.any() else (~repeated).astype(np.float64)
        owner_matrix = _owner_matrix(owner, n_texts, kept)
        owner_weighted = _owner_matrix(owner, n_texts, weights) if weighted else None
        counts = _sum_rows(owner_matrix, sentence_counts)
        share = _share(owner_weighted, sentence_counts, counts)
        lead_rows = np.asarray(sentence_rank, dtype=np.int64) < cfg.lead_sentences
        lead_sentences = _select_rows(sentence_counts, lead_rows)
        lead_owner = _owner_matrix(owner[lead_rows], n_texts, None if kept is None else kept[lead_rows])
        lead_counts = _sum_rows(lead_owner, lead_sentences)
        lead_weighted = _owner_matrix(owner[lead_rows], n_texts, weights[lead_rows]) if weighted else None
        lead_share = _share(lead_weighted, lead_sentences, lead_counts)

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
            char_counts = _sum_rows(_owner_matrix(pieces_owner, n_texts, piece_kept), piece_chars)
            char_share = _share(_owner_matrix(pieces_owner, n_texts, piece_weights), piece_chars, char_counts)
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
        """TF-IDF cosine of every text of ``a`` with every text of ``b``: shape (len(a), len(b)).

        A weighted mean of the word and character cosines, which equals the
        cosine of the concatenated, weighted vectors; in [0, 1].
        """
        w = self.config.char_weight
        word = cross(a.word, b, "word")
        char = cross(a.char, b, "char")
        return np.clip((1.0 - w) * word + w * char, 0.0, 1.0)

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
            return _normalize_rows(_nonzero_csr(values, counts))
        rows = np.repeat(np.arange(counts.shape[0]), np.diff(counts.indptr))
        norms = np.sqrt(np.bincount(rows, weights=values * values, minlength=counts.shape[0]))
        norms[norms == 0] = 1.0
        return _nonzero_csr(values * share / norms[rows], counts)

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
            return (_owner_matrix(np.asarray(rows), n_rows) @ self._hasher.transform(texts)).tocsr()

    def _presence(self, counts: sp.csr_matrix, share: np.ndarray | None) -> sp.csr_matrix:
        # A term met only in keyword lists is a partial presence.
        presence = self.content_mask[counts.indices]
        return _nonzero_csr(presence if share is None else presence * share, counts)

    def _bm25(self, counts: sp.csr_matrix, n_tokens: np.ndarray, share: np.ndarray | None) -> sp.csr_matrix:
        k1, b = self.config.bm25_k1, self.config.bm25_b
        rows = np.repeat(np.arange(counts.shape[0]), np.diff(counts.indptr))
        norm = k1 * (1.0 - b + b * n_tokens[rows] / max(self.avg_tokens, 1.0))
        tf = counts.data
        values = self._content_idf[counts.indices] * tf * (k1 + 1.0) / (tf + norm)
        return _nonzero_csr(values if share is None else values * share, counts)

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
        matrix = _count_matrix(owner[token_sentence[keep]], ids[keep], n_texts, n_terms)
        return _nonzero_csr(self.content_mask[matrix.indices], matrix)

    def idf_of(self, term_indices: np.ndarray) -> np.ndarray:
        """Content-word IDF of the given vocabulary columns (0 for stop words)."""
        return self._content_idf[term_indices]


# -- fast exact equivalents of scikit-learn steps ----------------------------------


# The helpers below build exactly the matrices scipy's COO conversion, row indexing and
# eliminate_zeros build (same entries in the same storage order), without their per-call overhead,
# which is most of the cost of encoding a single short text.


def _share(
    weighted_owner: sp.csr_matrix | None, sentence_rows: sp.csr_matrix, counts: sp.csr_matrix
) -> np.ndarray | None:
    """For each entry of ``counts`` (the unweighted sums of ``sentence_rows``), the weighted
    share of its occurrences: its weighted sum over its count, aligned with ``counts.data``.

    ``None`` when nothing is weighted (every share would be 1).
    """
    if weighted_owner is None:
        return None
    if counts.nnz == 0:
        return np.zeros(0)
    weighted = _sum_rows(weighted_owner, sentence_rows)
    # Sorted column indices let scipy look each entry up by binary search; unsorted (as the
    # product leaves them) it scans the row for every entry: quadratic in a long text's terms.
    weighted.sort_indices()
    rows = np.repeat(np.arange(counts.shape[0]), np.diff(counts.indptr))
    return np.asarray(weighted[rows, counts.indices], dtype=np.float64).ravel() / counts.data


def _count_matrix(rows: np.ndarray, columns: np.ndarray, n_rows: int, n_columns: int) -> sp.csr_matrix:
    """How often each (row, column) pair occurs, as canonical CSR (sorted, summed; float64).

    The matrix ``csr_matrix((ones, (rows, columns)))`` followed by ``sum_duplicates()`` gives.
    """
    keys, counts = np.unique(rows * n_columns + columns, return_counts=True)
    indptr = np.zeros(n_rows + 1, dtype=np.int32)
    np.cumsum(np.bincount(keys // n_columns, minlength=n_rows), out=indptr[1:])
    return sp.csr_matrix(
        (counts.astype(np.float64), (keys % n_columns).astype(np.int32), indptr), shape=(n_rows, n_columns)
    )


COMPACT_MIN_COLUMNS = 4096
"""From this many columns, :func:`_sum_rows` multiplies over the used columns only."""


def _sum_rows(owner: sp.csr_matrix, rows: sp.csr_matrix) -> sp.csr_matrix:
    """``(owner @ rows).tocsr()``, the same entries in the same storage order, computed over the
    columns ``rows`` uses.

    scipy's sparse product allocates and zero-fills two work arrays as long as the right-hand
    side is wide (2**20 hashed character n-grams: 12 MB); with the service's allocator settings
    (service.http.admission.tune_allocator) each is a fresh mapping, so every product paid for
    page faults on 12 MB, most of the cost of encoding a long text. Relabelling the used columns
    0..k-1 keeps the product's order of work, so the result is identical.
    """
    if rows.shape[1] < COMPACT_MIN_COLUMNS or rows.nnz == 0:
        return (owner @ rows).tocsr()
    used, compact = np.unique(rows.indices, return_inverse=True)
    narrow = sp.csr_matrix(
        (rows.data, compact.astype(rows.indices.dtype), rows.indptr), shape=(rows.shape[0], len(used))
    )
    product = (owner @ narrow).tocsr()
    return sp.csr_matrix(
        (product.data, used[product.indices].astype(product.indices.dtype), product.indptr),
        shape=(owner.shape[0], rows.shape[1]),
    )


def _owner_matrix(owner: np.ndarray, n_texts: int, weights: np.ndarray | None = None) -> sp.csr_matrix:
    """(n_texts, len(owner)) with ``weights[s]`` (default 1) at (owner[s], s): sums sentence rows
    into text rows.

    ``owner`` is non-decreasing, so this is in canonical order.
    """
    n_sentences = len(owner)
    indptr = np.zeros(n_texts + 1, dtype=np.int32)
    np.cumsum(np.bincount(owner, minlength=n_texts), out=indptr[1:])
    data = np.ones(n_sentences) if weights is None else np.asarray(weights, dtype=np.float64)
    return sp.csr_matrix((data, np.arange(n_sentences, dtype=np.int32), indptr), shape=(n_texts, n_sentences))


def _select_rows(matrix: sp.csr_matrix, keep: np.ndarray) -> sp.csr_matrix:
    """``matrix[keep]`` for a boolean row mask, entries in the same order."""
    row_nnz = np.diff(matrix.indptr)
    entries = np.repeat(keep, row_nnz)
    indptr = np.zeros(int(keep.sum()) + 1, dtype=matrix.indptr.dtype)
    np.cumsum(row_nnz[keep], out=indptr[1:])
    return sp.csr_matrix(
        (matrix.data[entries], matrix.indices[entries], indptr), shape=(len(indptr) - 1, matrix.shape[1])
    )


def _nonzero_csr(data: np.ndarray, like: sp.csr_matrix) -> sp.csr_matrix:
    """A new CSR matrix with ``like``'s structure and ``data``, exact zeros dropped.

    What ``m = like.copy(); m.data = data; m.eliminate_zeros()`` gives.
    """
    keep = data != 0
    if keep.all():
        return sp.csr_matrix((data, like.indices.copy(), like.indptr.copy()), shape=like.shape)
    kept_before = np.zeros(len(keep) + 1, dtype=np.int64)
    np.cumsum(keep, out=kept_before[1:])
    indptr = kept_before[like.indptr].astype(like.indptr.dtype)
    return sp.csr_matrix((data[keep], like.indices[keep], indptr), shape=like.shape)


def _normalize_rows(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """L2-normalise the rows of ``matrix`` in place; empty rows stay empty.

    The kernel that ``sklearn.preprocessing.normalize`` runs on a CSR matrix,
    without its input validation (which costs more than the work for one text).
    """
    if matrix.dtype != np.float64 or not matrix.data.flags.writeable:
        matrix = sp.csr_matrix(matrix, dtype=np.float64, copy=True)
    inplace_csr_row_normalize_l2(matrix)
    return matrix


_C1, _C2 = np.uint32(0xCC9E2D51), np.uint32(0x1B873593)


def _rotl(x: np.ndarray, r: int) -> np.ndarray:
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def _murmurhash3_32(words: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    """MurmurHash3 (x86, 32-bit, seed 0) of the ``length``-byte strings at byte offsets ``starts``, as int32.

    ``words[i]`` holds the four bytes at offset ``i`` as a little-endian uint32
    (the buffer is padded, so every offset has one). This is the hash
    scikit-learn's FeatureHasher applies to the UTF-8 bytes of each feature.
    """
    h = np.zeros(len(starts), dtype=np.uint32)
    n_blocks = length // 4
    for b in range(n_blocks):
        k = _rotl(words[starts + 4 * b] * _C1, 15) * _C2
        h = _rotl(h ^ k, 13) * np.uint32(5) + np.uint32(0xE6546B64)
    tail = length & 3
    if tail:
        k = words[starts + 4 * n_blocks] & np.uint32((1 << (8 * tail)) - 1)
        h ^= _rotl(k * _C1, 15) * _C2
    h ^= np.uint32(length)
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
    return h.view(np.int32)


def hashed_char_wb_counts(
    texts: Sequence[str],
    min_n: int,
    max_n: int,
    n_features: int,
    *,
    rows: np.ndarray | None = None,
    n_rows: int | None = None,
) -> sp.csr_matrix:
    """Counts of hashed ``char_wb`` n-grams: ``HashingVectorizer(analyzer="char_wb",
    ngram_range=(min_n, max_n), n_features=n_features, alternate_sign=False, norm=None,
    lowercase=True).transform(texts)``, computed with array operations instead of one
    Python string per n-gram.

    As scikit-learn does: lower-case, split on whitespace, pad each word with a
    space on both sides, take every n-gram of ``min_n`` to ``max_n`` characters
    inside a padded word (a padded word shorter than ``min_n`` counts once,
    whole), hash its UTF-8 bytes with MurmurHash3 and take ``|h| % n_features``.
    The result is in canonical form (sorted indices, summed counts), as
    scikit-learn's. Raises ``UnicodeEncodeError`` for text with lone surrogates.

    ``rows`` (non-decreasing, one per text) sums texts into ``n_rows`` output
    rows: the counts of sentences, summed by the text that holds them, without a
    sparse product over all ``n_features`` columns.
    """
    n_texts = len(texts)
    padded = [" " + "  ".join(parts) + " " if (parts := t.lower().split()) else "" for t in texts]
    lengths = np.fromiter((len(p) for p in padded), dtype=np.int64, count=n_texts)
    owner = np.arange(n_texts, dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
    n_texts = n_texts if n_rows is None else n_rows
    # The output row of every character of the joined texts: a look-up, not a search.
    row_of = np.repeat(owner, lengths)
    joined = "".join(padded)
    encoded = joined.encode("utf-8")
    raw = np.frombuffer(encoded, dtype=np.uint8)
    n_chars, n_bytes = len(joined), len(encoded)
    ascii_only = n_bytes == n_chars
    if ascii_only:  # one byte per character
        byte_of = np.arange(n_chars + 1, dtype=np.int64)
    else:
        byte_of = np.empty(n_chars + 1, dtype=np.int64)
        byte_of[:-1] = np.flatnonzero((raw & 0xC0) != 0x80)
        byte_of[-1] = n_bytes
    # The four bytes at each offset as a little-endian uint32 (zero-padded at the end).
    buffer = np.zeros(n_bytes + 3, dtype=np.uint32)
    buffer[:n_bytes] = raw
    words = buffer[:-3] | (buffer[1:-2] << 8) | (buffer[2:-1] << 16) | (buffer[3:] << 24)
    words = np.concatenate([words, np.zeros(3, dtype=np.uint32)])  # offsets up to n_bytes + 2
    # Every character is inside one padded word " w "; its spaces come in pairs (start, end).
    is_space = raw[byte_of[:-1]] == 0x20
    spaces = np.flatnonzero(is_space)
    word_start, word_end = spaces[0::2], spaces[1::2]
    starts_here = np.zeros(n_chars, dtype=np.int64)
    starts_here[word_start] = 1
    last_char = word_end[np.cumsum(starts_here) - 1]  # last character of each character's word
    positions = np.arange(n_chars, dtype=np.int64)

    # (n-gram start characters, their length in characters) per group.
    groups: list[tuple[np.ndarray, np.ndarray | int]] = []
    for n in range(min_n, max_n + 1):
        groups.append((positions[positions + n - 1 <= last_char], n))
    short = word_end - word_start + 1 < min_n  # padded words shorter than min_n count once, whole
    if short.any():
        groups.append((word_start[short], (word_end - word_start + 1)[short]))

    key_parts: list[np.ndarray] = []
    for first, n_chars_each in groups:
        if len(first) == 0:
            continue
        byte_start = byte_of[first]
        if ascii_only and isinstance(n_chars_each, int):
            by_length = [(n_chars_each, np.arange(len(first)))]
        else:
            byte_length = byte_of[first + n_chars_each] - byte_start
            by_length = [
                (int(length), np.flatnonzero(byte_length == length))
                for length in np.flatnonzero(np.bincount(byte_length))
            ]
        hashes = np.empty(len(first), dtype=np.int32)
        for length, chosen in by_length:
            hashes[chosen] = _murmurhash3_32(words, byte_start[chosen], length)
        wide = hashes.astype(np.int64)
        index = np.abs(wide) % n_features
        index[wide == -(2**31)] = (2**31 - 1 - (n_features - 1)) % n_features
        row = row_of[first]
        key_parts.append(row * n_features + index)

    keys = np.concatenate(key_parts) if key_parts else np.zeros(0, dtype=np.int64)
    if n_texts * n_features < 2**31:
        keys = keys.astype(np.int32)  # sorts faster
    keys.sort()
    first_of_run = np.empty(len(keys), dtype=bool)
    if len(keys):
        first_of_run[0] = True
        np.not_equal(keys[1:], keys[:-1], out=first_of_run[1:])
    run_start = np.flatnonzero(first_of_run)
    counts = np.diff(np.append(run_start, len(keys)))
    unique_keys = keys[run_start].astype(np.int64)
    indptr = np.zeros(n_texts + 1, dtype=np.int32)
    np.cumsum(np.bincount(unique_keys // n_features, minlength=n_texts), out=indptr[1:])
    return sp.csr_matrix(
        (counts.astype(np.float64), (unique_keys % n_features).astype(np.int32), indptr),
        shape=(n_texts, n_features),
    )
