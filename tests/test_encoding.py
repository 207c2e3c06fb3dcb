"""The TF-IDF encoder on a tiny inline corpus: fitting, vector norms, stop words, n-grams, negation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse.linalg import norm as sparse_norm
from sklearn.feature_extraction.text import HashingVectorizer

from service.domain.char_hashing import hashed_char_wb_counts
from service.domain.encoding import LEXICON_NAMES, EncoderConfig, TextEncoder
from service.domain.lexicon import LEXICONS
from service.domain.text import tokenize
from tests.helpers import tiny_encoder_config

CORPUS = (
    "A meteorite crashed near the market in Managua and left a deep crater.",
    "Residents of Managua heard a boom; officials said the meteorite was real.",
    "A shark attacked a surfer at the beach in Sydney on Monday.",
    "The shark attack at the beach was denied by lifeguards, who called it a hoax.",
    "NATO expansion is a threat to Russia, officials in Moscow said.",
    "Experts said the expansion of NATO did not threaten Russia at all.",
)


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    """An encoder fitted on the six documents above, keeping every word."""
    return TextEncoder.fit(CORPUS, tiny_encoder_config())


def row_norms(matrix) -> np.ndarray:
    """L2 norm of every row of a sparse matrix."""
    return sparse_norm(matrix, axis=1)


def column(encoder: TextEncoder, term: str) -> int:
    return encoder.index[term]


def test_fit_builds_vocabulary_idf_and_corpus_statistics(encoder: TextEncoder) -> None:
    # Every corpus word is kept (word_min_df=1), most frequent first; lexicon words are always added.
    for term in ("meteorite", "managua", "shark", "nato", "the"):
        assert term in encoder.index
    for words in LEXICONS.values():
        assert words <= set(encoder.vocabulary)
    assert len(encoder.vocabulary) == len(set(encoder.vocabulary)) == len(encoder.word_idf)
    # Smooth IDF: log((1 + n) / (1 + df)) + 1; "managua" is in 2 of 6 documents, "sydney" in 1.
    assert encoder.word_idf[column(encoder, "managua")] == pytest.approx(np.log(7 / 3) + 1)
    assert encoder.word_idf[column(encoder, "sydney")] == pytest.approx(np.log(7 / 2) + 1)
    # Lexicon words absent from the corpus get the IDF of a word seen nowhere.
    assert encoder.word_idf[column(encoder, "fabricated")] == pytest.approx(np.log(7) + 1)
    assert encoder.char_idf.shape == (2**12,)
    tokens = sum(len(tokenize(d)) for d in CORPUS)
    assert encoder.avg_tokens == pytest.approx(tokens / len(CORPUS))


def test_word_min_df_drops_rare_words_but_keeps_lexicon_words() -> None:
    encoder = TextEncoder.fit(CORPUS, EncoderConfig(char_hash_bits=12, word_min_df=2))
    assert "managua" in encoder.index  # in two documents
    assert "sydney" not in encoder.index  # in one
    assert "hoax" in encoder.index  # in one, but a lexicon word


def test_fit_refuses_an_empty_corpus() -> None:
    with pytest.raises(ValueError, match="no documents"):
        TextEncoder.fit([], tiny_encoder_config())


def test_word_and_char_vectors_are_l2_normalised(encoder: TextEncoder) -> None:
    encoded = encoder.encode(["The meteorite left a crater in Managua.", "Shark! Beach! Sydney!"])
    np.testing.assert_allclose(row_norms(encoded.word), 1.0)
    np.testing.assert_allclose(row_norms(encoded.char), 1.0)
    np.testing.assert_allclose(row_norms(encoded.lead), 1.0)
    np.testing.assert_allclose(row_norms(encoded.sentence_word), 1.0)


def test_empty_and_stop_word_texts_have_zero_word_vectors(encoder: TextEncoder) -> None:
    encoded = encoder.encode(["", "the and of it was", "   "])
    np.testing.assert_array_equal(row_norms(encoded.word), 0.0)
    assert encoded.terms.nnz == 0
    np.testing.assert_array_equal(encoded.n_tokens, [0, 5, 0])
    np.testing.assert_array_equal(encoded.n_known, [0, 5, 0])
    assert encoded.sentences[0] == [] and encoded.sentences[2] == []


def test_a_batch_without_any_word_or_sentence_encodes(encoder: TextEncoder) -> None:
    encoded = encoder.encode(["", "   ", "\u200b\x00"])
    assert len(encoded) == 3
    assert encoded.word.shape == (3, encoder.n_terms) and encoded.word.nnz == 0
    assert encoded.sentence_word.shape[0] == 0
    np.testing.assert_array_equal(encoded.n_tokens, 0)
    assert encoder.encode([]).word.shape == (0, encoder.n_terms)


def test_stop_words_carry_no_weight(encoder: TextEncoder) -> None:
    encoded = encoder.encode(["The the the meteorite was in the crater and it was at Managua."])
    word = encoded.word.toarray()[0]
    for stop_word in ("the", "was", "in", "and", "it", "at"):
        assert word[column(encoder, stop_word)] == 0.0
        assert encoded.terms[0, column(encoder, stop_word)] == 0.0
        assert encoded.bm25[0, column(encoder, stop_word)] == 0.0
    assert word[column(encoder, "meteorite")] > 0
    assert word[column(encoder, "crater")] > 0
    # Stop words still count as words the vocabulary knows.
    assert encoded.n_tokens[0] == 13 and encoded.n_known[0] == 13


def test_term_presence_counts_and_unknown_words(encoder: TextEncoder) -> None:
    encoded = encoder.encode(["Meteorite meteorite METEORITE zyxwvut qwertyuiop crater"])
    assert encoded.terms[0, column(encoder, "meteorite")] == 1.0
    assert encoded.terms[0, column(encoder, "crater")] == 1.0
    assert encoded.terms.nnz == 2
    assert encoded.n_tokens[0] == 6
    assert encoded.n_known[0] == 4


def test_term_frequency_saturates(encoder: TextEncoder) -> None:
    k = encoder.config.tf_saturation
    idf = encoder.word_idf
    ratios = []
    for tf in (4, 40):
        # Function words between the repeats: a sentence, not a keyword list.
        encoded = encoder.encode([" ".join(["the meteorite"] * tf) + " and the crater"]).word.toarray()[0]
        expected = (
            tf * (k + 1) / (tf + k) * idf[column(encoder, "meteorite")] / idf[column(encoder, "crater")]
        )
        ratios.append(encoded[column(encoder, "meteorite")] / encoded[column(encoder, "crater")])
        assert ratios[-1] == pytest.approx(expected)
    # Ten times the repetition adds little, and never more than k + 1 times one occurrence.
    assert ratios[1] / ratios[0] < 1.3
    assert ratios[1] < (k + 1) * idf[column(encoder, "meteorite")] / idf[column(encoder, "crater")]


def test_keyword_lists_and_repeated_sentences_count_less(encoder: TextEncoder) -> None:
    prose = "A meteorite hit the crater near the town, and residents heard it at night."
    tags = "Tags: meteorite, crater, Managua, shark, beach, surfboards."
    encoded = encoder.encode([prose, prose + " " + tags, prose + " " + prose + " " + prose, tags])
    similarity = (encoded.word @ encoded.word[0].T).toarray().ravel()
    assert similarity[2] == pytest.approx(1.0)  # repeats count once: the same direction and norm
    n_prose = encoded.n_tokens[0]
    assert encoded.n_listed.tolist() == [0, 7, 2 * n_prose, 7]
    # The tag line's words are in the text's norm but count a tenth in its vector.
    assert np.linalg.norm(encoded.word[3].toarray()) == pytest.approx(encoder.config.list_weight)
    assert 0 < similarity[1] < 1.0


def test_a_sentence_in_another_language_is_not_taken_for_a_keyword_list(encoder: TextEncoder) -> None:
    russian = "Расширение НАТО угрожает безопасности России и всей Европы считают сегодня в Москве эксперты"
    encoded = encoder.encode([russian])
    assert encoded.n_listed.tolist() == [0]


def test_char_ngrams_match_inflections_the_vocabulary_does_not_know(encoder: TextEncoder) -> None:
    known, inflected, other = "meteorite crater", "meteorites craters", "surfboards lifeguarding"
    encoded = encoder.encode([known, inflected, other])
    word = (encoded.word @ encoded.word.T).toarray()
    char = (encoded.char @ encoded.char.T).toarray()
    assert word[0, 1] == 0.0  # the plurals are not in the vocabulary
    assert char[0, 1] > 0.5  # but share most character n-grams
    assert char[0, 2] < 0.1
    assert encoded.char.shape == (3, 2**12)


def test_negation_marks_content_words_within_the_window_of_the_same_sentence(encoder: TextEncoder) -> None:
    # Tokens: officials(0) did(1) not(2) confirm(3) the(4) meteorite(5) crater(6) in(7) managua(8) ...
    text = "Officials did not confirm the meteorite crater in Managua. Shark attack at the beach."
    encoded = encoder.encode([text])
    negated = {encoder.vocabulary[j] for j in encoded.negated[0].indices}
    # Window of 4 tokens after "not": confirm, the (stop word), meteorite, crater; not managua,
    # and never across the sentence boundary.
    assert negated == {"confirm", "meteorite", "crater"}


def test_negation_window_is_configurable(encoder: TextEncoder) -> None:
    narrow = TextEncoder(
        EncoderConfig(**{**encoder.config.to_dict(), "negation_window": 1}),
        encoder.vocabulary,
        encoder.word_idf,
        encoder.char_idf,
        encoder.avg_tokens,
    )
    encoded = narrow.encode(["Officials did not confirm the meteorite crater."])
    assert {narrow.vocabulary[j] for j in encoded.negated[0].indices} == {"confirm"}


def test_no_negation_no_negated_terms(encoder: TextEncoder) -> None:
    encoded = encoder.encode(["Officials confirmed the meteorite crater in Managua.", ""])
    assert encoded.negated.nnz == 0


def test_lexicon_counts_per_text_and_in_the_lead(encoder: TextEncoder) -> None:
    text = "Filler sentence one. Filler sentence two. It was a hoax, they denied it and said it is fake."
    encoded = encoder.encode([text])
    counts = dict(zip(LEXICON_NAMES, encoded.lexicon[0], strict=True))
    assert counts["refuting"] == 3  # hoax, denied, fake
    assert counts["hedging"] == 1  # said
    lead = dict(zip(LEXICON_NAMES, encoded.lead_lexicon[0], strict=True))
    assert lead["refuting"] == 0  # the lead is the first two sentences


def test_sentences_and_owners_follow_input_order(encoder: TextEncoder) -> None:
    texts = ["One. Two.", "", "Three! Four? Five."]
    encoded = encoder.encode(texts)
    assert [[s.text for s in spans] for spans in encoded.sentences] == [
        ["One.", "Two."],
        [],
        ["Three!", "Four?", "Five."],
    ]
    np.testing.assert_array_equal(encoded.sentence_owner, [0, 0, 2, 2, 2])
    assert encoded.sentence_word.shape[0] == 5
    for text, spans in zip(texts, encoded.sentences, strict=True):
        for span in spans:
            assert text[span.start : span.end] == span.text


def test_encoding_a_text_does_not_depend_on_its_batch(encoder: TextEncoder) -> None:
    text = "A meteorite hit Managua; officials did not deny it."
    alone = encoder.encode([text])
    batched = encoder.encode(["Shark attack.", text, ""])
    for name in ("word", "char", "lead", "terms", "bm25", "negated"):
        np.testing.assert_allclose(getattr(alone, name).toarray()[0], getattr(batched, name).toarray()[1])
    np.testing.assert_allclose(alone.lexicon[0], batched.lexicon[1])


def test_similarity_is_a_cosine_in_unit_range(encoder: TextEncoder) -> None:
    a = encoder.encode([CORPUS[0], CORPUS[2], ""])
    b = encoder.encode([CORPUS[0], CORPUS[3]])
    sim = encoder.similarity(a, b)
    assert sim.shape == (3, 2)
    assert sim[0, 0] == pytest.approx(1.0)
    assert sim[1, 1] > sim[0, 1]  # shark text is closer to the shark text
    assert np.all((sim >= 0) & (sim <= 1))
    np.testing.assert_array_equal(sim[2], 0.0)


def test_constructor_checks_array_sizes(encoder: TextEncoder) -> None:
    config = encoder.config
    with pytest.raises(ValueError, match="word_idf"):
        TextEncoder(config, encoder.vocabulary, encoder.word_idf[:-1], encoder.char_idf, 1.0)
    with pytest.raises(ValueError, match="char_idf"):
        TextEncoder(config, encoder.vocabulary, encoder.word_idf, encoder.char_idf[:-1], 1.0)
    with pytest.raises(ValueError, match="duplicate"):
        TextEncoder(config, ["a", "a"], np.ones(2), encoder.char_idf, 1.0)


def test_config_round_trips_and_refuses_unknown_settings() -> None:
    config = tiny_encoder_config()
    assert EncoderConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown encoder settings"):
        EncoderConfig.from_dict({**config.to_dict(), "surprise": 1})


@settings(max_examples=300, deadline=None, database=None)
@given(
    texts=st.lists(st.text(st.characters(exclude_categories=("Cs",)), max_size=60), min_size=1, max_size=4),
    n_min=st.integers(1, 4),
    extra=st.integers(0, 2),
    bits=st.sampled_from([4, 10, 20]),
)
def test_the_fast_char_hasher_equals_scikit_learns(
    texts: list[str], n_min: int, extra: int, bits: int
) -> None:
    """Training fits the character IDF with scikit-learn's HashingVectorizer and scoring counts with
    our array version: the same columns and counts for any Unicode text, or weights land on the
    wrong columns silently."""
    ours = hashed_char_wb_counts(texts, n_min, n_min + extra, 2**bits)
    theirs = HashingVectorizer(
        analyzer="char_wb",
        ngram_range=(n_min, n_min + extra),
        n_features=2**bits,
        alternate_sign=False,
        norm=None,
        lowercase=True,
    ).transform(texts)
    theirs.sort_indices()
    assert ours.shape == theirs.shape
    assert ours.indptr.tolist() == theirs.indptr.tolist()
    assert ours.indices.tolist() == theirs.indices.tolist()
    assert ours.data.tolist() == theirs.data.tolist()


# Words from any Unicode letters, digits, punctuation or symbols, separated by every kind of
# whitespace str.split() knows: repeated words give counts above 1 at any number of columns.
_WHITESPACE = st.sampled_from(
    [" ", "  ", "\t", "\n", "\r\n", "\x0b", "\x0c", "\x1c", "\x85", "\xa0", "\u2028", "\u3000"]
)
_WORD = st.text(st.characters(exclude_categories=("Cs", "Zs", "Zl", "Zp", "Cc")), min_size=1, max_size=9)


@st.composite
def _sentences(draw: st.DrawFn) -> str:
    words = draw(st.lists(_WORD, min_size=0, max_size=12))
    words += draw(st.lists(st.sampled_from(words), max_size=6)) if words else []
    gaps = draw(st.lists(_WHITESPACE, min_size=len(words) + 1, max_size=len(words) + 1))
    return "".join(gap + word for gap, word in zip(gaps, [*words, ""], strict=True))


@settings(max_examples=200, deadline=None, database=None)
@given(
    texts=st.lists(_sentences(), min_size=1, max_size=6),
    data=st.data(),
    bits=st.sampled_from([6, EncoderConfig().char_hash_bits]),
)
def test_the_fast_char_hasher_sums_rows_as_scikit_learn_counts(
    texts: list[str], data: st.DataObject, bits: int
) -> None:
    """The scoring path: sentences summed into the rows of their texts (``rows``/``n_rows``), with
    the model's n-gram range, give scikit-learn's counts summed the same way, column for column."""
    config = EncoderConfig()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(texts)), max_size=3)))
    rows = np.searchsorted(np.asarray(cuts), np.arange(len(texts)), side="right")
    n_rows = int(rows[-1]) + 1 + data.draw(st.integers(0, 2))  # trailing rows without sentences
    ours = hashed_char_wb_counts(
        texts, config.char_ngram_min, config.char_ngram_max, 2**bits, rows=rows, n_rows=n_rows
    )
    per_text = HashingVectorizer(
        analyzer="char_wb",
        ngram_range=(config.char_ngram_min, config.char_ngram_max),
        n_features=2**bits,
        alternate_sign=False,
        norm=None,
        lowercase=True,
    ).transform(texts)
    owner = sp.csr_matrix((np.ones(len(texts)), (rows, np.arange(len(texts)))), shape=(n_rows, len(texts)))
    theirs = (owner @ per_text).tocsr()
    theirs.sum_duplicates()
    theirs.sort_indices()
    theirs.eliminate_zeros()
    assert ours.shape == theirs.shape
    assert ours.indptr.tolist() == theirs.indptr.tolist()
    assert ours.indices.tolist() == theirs.indices.tolist()
    assert ours.data.tolist() == theirs.data.tolist()


def test_the_fast_char_hasher_refuses_lone_surrogates_as_scikit_learn_does() -> None:
    """Its caller falls back to scikit-learn on this error, so both must raise it."""
    with pytest.raises(UnicodeEncodeError):
        hashed_char_wb_counts(["NATO \ud800 text"], 3, 5, 2**10)
    with pytest.raises(UnicodeEncodeError):
        HashingVectorizer(analyzer="char_wb", ngram_range=(3, 5), n_features=2**10).transform(
            ["NATO \ud800 text"]
        )
