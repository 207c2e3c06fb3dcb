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
from service.domain.text import WORD_PATTERN, Span, clean, split_sentences

LEXICON_NAMES: tuple[str, ...] = tuple(LEXICONS)


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
    sentences: list[list[Span]] = field(repr=False)
    sentence_word: sp.csr_matrix = field(repr=False)  # (S, V) per sentence
    sentence_lexicon: np.ndarray = field(repr=False)  # (S, L)
    sentence_owner: np.ndarray = field(repr=False)  # (S,) index of the text
    # Right-hand factors of products with these texts, built on first use (see ``cross``).
    _factors: dict[str, _RightFactor] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return self.word.shape[0]

    def factor(self, name: str) -> _RightFactor:
        """The :class:`_RightFactor` of the matrix attribute ``name`` (cached: encoded texts never change)."""
        found = self._factors.get(name)
        if found is None:
            found = self._factors[name] = _RightFactor.of(getattr(self, name))
        return found


MAX_FACTOR_ROWS = 64
"""Products with a right side of at most this many rows (a reference's claims, body or
passages) go through a cached :class:`_RightFactor`; larger ones use scipy directly."""


@dataclass(frozen=True)
class _RightFactor:
    """The transpose of a sparse matrix ``B`` (K × D, D up to 2**20), compacted to its used columns.

    ``columns`` are the sorted distinct columns of ``B`` and ``dense`` is
    ``B[:, columns].T`` as a dense (m, K) array. With it, ``A @ B.T`` needs no
    transpose of ``B`` over all D columns (which costs O(D) per product), only a
    look-up of ``A``'s columns in ``columns``.
    """

    columns: np.ndarray
    dense: np.ndarray
    exact: bool  # False if B holds duplicate entries; then the plain product is used

    @classmethod
    def of(cls, matrix: sp.spmatrix) -> _RightFactor:
        """Build the factor of ``matrix`` (any sparse format)."""
        canonical = sp.csr_matrix(matrix, copy=True)
        canonical.sum_duplicates()
        exact = canonical.nnz == matrix.nnz and matrix.shape[0] <= MAX_FACTOR_ROWS
        columns = np.unique(canonical.indices)
        dense = np.zeros((len(columns), canonical.shape[0]))
        rows = np.repeat(np.arange(canonical.shape[0]), np.diff(canonical.indptr))
        dense[np.searchsorted(columns, canonical.indices), rows] = canonical.data
        return cls(columns, dense, exact)


