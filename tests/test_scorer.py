"""The scorer with the shipped model and seed reference: order, ids, probabilities, similarity, warnings."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from service.domain.pair_features import FEATURE_NAMES
from service.domain.scorer import MIN_WORDS, Scorer, TextScore, UnknownReferenceError
from service.domain.stance import STANCE_LABELS, DenseNetwork, LatentSpace
from service.loaders.runtime import Runtime

ON_TOPIC = (
    "NATO expansion threatened Russia, and the Euro-Atlantic security order has failed; Russia and China "
    "are right to build a new Eurasian security architecture."
)
OFF_TOPIC = (
    "Preheat the oven, then roast the tomatoes with garlic, olive oil and basil for forty minutes "
    "before blending them into a smooth soup."
)


@pytest.fixture(scope="module")
def scorer(runtime: Runtime) -> Scorer:
    """The scorer of the shipped model and seed reference."""
    return runtime.scorer


def check_stance(label: str, scores: dict[str, float], threshold: float) -> None:
    """Four scores summing to 1, and the label the decision rule gives."""
    assert list(scores) == list(STANCE_LABELS)
    assert all(0.0 <= p <= 1.0 for p in scores.values())
    assert math.fsum(scores.values()) == pytest.approx(1.0, abs=1e-9)
    related = 1.0 - scores["unrelated"]
    if related < threshold - 1e-4:
        assert label == "unrelated"
    elif related > threshold + 1e-4:
        assert label == max(STANCE_LABELS[:3], key=lambda name: scores[name])


def check_result(result: TextScore, scorer: Scorer) -> None:
    threshold = scorer.stance_model.related_threshold
    assert 0.0 <= result.similarity <= 1.0
    if result.stance is None:  # another language: similarity only
        assert result.warnings[0].code == "language_mismatch"
        assert result.related is None and all(c.stance is None for c in result.claims)
        return
    assert result.related is not None and 0.0 <= result.related <= 1.0
    assert result.related == pytest.approx(1.0 - result.stance.scores["unrelated"], abs=2e-4)
    check_stance(result.stance.label, result.stance.scores, threshold)
    reference = scorer.reference()
    assert [c.id for c in result.claims] == [c.id for c in reference.claims]
    for claim in result.claims:
        assert 0.0 <= claim.similarity <= 1.0
        check_stance(claim.stance.label, claim.stance.scores, threshold)
    # The overall relatedness is that of the most related claim.
    assert result.related == pytest.approx(max(c.related for c in result.claims), abs=1e-4)


def test_results_follow_input_order_and_echo_ids(scorer: Scorer) -> None:
    texts = [OFF_TOPIC, ON_TOPIC, "NATO is a threat to Russia, officials in Moscow said on Monday."]
    results = scorer.score(texts, ids=["c", "a", "b"])
    assert [r.id for r in results] == ["c", "a", "b"]
    for result in results:
        check_result(result, scorer)
    reordered = scorer.score(texts[::-1], ids=["b", "a", "c"])
    by_id = {r.id: r for r in reordered}
    for result in results:
        assert by_id[result.id] == result  # a text's result does not depend on its batch


def test_default_ids_are_indices(scorer: Scorer) -> None:
    assert [r.id for r in scorer.score([ON_TOPIC, OFF_TOPIC, ON_TOPIC])] == ["0", "1", "2"]


def test_the_reference_body_itself_is_maximally_similar(scorer: Scorer) -> None:
    body = scorer.reference().reference.body
    (result,) = scorer.score([body])
    assert result.similarity >= 0.99
    assert result.stance.label != "unrelated"


def test_on_topic_text_scores_above_off_topic_text(scorer: Scorer) -> None:
    on, off = scorer.score([ON_TOPIC, OFF_TOPIC])
    assert off.similarity < 0.05
    assert on.similarity > 0.15
    assert off.stance.label == "unrelated"
    assert on.stance.label != "unrelated"
    assert on.related > 0.5 > off.related


def test_a_claim_restated_is_the_most_similar_claim(scorer: Scorer) -> None:
    (result,) = scorer.score(["NATO expansion threatens Russia's security, Moscow believes."])
    best = max(result.claims, key=lambda c: c.similarity)
    assert best.id == "nato-expansion-threat"
    assert best.stance.label != "unrelated"


def test_warnings(scorer: Scorer) -> None:
    texts = [
        ON_TOPIC,
        "NATO threatens Russia.",
        "",
        "... !!! ?",
        "Расширение НАТО угрожает безопасности России и всей Европы, считают в Москве сегодня.",
    ]
    results = scorer.score(texts)
    codes = [[w.code for w in r.warnings] for r in results]
    assert codes == [
        [],
        ["too_short"],
        ["no_words"],
        ["no_words"],
        ["language_mismatch", "many_unknown_words"],
    ]
    assert str(MIN_WORDS) in results[1].warnings[0].message
    # Another language than the reference: similarity, but no stance guess at all.
    assert results[4].language is not None and results[4].language.code == "ru"
    assert results[4].stance is None and results[4].related is None
    assert all(c.stance is None and c.related is None for c in results[4].claims)
    for result in results:
        check_result(result, scorer)


def test_a_batch_of_texts_without_words_is_scored(scorer: Scorer) -> None:
    results = scorer.score(["", "\u200b\x00", "!!!"], explain=True)
    for result in results:
        assert [w.code for w in result.warnings] == ["no_words"]
        assert result.similarity == 0.0
        assert result.evidence is not None and result.evidence.passages == ()
        check_result(result, scorer)


def test_exactly_min_words_is_not_too_short(scorer: Scorer) -> None:
    text = " ".join(
        ["NATO", "expansion", "threatens", "Russia", "and", "its", "security", "today"][:MIN_WORDS]
    )
    short = " ".join(text.split()[: MIN_WORDS - 1])
    enough, too_short = scorer.score([text, short])
    assert [w.code for w in enough.warnings] == []
    assert [w.code for w in too_short.warnings] == ["too_short"]


def test_explain_adds_evidence_only_when_asked(scorer: Scorer) -> None:
    (plain,) = scorer.score([ON_TOPIC])
    (explained,) = scorer.score([ON_TOPIC], explain=True)
    assert plain.evidence is None
    assert explained.evidence is not None and explained.evidence.passages
    assert (plain.similarity, plain.stance, plain.claims) == (
        explained.similarity,
        explained.stance,
        explained.claims,
    )


def test_unknown_reference_and_bad_ids(scorer: Scorer) -> None:
    with pytest.raises(UnknownReferenceError) as error:
        scorer.score([ON_TOPIC], reference_id="no-such-reference")
    assert str(error.value) == "no reference with id 'no-such-reference'"
    with pytest.raises(ValueError, match="2 texts but 1 ids"):
        scorer.score([ON_TOPIC, OFF_TOPIC], ids=["only-one"])
    assert scorer.score([]) == []
    assert scorer.score([ON_TOPIC], reference_id=scorer.default_reference)[0].similarity > 0


def test_scores_are_deterministic_and_finite_for_odd_inputs(scorer: Scorer) -> None:
    texts = ["NATO " * 5000, "\x00\x01\u200b" * 50, "a", "🙂" * 100, ON_TOPIC.upper()]
    first = scorer.score(texts)
    assert first == scorer.score(texts)
    for result in first:
        check_result(result, scorer)
        values = [result.similarity]
        if result.stance is not None:  # "NATO NATO …" reads as Italian ("nato": born): no stance
            values += [result.related, *result.stance.scores.values()]
        assert np.isfinite(values).all()


def test_scorer_refuses_an_unknown_default(runtime: Runtime) -> None:
    scorer = runtime.scorer
    with pytest.raises(UnknownReferenceError):
        Scorer(scorer.encoder, scorer.stance_model, scorer.references, "missing")


def test_a_text_without_words_is_unrelated_by_rule(scorer: Scorer) -> None:
    """Without a word the model has nothing to judge: unrelated with certainty, for every claim."""
    on_topic = "NATO expansion threatens Russia's security, the Kremlin says."
    no_words, with_words = scorer.score(["... !!! ???", on_topic])
    assert no_words.related == 0.0
    assert no_words.stance.label == "unrelated"
    assert no_words.stance.scores == {"agree": 0.0, "disagree": 0.0, "discuss": 0.0, "unrelated": 1.0}
    assert {c.stance.label for c in no_words.claims} == {"unrelated"}
    # The rule touches only the text without words.
    assert with_words.related > 0.5


def test_a_model_with_a_latent_space_reads_the_latent_cosine_of_text_and_claim(scorer: Scorer) -> None:
    # Stage 1 reading only the column after the shared features: P(related) = sigmoid(4 × latent cosine).
    n_terms = scorer.encoder.n_terms
    latent = LatentSpace(np.random.default_rng(0).normal(size=(6, n_terms)))
    relatedness = DenseNetwork(
        feature_indices=np.array([len(FEATURE_NAMES)]),
        mean=np.zeros(1),
        scale=np.ones(1),
        weights=(np.full((1, 1), 4.0),),
        biases=(np.zeros(1),),
    )
    model = dataclasses.replace(scorer.stance_model, relatedness=relatedness, latent=latent)
    latent_scorer = Scorer(scorer.encoder, model, scorer.references, scorer.reference().id)
    [result] = latent_scorer.score([ON_TOPIC])
    reference = scorer.reference()
    texts = scorer.encoder.encode([ON_TOPIC]).word
    cosines = latent.cosines(texts, reference.claim_vectors.word)[0]
    expected = 1.0 / (1.0 + np.exp(-4.0 * cosines))
    np.testing.assert_allclose([c.related for c in result.claims], expected, atol=1e-4)
    assert len(set(np.round(expected, 3))) > 1  # the claims differ, so the column is read per claim
