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
from sklearn.preprocessing import normalize

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

    def __len__(self) -> int:
        return self.word.shape[0]


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
        cleaned = [clean(t) for t in texts]

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
        word = (a.word @ b.word.T).toarray()
        char = (a.char @ b.char.T).toarray()
        return np.clip((1.0 - w) * word + w * char, 0.0, 1.0)

    # -- helpers -----------------------------------------------------------

    def _tfidf(self, counts: sp.csr_matrix) -> sp.csr_matrix:
        weighted = counts.copy()
        weighted.data = (1.0 + np.log(weighted.data)) * self._content_idf[weighted.indices]
        weighted.eliminate_zeros()
        return normalize(weighted, copy=False)

    def _char_tfidf(self, texts: Sequence[str]) -> sp.csr_matrix:
        counts = self._hasher.transform(texts).tocsr()
        counts.data = (1.0 + np.log(counts.data)) * self.char_idf[counts.indices]
        return normalize(counts, copy=False)

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