def cross(left: sp.csr_matrix, right: EncodedTexts, name: str) -> np.ndarray:
    """``(left @ getattr(right, name).T).toarray()``, bit for bit, without transposing the right side.

    ``left`` is kept in its storage order and only its entries in columns the
    right side uses are kept, so every output element is the same sequence of
    floating-point products and additions that scipy's sparse product performs
    (the dense product adds exact zeros for the other right rows, which changes
    no sum of non-negative terms; every encoded matrix is non-negative).
    """
    if len(right) > MAX_FACTOR_ROWS:
        return (left @ getattr(right, name).T).toarray()
    factor = right.factor(name)
    if not factor.exact:
        return (left @ getattr(right, name).T).toarray()
    n_rows, n_columns = left.shape[0], len(factor.columns)
    if n_columns == 0 or left.nnz == 0:
        return np.zeros((n_rows, factor.dense.shape[1]))
    position = np.searchsorted(factor.columns, left.indices)
    np.minimum(position, n_columns - 1, out=position)
    hit = factor.columns[position] == left.indices
    kept_before = np.concatenate(([0], np.cumsum(hit)))
    compact = sp.csr_matrix(
        (left.data[hit], position[hit], kept_before[left.indptr]), shape=(n_rows, n_columns)
    )
    return np.asarray(compact @ factor.dense)


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
        docs = [clean(d) for d in documents]
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

    def encode(self, texts: Sequence[str]) -> EncodedTexts:
        """Encode ``texts`` (any strings, including empty ones) in one batch."""
        cfg = self.config
        n_texts = len(texts)
        n_terms = self.n_terms
        unknown = n_terms  # sentinel column for out-of-vocabulary tokens
        lookup = self.index.get
        cleaned = [t if _is_clean(t) else clean(t) for t in texts]

        all_sentences: list[list[Span]] = []
        token_ids: list[int] = []
        tokens_per_sentence: list[int] = []
        sentence_owner: list[int] = []
        sentence_rank: list[int] = []
        for i, text in enumerate(cleaned):
            spans = split_sentences(text, cfg.max_sentence_chars)
            all_sentences.append(spans)
            for rank, span in enumerate(spans):
                ids = [lookup(tok, unknown) for tok in WORD_PATTERN.findall(span.text.lower())]
                token_ids.extend(ids)
                tokens_per_sentence.append(len(ids))
                sentence_owner.append(i)
                sentence_rank.append(rank)

        ids = np.asarray(token_ids, dtype=np.int64)
        per_sentence = np.asarray(tokens_per_sentence, dtype=np.int64)
        owner = np.asarray(sentence_owner, dtype=np.int64)
        n_sentences = len(per_sentence)
        token_sentence = np.repeat(np.arange(n_sentences), per_sentence)
        known = ids != unknown

        sentence_counts = sp.csr_matrix(
            (np.ones(int(known.sum())), (token_sentence[known], ids[known])),
            shape=(n_sentences, n_terms),
        )
        sentence_counts.sum_duplicates()
        # Text-level counts: sum the sentence rows of each text.
        owner_matrix = sp.csr_matrix(
            (np.ones(n_sentences), (owner, np.arange(n_sentences))), shape=(n_texts, n_sentences)
        )
        counts = (owner_matrix @ sentence_counts).tocsr()
        lead_rows = np.asarray(sentence_rank, dtype=np.int64) < cfg.lead_sentences
        lead_counts = (owner_matrix[:, lead_rows] @ sentence_counts[lead_rows]).tocsr()

        n_tokens = np.bincount(owner, weights=per_sentence, minlength=n_texts)
        n_known = np.bincount(token_sentence[known], minlength=n_sentences)
        n_known = np.bincount(owner, weights=n_known, minlength=n_texts)

        negated = self._negated_terms(ids, token_sentence, per_sentence, owner, n_texts)
        sentence_lexicon = np.asarray((sentence_counts @ self._lexicon_columns).todense())
        lexicon = owner_matrix @ sentence_lexicon
        lead_lexicon = owner_matrix[:, lead_rows] @ sentence_lexicon[lead_rows]

        return EncodedTexts(
            word=self._tfidf(counts),
            char=self._char_tfidf(cleaned),
            lead=self._tfidf(lead_counts),
            terms=self._presence(counts),
            bm25=self._bm25(counts, n_tokens),
            negated=negated,
            lexicon=np.asarray(lexicon),
            lead_lexicon=np.asarray(lead_lexicon),
            n_tokens=n_tokens,
            n_known=n_known,
            sentences=all_sentences,
            sentence_word=self._tfidf(sentence_counts),
            sentence_lexicon=sentence_lexicon,
            sentence_owner=owner,
        )

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

    def _tfidf(self, counts: sp.csr_matrix) -> sp.csr_matrix:
        weighted = counts.copy()
        weighted.data = (1.0 + np.log(weighted.data)) * self._content_idf[weighted.indices]
        weighted.eliminate_zeros()
        return _normalize_rows(weighted)

    def _char_tfidf(self, texts: Sequence[str]) -> sp.csr_matrix:
        counts = self._char_counts(texts)
        counts.data = (1.0 + np.log(counts.data)) * self.char_idf[counts.indices]
        return _normalize_rows(counts)

    def _char_counts(self, texts: Sequence[str]) -> sp.csr_matrix:
        """Hashed character n-gram counts: the same matrix as ``self._hasher.transform(texts)``."""
        cfg = self.config
        try:
            return hashed_char_wb_counts(texts, cfg.char_ngram_min, cfg.char_ngram_max, 2**cfg.char_hash_bits)
        except UnicodeEncodeError:  # lone surrogates: let scikit-learn raise or cope as it does
            return self._hasher.transform(texts).tocsr()

    def _presence(self, counts: sp.csr_matrix) -> sp.csr_matrix:
        present = counts.copy()
        present.data = self.content_mask[present.indices]
        present.eliminate_zeros()
        return present

    def _bm25(self, counts: sp.csr_matrix, n_tokens: np.ndarray) -> sp.csr_matrix:
        k1, b = self.config.bm25_k1, self.config.bm25_b
        weights = counts.copy()
        rows = np.repeat(np.arange(counts.shape[0]), np.diff(counts.indptr))
        norm = k1 * (1.0 - b + b * n_tokens[rows] / max(self.avg_tokens, 1.0))
        tf = weights.data
        weights.data = self._content_idf[weights.indices] * tf * (k1 + 1.0) / (tf + norm)
        weights.eliminate_zeros()
        return weights

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
        rows = owner[token_sentence[keep]]
        matrix = sp.csr_matrix((np.ones(int(keep.sum())), (rows, ids[keep])), shape=(n_texts, n_terms))
        matrix.sum_duplicates()
        matrix.data = self.content_mask[matrix.indices]
        matrix.eliminate_zeros()
        return matrix

    def idf_of(self, term_indices: np.ndarray) -> np.ndarray:
        """Content-word IDF of the given vocabulary columns (0 for stop words)."""
        return self._content_idf[term_indices]


