"""Pair features of (text, claim): shape, finiteness and the meaning of the main columns."""

from __future__ import annotations

import numpy as np
import pytest

from service.domain.encoding import LEXICON_NAMES, TextEncoder
from service.domain.pair_features import FEATURE_NAMES, compute_pair_features
from tests.helpers import tiny_encoder_config
from tests.test_encoding import CORPUS

CLAIMS = (
    "A meteorite left a crater in Managua.",
    "A shark attacked a surfer in Sydney.",
    "NATO expansion threatens Russia.",
)


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    """An encoder fitted on the shared tiny corpus."""
    return TextEncoder.fit(CORPUS, config=tiny_encoder_config())


def features_of(
    encoder: TextEncoder,
    texts: list[str],
    claims: tuple[str, ...] = CLAIMS,
    wording: np.ndarray | None = None,
) -> np.ndarray:
    wording = np.zeros((len(texts), 3)) if wording is None else wording
    return compute_pair_features(encoder, encoder.encode(texts), encoder.encode(list(claims)), wording)


def col(name: str) -> int:
    return FEATURE_NAMES.index(name)


def test_feature_names_are_unique_and_cover_every_lexicon() -> None:
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)
    for name in LEXICON_NAMES:
        for suffix in ("near_claim", "per_100_tokens", "in_lead", "in_claim"):
            assert f"{name}_{suffix}" in FEATURE_NAMES


def test_shape_is_texts_by_claims_by_features_and_all_finite(encoder: TextEncoder) -> None:
    texts = [CORPUS[0], "", "the of and", "zzzz qqqq", CORPUS[3] * 20, "!!!"]
    features = features_of(encoder, texts)
    assert features.shape == (len(texts), len(CLAIMS), len(FEATURE_NAMES))
    assert np.isfinite(features).all()


def test_empty_claims_and_texts_give_zero_similarity_not_nan(encoder: TextEncoder) -> None:
    features = features_of(encoder, ["", CORPUS[0]], claims=("", "the"))
    assert np.isfinite(features).all()
    for name in ("cos_word", "coverage", "bm25", "max_sentence_cos", "lead_cos", "negated_coverage"):
        np.testing.assert_array_equal(features[:, :, col(name)], 0.0)


def test_the_claim_itself_scores_one_on_similarity_columns(encoder: TextEncoder) -> None:
    features = features_of(encoder, [CLAIMS[0]])
    for name in ("cos_word", "cos_char", "coverage", "max_sentence_cos", "lead_cos"):
        assert features[0, 0, col(name)] == pytest.approx(1.0)
        assert features[0, 1, col(name)] < 0.3  # the shark claim
    assert 0 < features[0, 0, col("bm25")] <= 1.0


def test_coverage_is_the_share_of_claim_content_words_in_the_text(encoder: TextEncoder) -> None:
    # Content words of claim 0: meteorite, left, crater, managua; the text has two of them.
    features = features_of(encoder, ["The crater is near Managua, residents say."])
    assert features[0, 0, col("coverage")] == pytest.approx(2 / 4)
    assert features[0, 2, col("coverage")] == 0.0


def test_negated_coverage_counts_claim_words_after_a_negation(encoder: TextEncoder) -> None:
    plain = features_of(encoder, ["NATO expansion threatens Russia, officials said."])
    negated = features_of(encoder, ["Officials said NATO expansion did not threaten Russia at all."])
    assert plain[0, 2, col("negated_coverage")] == 0.0
    # Claim 2's known content words: nato, expansion, russia ("threatens" is not in the
    # vocabulary); only "russia" follows "not" within the window.
    assert negated[0, 2, col("negated_coverage")] == pytest.approx(1 / 3)


def test_max_sentence_and_lead_see_where_the_claim_is_restated(encoder: TextEncoder) -> None:
    filler = "Officials said residents heard a boom on Monday. Lifeguards were at the beach."
    late = f"{filler} {filler} A meteorite left a crater in Managua."
    features = features_of(encoder, [late])
    assert features[0, 0, col("max_sentence_cos")] == pytest.approx(1.0)
    assert features[0, 0, col("lead_cos")] < 0.2  # the first two sentences do not restate it