# -- fast exact equivalents of scikit-learn steps ----------------------------------


def _is_clean(text: str) -> bool:
    """True if :func:`clean` would return ``text`` unchanged (checked at C speed).

    ``clean`` keeps printable characters, tab and newline; a text that is
    printable once tabs and newlines are removed has nothing to replace.
    """
    return text.isprintable() or text.replace("\n", "").replace("\t", "").isprintable()


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


def _murmurhash3_32(data: np.ndarray) -> np.ndarray:
    """MurmurHash3 (x86, 32-bit, seed 0) of each row of a (count, length) uint8 array, as int32.

    The hash scikit-learn's FeatureHasher applies to the UTF-8 bytes of each feature.
    """
    count, length = data.shape
    h = np.zeros(count, dtype=np.uint32)
    words = data.astype(np.uint32)
    n_blocks = length // 4
    for b in range(n_blocks):
        k = (
            words[:, 4 * b]
            | (words[:, 4 * b + 1] << 8)
            | (words[:, 4 * b + 2] << 16)
            | (words[:, 4 * b + 3] << 24)
        )
        k = _rotl(k * _C1, 15) * _C2
        h = _rotl(h ^ k, 13) * np.uint32(5) + np.uint32(0xE6546B64)
    tail = length & 3
    if tail:
        k = np.zeros(count, dtype=np.uint32)
        for t in range(tail - 1, -1, -1):
            k ^= words[:, 4 * n_blocks + t] << np.uint32(8 * t)
        h ^= _rotl(k * _C1, 15) * _C2
    h ^= np.uint32(length)
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
    return h.view(np.int32)


def hashed_char_wb_counts(texts: Sequence[str], min_n: int, max_n: int, n_features: int) -> sp.csr_matrix:
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
    """
    n_texts = len(texts)
    padded = [" " + "  ".join(words) + " " if (words := t.lower().split()) else "" for t in texts]
    char_starts = np.zeros(n_texts + 1, dtype=np.int64)
    np.cumsum([len(p) for p in padded], out=char_starts[1:])
    joined = "".join(padded)
    raw = np.frombuffer(joined.encode("utf-8"), dtype=np.uint8)
    n_chars = len(joined)
    if len(raw) == n_chars:  # ASCII: one byte per character
        byte_of = np.arange(n_chars + 1, dtype=np.int64)
    else:
        byte_of = np.empty(n_chars + 1, dtype=np.int64)
        byte_of[:-1] = np.flatnonzero((raw & 0xC0) != 0x80)
        byte_of[-1] = len(raw)
    # Every character is inside one padded word " w "; its spaces come in pairs (start, end).
    is_space = raw[byte_of[:-1]] == 0x20
    spaces = np.flatnonzero(is_space)
    word_start, word_end = spaces[0::2], spaces[1::2]
    starts_here = np.zeros(n_chars, dtype=np.int64)
    starts_here[word_start] = 1
    last_char = word_end[np.cumsum(starts_here) - 1]  # last character of each character's word
    positions = np.arange(n_chars, dtype=np.int64)

    starts: list[np.ndarray] = []
    lengths: list[np.ndarray] = []
    for n in range(min_n, max_n + 1):
        first = positions[positions + n - 1 <= last_char]
        starts.append(first)
        lengths.append(np.full(len(first), n, dtype=np.int64))
    short = word_end - word_start + 1 < min_n  # padded words shorter than min_n count once, whole
    if short.any():
        starts.append(word_start[short])
        lengths.append((word_end - word_start + 1)[short])
    start = np.concatenate(starts)
    byte_start = byte_of[start]
    byte_length = byte_of[start + np.concatenate(lengths)] - byte_start

    hashes = np.empty(len(start), dtype=np.int32)
    for length in np.unique(byte_length):
        chosen = np.flatnonzero(byte_length == length)
        data = raw[byte_start[chosen, None] + np.arange(length)]
        hashes[chosen] = _murmurhash3_32(data)
    wide = hashes.astype(np.int64)
    index = np.abs(wide) % n_features
    index[wide == -(2**31)] = (2**31 - 1 - (n_features - 1)) % n_features

    row = np.searchsorted(char_starts, start, side="right") - 1
    keys, counts = np.unique(row * n_features + index, return_counts=True)
    key_row = keys // n_features
    indptr = np.zeros(n_texts + 1, dtype=np.int32)
    np.cumsum(np.bincount(key_row, minlength=n_texts), out=indptr[1:])
    return sp.csr_matrix(
        (counts.astype(np.float64), (keys % n_features).astype(np.int32), indptr),
        shape=(n_texts, n_features),
    )