def test_lexicon_near_claim_weighs_words_in_sentences_close_to_the_claim(encoder: TextEncoder) -> None:
    near = features_of(encoder, ["The meteorite crater in Managua is a hoax. The beach was fine."])
    far = features_of(encoder, ["The meteorite crater in Managua is real. The beach shark was a hoax."])
    refuting = col("refuting_near_claim")
    assert near[0, 0, refuting] > 0.9
    assert far[0, 0, refuting] < 0.1


def test_text_and_claim_level_columns_are_broadcast(encoder: TextEncoder) -> None:
    features = features_of(encoder, ["It is a hoax and a lie.", "Confirmed."])  # 5 tokens, 2 refuting
    for text_column in ("log_text_tokens", "refuting_per_100_tokens", "refuting_in_lead"):
        assert np.ptp(features[0, :, col(text_column)]) == 0.0
    assert features[0, 0, col("refuting_per_100_tokens")] == pytest.approx(100 * 2 / 5)
    assert features[0, 0, col("log_text_tokens")] == pytest.approx(np.log1p(5))
    for claim_column in ("log_claim_tokens", "refuting_in_claim"):
        assert np.ptp(features[:, 0, col(claim_column)]) == 0.0
    assert features[0, 2, col("log_claim_tokens")] == pytest.approx(np.log1p(4))


def test_features_of_a_pair_do_not_depend_on_the_rest_of_the_batch(encoder: TextEncoder) -> None:
    alone = features_of(encoder, [CORPUS[4]], claims=(CLAIMS[2],))
    batched = features_of(encoder, [CORPUS[0], CORPUS[4], ""])
    np.testing.assert_allclose(alone[0, 0], batched[1, 2])


def test_wording_scores_are_copied_to_every_claim_of_their_text(encoder: TextEncoder) -> None:
    wording = np.array([[1.5, -2.0, 0.25], [0.0, 3.0, -1.0]])
    features = features_of(encoder, [CORPUS[0], CORPUS[1]], wording=wording)
    columns = [col(f"wording_{label}") for label in ("agree", "disagree", "discuss")]
    for k in range(len(CLAIMS)):
        np.testing.assert_array_equal(features[:, k, columns], wording)


def test_wording_scores_of_the_wrong_shape_are_refused(encoder: TextEncoder) -> None:
    with pytest.raises(ValueError, match=r"wording_scores must have shape \(2, 3\)"):
        features_of(encoder, [CORPUS[0], CORPUS[1]], wording=np.zeros((1, 3)))


def test_contrast_columns_say_how_the_text_and_the_claim_use_the_lexicons(encoder: TextEncoder) -> None:
    claim = ("A meteorite left a crater in Managua.",)
    denial = "The meteorite crater in Managua is a hoax, officials denied it and called it fake."
    plain = "The meteorite left a crater in Managua, officials said."
    features = features_of(encoder, [denial, plain], claims=claim)
    refuting_near = features[:, 0, col("refuting_near_claim")]
    # The claim has no refuting word, so the difference is the text's own count.
    np.testing.assert_allclose(features[:, 0, col("refuting_near_minus_in_claim")], refuting_near)
    assert features[0, 0, col("refuting_near_minus_in_claim")] > 0
    assert features[1, 0, col("refuting_near_minus_in_claim")] == 0
    assert features[0, 0, col("refuting_lead_minus_in_claim")] == 3  # hoax, denied, fake
    assert features[0, 0, col("refuting_presence_differs")] == 1
    assert features[1, 0, col("refuting_presence_differs")] == 0
    # A claim that itself denies: the denying text no longer contrasts with it.
    denying_claim = ("Officials denied that a meteorite left a crater in Managua.",)
    against = features_of(encoder, [denial, plain], claims=denying_claim)
    assert against[0, 0, col("refuting_lead_minus_in_claim")] == 2
    assert against[0, 0, col("refuting_presence_differs")] == 0
    assert against[1, 0, col("refuting_presence_differs")] == 1  # the claim denies, the text does not
    # Presence, not amount: one refuting word in a sentence far from the claim still counts.
    aside = "The meteorite left a crater in Managua. Elsewhere in Managua a fake painting was sold."
    far = features_of(encoder, [aside], claims=claim)
    assert 0 < far[0, 0, col("refuting_near_claim")] < 1
    assert far[0, 0, col("refuting_presence_differs")] == 1
