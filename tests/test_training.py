"""Training on tiny inline FNC-format corpora: reading, story splits, the FNC score, reproducibility."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jinja2
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from service.config import DEFAULT_MODEL_DIR, DEFAULT_SEEDS_DIR
from service.domain.pair_features import FEATURE_NAMES, compute_pair_features
from service.domain.stance import STANCE_LABELS, DenseNetwork, TreeEnsemble
from service.loaders.artifacts import ARRAYS_FILE, CARD_FILE, CARD_MARKDOWN_FILE, ENCODER_FILE, load_model
from service.training.fnc import (
    DataFormatError,
    PairSet,
    domain_of_body,
    evaluation_report,
    fnc_score,
    join_domains,
    read_pairs,
    story_of,
    story_split,
)
from service.training.model_card import render_model_card
from service.training.pipeline import predict_pairs, train, validate
from service.training.trainer import (
    RELATEDNESS_FEATURES,
    WORDING_COLUMNS,
    TrainingConfig,
    augment,
    fit_encoder,
    fit_latent_space,
    fit_model,
    fit_stance_model,
    fit_wording_model,
    pair_feature_matrix,
    stance_sample_weights,
    with_hard_negatives,
    with_short_versions,
)
from tests.helpers import (
    TinyCorpus,
    tiny_corpus,
    tiny_training_config,
    train_tiny_model,
    write_fnc_csvs,
)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> PairSet:
    """The tiny corpus, written as CSV and read back."""
    stances, bodies = write_fnc_csvs(tmp_path_factory.mktemp("fnc"))
    return read_pairs(stances, bodies, require_labels=True)


# -- reading -------------------------------------------------------------------


def test_read_pairs_keeps_file_order_and_joins_bodies(pairs: PairSet) -> None:
    corpus = tiny_corpus()
    assert len(pairs) == len(corpus.rows)
    assert list(zip(pairs.headlines, pairs.body_ids, pairs.stances, strict=True)) == corpus.rows
    assert pairs.bodies == corpus.bodies
    assert set(pairs.stances) == set(STANCE_LABELS)


def test_read_pairs_without_stance_column(tmp_path: Path) -> None:
    stances, bodies = write_fnc_csvs(tmp_path, stance_column=False)
    unlabelled = read_pairs(stances, bodies)
    assert unlabelled.stances is None and len(unlabelled) == len(tiny_corpus().rows)
    with pytest.raises(DataFormatError, match=rf"{stances}: a 'Stance' column is needed"):
        read_pairs(stances, bodies, require_labels=True)


def test_read_pairs_errors_name_the_file_and_row(tmp_path: Path) -> None:
    corpus = tiny_corpus(2)
    bad_body = TinyCorpus([*corpus.rows[:2], ("Headline", "999", "agree")], corpus.bodies)
    stances, bodies = write_fnc_csvs(tmp_path / "a", bad_body)
    with pytest.raises(DataFormatError, match=rf"{stances}, row 4: Body ID '999' is not in {bodies}"):
        read_pairs(stances, bodies)

    bad_label = TinyCorpus([corpus.rows[0], ("Headline", corpus.rows[0][1], "maybe")], corpus.bodies)
    stances, bodies = write_fnc_csvs(tmp_path / "b", bad_label)
    with pytest.raises(DataFormatError, match=rf"{stances}, row 3: unknown Stance 'maybe'"):
        read_pairs(stances, bodies)

    stances, bodies = write_fnc_csvs(tmp_path / "c", corpus)
    bodies.write_text("Body,text\n1,x\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=rf"{bodies}: missing column\(s\) Body ID, articleBody"):
        read_pairs(stances, bodies)
    with pytest.raises(DataFormatError, match=rf"{tmp_path / 'nope.csv'}: cannot be read"):
        read_pairs(stances, tmp_path / "nope.csv")


def test_read_pairs_refuses_files_that_are_not_utf8_and_accepts_a_bom(tmp_path: Path) -> None:
    stances, bodies = write_fnc_csvs(tmp_path, tiny_corpus(2))
    bodies.write_bytes(bodies.read_bytes().replace(b"Managua", "Managu\xe1".encode("latin-1")))
    with pytest.raises(DataFormatError, match=rf"{bodies}: not UTF-8 text \(invalid byte at offset \d+\)"):
        read_pairs(stances, bodies)
    bodies.write_bytes(
        b"\xef\xbb\xbf" + bodies.read_bytes().replace("Managu\xe1".encode("latin-1"), b"Managua")
    )
    stances.write_bytes(b"\xef\xbb\xbf" + stances.read_bytes())
    assert read_pairs(stances, bodies).bodies == tiny_corpus(2).bodies


def test_read_pairs_can_ignore_a_stance_column(tmp_path: Path) -> None:
    corpus = tiny_corpus(2)
    blank = TinyCorpus([(h, b, "") for h, b, _ in corpus.rows], corpus.bodies)
    stances, bodies = write_fnc_csvs(tmp_path, blank)
    with pytest.raises(DataFormatError, match="unknown Stance ''"):
        read_pairs(stances, bodies)
    pairs = read_pairs(stances, bodies, ignore_labels=True)
    assert pairs.stances is None and pairs.headlines == [h for h, _, _ in corpus.rows]


# -- stories and splits --------------------------------------------------------


def test_stories_are_connected_components_of_related_pairs() -> None:
    pairs = PairSet(
        headlines=["h1", "h2", "h2", "h3", "h1"],
        body_ids=["b1", "b1", "b2", "b3", "b3"],
        bodies={"b1": "", "b2": "", "b3": "", "b4": ""},
        stances=["agree", "discuss", "disagree", "agree", "unrelated"],
    )
    story = story_of(pairs)
    # h1-b1-h2-b2 are one story through related pairs; h3-b3 another (h1-b3 is unrelated); b4 alone.
    assert story["h:h1"] == story["b:b1"] == story["h:h2"] == story["b:b2"]
    assert story["h:h3"] == story["b:b3"] != story["h:h1"]
    assert story["b:b4"] not in {story["h:h1"], story["h:h3"]}
    assert len(set(story.values())) == 3


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_story_split_keeps_held_out_stories_off_the_training_side(pairs: PairSet, seed: int) -> None:
    train, validation = story_split(pairs, holdout=0.3, seed=seed)
    assert train and validation
    assert not set(train) & set(validation)
    story = story_of(pairs)
    held_out = {story["h:" + pairs.headlines[r]] for r in validation}
    assert len(held_out) == round(0.3 * len(set(story.values())))
    for r in train:
        assert story["h:" + pairs.headlines[r]] not in held_out
        assert story["b:" + pairs.body_ids[r]] not in held_out
    train_headlines = {pairs.headlines[r] for r in train}
    train_bodies = {pairs.body_ids[r] for r in train}
    assert not train_headlines & {pairs.headlines[r] for r in validation}
    assert not train_bodies & {b for b, s in ((b, story["b:" + b]) for b in pairs.bodies) if s in held_out}
    # Every row is used once, except those pairing a kept headline with a held-out body.
    dropped = set(range(len(pairs))) - set(train) - set(validation)
    for r in dropped:
        assert story["h:" + pairs.headlines[r]] not in held_out
        assert story["b:" + pairs.body_ids[r]] in held_out
    assert story_split(pairs, holdout=0.3, seed=seed) == (train, validation)


def arc_like_pairs(n_claims: int = 10, comments_per_claim: int = 3) -> PairSet:
    """Debate claims with comments, as ARC has them: every comment is related to exactly one
    claim, and each claim is also paired (unrelated) with comments written about other claims."""
    headlines, body_ids, stances, bodies = [], [], [], {}
    labels = ("agree", "disagree", "discuss")
    for c in range(n_claims):
        for k in range(comments_per_claim):
            body = f"c{c}-{k}"
            bodies[body] = f"comment {k} on claim {c}"
            headlines.append(f"claim {c}")
            body_ids.append(body)
            stances.append(labels[k % 3])
        for other in ((c + 1) % n_claims, (c + 3) % n_claims):
            headlines.append(f"claim {c}")
            body_ids.append(f"c{other}-0")
            stances.append("unrelated")
    return PairSet(headlines, body_ids, bodies, stances)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_claim_split_of_arc_holds_out_whole_claims_and_every_comment_on_them(
    pairs: PairSet, seed: int
) -> None:
    arc = arc_like_pairs()
    joined = join_domains([("fnc-1", pairs), ("arc", arc)])
    domains = ("fnc-1", "arc")
    train, validation = story_split(joined, holdout=0.2, seed=seed, domains=domains)
    claim_of_comment = {
        f"arc:{b}": h
        for h, b, s in zip(arc.headlines, arc.body_ids, arc.stances, strict=True)
        if s != "unrelated"
    }
    held_claims = {
        joined.headlines[r] for r in validation if domain_of_body(joined.body_ids[r], domains) == "arc"
    }
    # 20% of each domain's stories: 2 of ARC's 10 claims, however many FNC-1 stories there are.
    assert len(held_claims) == 2
    assert {domain_of_body(joined.body_ids[r], domains) for r in validation} == {"fnc-1", "arc"}
    # Every pair of a held-out claim is validated, its related comments included ...
    for r, headline in enumerate(joined.headlines):
        if headline in held_claims:
            assert r in validation
    # ... and no training pair has a held-out claim or a comment written about one, not even
    # as the unrelated body of a kept claim.
    for r in train:
        assert joined.headlines[r] not in held_claims
        if joined.body_ids[r] in claim_of_comment:
            assert claim_of_comment[joined.body_ids[r]] not in held_claims
    dropped = set(range(len(joined))) - set(train) - set(validation)
    dropped = {r for r in dropped if domain_of_body(joined.body_ids[r], domains) == "arc"}
    assert dropped, "kept claims paired with held-out claims' comments must be dropped"
    for r in dropped:
        assert claim_of_comment[joined.body_ids[r]] in held_claims


def test_story_split_of_one_corpus_is_unchanged_by_the_domain_names(pairs: PairSet) -> None:
    assert story_split(pairs, 0.2, 3, domains=("fnc-1", "arc")) == story_split(pairs, 0.2, 3)


def test_join_domains_keeps_the_first_domains_ids_and_prefixes_the_others(pairs: PairSet) -> None:
    arc = arc_like_pairs(3, 3)
    joined = join_domains([("fnc-1", pairs), ("arc", arc)])
    assert joined.body_ids[: len(pairs)] == pairs.body_ids
    assert joined.body_ids[len(pairs) :] == [f"arc:{b}" for b in arc.body_ids]
    assert joined.stances == pairs.stances + arc.stances
    assert joined.bodies["arc:c1-2"] == arc.bodies["c1-2"]
    assert [domain_of_body(b, ("fnc-1", "arc")) for b in ("1", "arc:c0-0", "arcade")] == [
        "fnc-1",
        "arc",
        "fnc-1",
    ]
    clash = PairSet(["h"], ["arc:1"], {"arc:1": "x"}, ["agree"])
    with pytest.raises(DataFormatError, match="'arc:1' looks like another domain's id"):
        join_domains([("fnc-1", clash), ("arc", arc)])


# -- the FNC score and the report ----------------------------------------------


@pytest.mark.parametrize(
    ("truth", "predicted", "expected"),
    [
        (["agree", "unrelated"], ["agree", "unrelated"], 100.0),
        (["agree", "unrelated"], ["discuss", "unrelated"], 100 * (0.25 + 0.25) / 1.25),
        (["agree"], ["unrelated"], 0.0),
        (["unrelated"], ["agree"], 0.0),
        (["unrelated", "unrelated"], ["unrelated", "discuss"], 50.0),
        (
            ["disagree", "discuss", "unrelated", "unrelated"],
            ["disagree", "agree", "agree", "unrelated"],
            100 * (1.0 + 0.25 + 0.0 + 0.25) / 2.5,
        ),
        ([], [], 0.0),
    ],
)
def test_fnc_score_on_hand_computed_cases(truth: list[str], predicted: list[str], expected: float) -> None:
    assert fnc_score(truth, predicted) == pytest.approx(expected)


def test_fnc_score_needs_aligned_lists() -> None:
    with pytest.raises(ValueError):
        fnc_score(["agree"], ["agree", "agree"])


def test_evaluation_report_on_a_hand_computed_case() -> None:
    truth = ["agree", "agree", "disagree", "discuss", "unrelated", "unrelated"]
    predicted = ["agree", "discuss", "disagree", "discuss", "unrelated", "agree"]
    report = evaluation_report(truth, predicted)
    assert report["pairs"] == 6
    assert report["accuracy"] == pytest.approx(4 / 6, abs=1e-4)
    # Score: agree 1 + related mismatch 0.25 + disagree 1 + discuss 1 + unrelated 0.25 + 0 = 3.5 of 4.5.
    assert report["fnc_score"] == pytest.approx(round(100 * 3.5 / 4.5, 2))
    per_class = report["per_class"]
    assert per_class["agree"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert per_class["disagree"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    assert per_class["discuss"] == {"precision": 0.5, "recall": 1.0, "f1": 0.6667, "support": 1}
    assert per_class["unrelated"] == {"precision": 1.0, "recall": 0.5, "f1": 0.6667, "support": 2}
    assert report["macro_f1"] == pytest.approx((0.5 + 1.0 + 0.6667 + 0.6667) / 4, abs=1e-4)
    assert report["confusion"]["labels"] == list(STANCE_LABELS)
    assert report["confusion"]["matrix"] == [[1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 1]]
    json.dumps(report)  # plain JSON types only


# -- features and augmentation -------------------------------------------------


def test_pair_feature_matrix_rows_follow_the_pairs_whatever_the_chunking(pairs: PairSet) -> None:
    encoder = fit_encoder(pairs, tiny_training_config().encoder)
    wording, _ = fit_wording_model(encoder, pairs, tiny_training_config())
    matrix = pair_feature_matrix(encoder, pairs, wording)
    assert matrix.shape == (len(pairs), len(FEATURE_NAMES))
    np.testing.assert_allclose(pair_feature_matrix(encoder, pairs, wording, chunk=3), matrix)
    for r in (0, 7, len(pairs) - 1):
        body = encoder.encode([pairs.bodies[pairs.body_ids[r]]])
        single = compute_pair_features(
            encoder, body, encoder.encode([pairs.headlines[r]]), wording.scores(body.word)
        )
        np.testing.assert_allclose(matrix[r], single[0, 0], atol=1e-12)
    assert np.abs(matrix[:, WORDING_COLUMNS]).sum() > 0
    # Without a wording model the wording columns are 0 and nothing else changes.
    without = pair_feature_matrix(encoder, pairs)
    np.testing.assert_array_equal(without[:, WORDING_COLUMNS], 0.0)
    others = np.setdiff1d(np.arange(len(FEATURE_NAMES)), WORDING_COLUMNS)
    np.testing.assert_array_equal(without[:, others], matrix[:, others])


def test_wording_scores_of_a_story_never_come_from_its_own_labels(pairs: PairSet) -> None:
    """Scores of a story's related rows stay the same whatever that story's labels say.

    On the augmented pairs, as in training: a short version keeps its headline,
    so it is scored with the rest of its story.
    """
    config = tiny_training_config()
    encoder = fit_encoder(pairs, config.encoder)
    augmented = augment(pairs, encoder, config)
    _, scores = fit_wording_model(encoder, augmented, config)
    story = story_of(augmented)
    target = story["h:" + augmented.headlines[0]]
    rows = [
        r
        for r, (h, s) in enumerate(zip(augmented.headlines, augmented.stances, strict=True))
        if story["h:" + h] == target and s != "unrelated"
    ]
    assert any(augmented.body_ids[r].endswith("#lead") for r in rows)
    swap = {"agree": "disagree", "disagree": "agree"}
    relabelled = dataclasses.replace(
        augmented,
        stances=[swap.get(s, s) if r in rows else s for r, s in enumerate(augmented.stances)],
    )
    final, swapped = fit_wording_model(encoder, relabelled, config)
    np.testing.assert_allclose(swapped[rows], scores[rows], atol=1e-12)
    others = [r for r in range(len(augmented)) if r not in rows and augmented.stances[r] != "unrelated"]
    assert not np.allclose(swapped[others], scores[others])  # the swap reached the other folds
    # Unrelated rows (read by no stage) get the final model's scores.
    unrelated = [r for r, s in enumerate(relabelled.stances) if s == "unrelated"]
    bodies = encoder.encode([relabelled.bodies[relabelled.body_ids[r]] for r in unrelated]).word
    np.testing.assert_allclose(swapped[unrelated], final.scores(bodies), atol=1e-12)
    # The final model saw every story: in sample, bodies lean towards their own label.
    related = [r for r, s in enumerate(relabelled.stances) if s != "unrelated"]
    body_vectors = encoder.encode([relabelled.bodies[relabelled.body_ids[r]] for r in related]).word
    predicted = final.scores(body_vectors).argmax(axis=1)
    truth = [("agree", "disagree", "discuss").index(relabelled.stances[r]) for r in related]
    assert np.mean(predicted == np.array(truth)) > 0.8


def test_no_stage_one_feature_comes_from_the_wording_model() -> None:
    """Unrelated training rows carry in-sample wording scores: stage 1 must never read them."""
    assert not set(WORDING_COLUMNS) & {FEATURE_NAMES.index(name) for name in RELATEDNESS_FEATURES}


def test_the_wording_model_needs_two_stories(pairs: PairSet) -> None:
    story = story_of(pairs)
    first = story["h:" + pairs.headlines[0]]
    one_story = pairs.subset([r for r, h in enumerate(pairs.headlines) if story["h:" + h] == first])
    config = tiny_training_config()
    with pytest.raises(ValueError, match="at least 2 stories"):
        fit_wording_model(fit_encoder(one_story, config.encoder), one_story, config)


def test_fit_encoder_sees_only_the_given_pairs(pairs: PairSet) -> None:
    train, _ = story_split(pairs, holdout=0.3, seed=0)
    encoder = fit_encoder(pairs.subset(train), tiny_training_config().encoder)
    _, validation = story_split(pairs, holdout=0.3, seed=0)
    held_out_words = {w.lower() for r in validation for w in pairs.headlines[r].split()[:1]}
    assert not held_out_words & set(encoder.vocabulary)  # each story's object word is its own


@pytest.mark.parametrize(("by_word", "by_char"), [(1, 0), (0, 1), (1, 1), (2, 1)])
def test_hard_negatives_come_from_other_stories_and_are_unrelated(
    pairs: PairSet, by_word: int, by_char: int
) -> None:
    encoder = fit_encoder(pairs, tiny_training_config().encoder)
    augmented = with_hard_negatives(pairs, encoder, per_headline=by_word, char_per_headline=by_char)
    story = story_of(pairs)
    extra = range(len(pairs), len(augmented))
    assert augmented.headlines[: len(pairs)] == pairs.headlines
    original = set(zip(pairs.headlines, pairs.body_ids, strict=True))
    added = [(augmented.headlines[r], augmented.body_ids[r]) for r in extra]
    assert len(set(added)) == len(added)  # no pair added twice
    for r, (headline, body_id) in zip(extra, added, strict=True):
        assert augmented.stances[r] == "unrelated"
        assert story["h:" + headline] != story["b:" + body_id]
        assert (headline, body_id) not in original
    # Every headline of the tiny corpus shares words with bodies of other stories.
    per_headline = {h: sum(1 for a, _ in added if a == h) for h in set(pairs.headlines)}
    assert set(per_headline.values()) == {by_word + by_char}
    # The first by_word of each headline are its closest other-story bodies by word
    # cosine, the next by_char its closest by character n-gram cosine among the rest.
    body_ids = list(pairs.bodies)
    encoded_bodies = encoder.encode([pairs.bodies[b] for b in body_ids])
    for headline in set(pairs.headlines):
        chosen = [b for h, b in added if h == headline]
        encoded_headline = encoder.encode([headline])
        candidates = [
            j
            for j, b in enumerate(body_ids)
            if story["b:" + b] != story["h:" + headline] and (headline, b) not in original
        ]
        for representation, picked in (("word", chosen[:by_word]), ("char", chosen[by_word:])):
            similarity = (
                getattr(encoded_headline, representation) @ getattr(encoded_bodies, representation).T
            ).toarray()[0]
            ranked = [body_ids[j] for j in sorted(candidates, key=lambda j: -similarity[j])]
            ranked = [b for b in ranked if representation == "word" or b not in chosen[:by_word]]
            assert picked == ranked[: len(picked)], (headline, representation)


def test_short_versions_cut_bodies_to_their_lead_and_keep_labels(pairs: PairSet) -> None:
    augmented = with_short_versions(pairs, seed=0)
    extra = range(len(pairs), len(augmented))
    assert len(extra) > 0
    for r in extra:
        short_id = augmented.body_ids[r]
        original_id = short_id.removesuffix("#lead")
        assert short_id.endswith("#lead")
        assert pairs.bodies[original_id].startswith(augmented.bodies[short_id])
        assert len(augmented.bodies[short_id]) < len(pairs.bodies[original_id])
    originals = {(h, b): s for h, b, s in zip(pairs.headlines, pairs.body_ids, pairs.stances, strict=True)}
    for r in extra:
        key = (augmented.headlines[r], augmented.body_ids[r].removesuffix("#lead"))
        assert augmented.stances[r] == originals[key]


def test_stance_model_needs_every_related_class(pairs: PairSet) -> None:
    encoder = fit_encoder(pairs, tiny_training_config().encoder)
    keep = [r for r, s in enumerate(pairs.stances) if s != "disagree"]
    subset = pairs.subset(keep)
    config = dataclasses.replace(tiny_training_config(), stance_kind="logistic")
    with pytest.raises(
        ValueError, match=r"wording model's training rows lack a related class: saw \['agree', 'discuss'\]"
    ):
        fit_model(encoder, subset, config)
    with pytest.raises(
        ValueError, match=r"stance stage's training rows lack a related class: saw \['agree', 'discuss'\]"
    ):
        fit_stance_model(pair_feature_matrix(encoder, subset), subset.stances, config)


def test_stance_weights_balance_the_classes_within_each_corpus() -> None:
    # Corpus a: 6 agree, 2 disagree, 4 discuss; corpus b: 1 agree, 6 disagree, 1 discuss.
    labels = np.array([0] * 6 + [1] * 2 + [2] * 4 + [0] + [1] * 6 + [2])
    domains = ["a"] * 12 + ["b"] * 8
    weights = stance_sample_weights(labels, 1.0, domains)
    for name, size in (("a", 12), ("b", 8)):
        rows = np.array(domains) == name
        # Fully balanced (power 1): each class of a corpus weighs a third of the corpus's rows.
        for label in range(3):
            assert weights[rows & (labels == label)].sum() == pytest.approx(size / 3)
    # Over all rows, b's many disagreeing rows would have made a's rare ones weigh less.
    pooled = stance_sample_weights(labels, 1.0)
    assert weights[6] == pytest.approx(12 / (3 * 2)) and pooled[6] == pytest.approx(20 / (3 * 8))
    # One corpus: the same weights as over all rows; the power still applies.
    np.testing.assert_allclose(
        stance_sample_weights(labels, 0.75, ["a"] * 20), stance_sample_weights(labels, 0.75)
    )
    with pytest.raises(ValueError, match="domains has 3 entries for 20 labels"):
        stance_sample_weights(labels, 1.0, ["a", "b", "a"])


def test_fit_model_balances_stage_two_within_each_corpus_of_a_joined_set(pairs: PairSet) -> None:
    joined = join_domains([("fnc-1", pairs), ("arc", arc_like_pairs(6, 4))])
    pooled_config = dataclasses.replace(tiny_training_config(), stance_kind="logistic")
    assert pooled_config.class_weights_per_domain is False  # the shipped model's recipe
    config = dataclasses.replace(pooled_config, class_weights_per_domain=True)

    def stance_weights(corpus: PairSet, training: TrainingConfig) -> np.ndarray:
        with threadpool_limits(limits=1):
            model = fit_model(fit_encoder(corpus, training.encoder), corpus, training)
        return model.stance.weights[0]

    # The two corpora's class mixes differ, so weighing within each corpus changes stage 2 ...
    assert not np.allclose(stance_weights(joined, config), stance_weights(joined, pooled_config))
    # ... and on one corpus it is the same as weighing over all rows.
    np.testing.assert_array_equal(stance_weights(pairs, config), stance_weights(pairs, pooled_config))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("kind", ["logistic", "mlp", "trees", "trees_and_mlps"])
def test_every_stance_kind_trains_and_separates_the_tiny_corpus(pairs: PairSet, kind: str) -> None:
    encoder = fit_encoder(pairs, tiny_training_config().encoder)
    config = dataclasses.replace(tiny_training_config(), stance_kind=kind, stance_hidden=8)
    with threadpool_limits(limits=1):
        model = fit_model(encoder, pairs, config)
    probabilities = model.predict_proba(pair_feature_matrix(encoder, pairs, model.wording))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    labels = model.labels(probabilities)
    related = [s != "unrelated" for s in pairs.stances]
    assert [label != "unrelated" for label in labels] == related  # topical words make this easy


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_trees_and_mlps_is_the_weighted_mean_of_trees_and_networks_differing_in_seed(
    pairs: PairSet,
) -> None:
    encoder = fit_encoder(pairs, tiny_training_config().encoder)
    features = pair_feature_matrix(encoder, pairs)
    base = dataclasses.replace(tiny_training_config(), stance_hidden=8, seed=3)
    averaged_config = dataclasses.replace(base, stance_kind="trees_and_mlps", mlp_members=2, trees_weight=0.6)
    with threadpool_limits(limits=1):
        averaged = fit_stance_model(features, pairs.stances, averaged_config)
        trees = fit_stance_model(features, pairs.stances, dataclasses.replace(base, stance_kind="trees"))
        networks = [
            fit_stance_model(features, pairs.stances, dataclasses.replace(base, stance_kind="mlp", seed=s))
            for s in (3, 4)
        ]
    expected = 0.6 * trees.stance.predict_proba(features) + sum(
        0.2 * n.stance.predict_proba(features) for n in networks
    )
    np.testing.assert_allclose(averaged.stance.predict_proba(features), expected, rtol=1e-12, atol=1e-15)
    # Two seeds give two different networks, or the average would be one network counted twice.
    assert not np.allclose(
        networks[0].stance.predict_proba(features), networks[1].stance.predict_proba(features)
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"stance_kind": "forest"}, "stance_kind must be one of"),
        ({"mlp_members": 0}, "mlp_members must be at least 1"),
        ({"trees_weight": 1.0}, "trees_weight must lie strictly between 0 and 1"),
        ({"relatedness_kind": "forest"}, "relatedness_kind must be one of"),
        ({"latent_components": -1}, "latent_components must be 0"),
    ],
)
def test_training_config_refuses_unknown_learners_and_weights(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(tiny_training_config(), **change)


# -- the whole pipeline --------------------------------------------------------


def test_training_twice_gives_identical_artifact_bytes(tmp_path: Path) -> None:
    first = train_tiny_model(tmp_path / "first", tmp_path / "data")
    second = train_tiny_model(tmp_path / "second", tmp_path / "data")
    assert first == second
    for name in (ENCODER_FILE, ARRAYS_FILE, CARD_FILE, CARD_MARKDOWN_FILE):
        assert (tmp_path / "first" / name).read_bytes() == (tmp_path / "second" / name).read_bytes(), name


@pytest.mark.parametrize(
    ("kind", "described"),
    [
        ("trees", "boosted trees (200 rounds of depth 3, learning rate 0.05) on all 40 features"),
        ("logistic", "multinomial logistic regression (C = 1.0) on all 40 features"),
        ("mlp", "a network with one hidden layer of 32 units on all 40 features"),
        (
            "trees_and_mlps",
            "boosted trees (200 rounds of depth 3, learning rate 0.05; weight 0.5) and of 5 networks "
            "with one hidden layer of 32 units that differ only in their random seed (weight 0.1 each) "
            "on all 40 features",
        ),
    ],
)
def test_the_model_card_describes_each_stance_learner(kind: str, described: str) -> None:
    card = json.loads((DEFAULT_MODEL_DIR / CARD_FILE).read_text(encoding="utf-8"))
    card["training"]["stance_kind"] = kind
    stage_two = next(line for line in render_model_card(card).splitlines() if line.startswith("2. "))
    assert stage_two.startswith("2. agree / disagree / discuss on related pairs: ")
    assert described in stage_two


def test_validate_repeats_the_validation_of_train_on_the_same_splits(tmp_path: Path) -> None:
    card = train_tiny_model(tmp_path / "model", tmp_path / "data")
    with threadpool_limits(limits=1):
        report = validate(tmp_path / "data", tiny_training_config(), (4, 0))
    by_seed = {split["split_seed"]: split for split in card["validation"]["splits"]}
    assert report["splits"] == [by_seed[4], by_seed[0]]
    assert report["training"] == card["training"]


def test_training_with_two_processes_writes_the_same_artifact_as_with_one(tmp_path: Path) -> None:
    card_one = train_tiny_model(tmp_path / "one", tmp_path / "data")
    card_two = train_tiny_model(tmp_path / "two", tmp_path / "data", jobs=2)
    assert card_two == card_one
    for name in (ARRAYS_FILE, ENCODER_FILE, CARD_FILE, CARD_MARKDOWN_FILE):
        assert (tmp_path / "two" / name).read_bytes() == (tmp_path / "one" / name).read_bytes(), name


def test_validate_reports_the_same_splits_with_two_processes(tmp_path: Path) -> None:
    write_fnc_csvs(tmp_path / "data")
    one = validate(tmp_path / "data", tiny_training_config(), (2, 0, 1), jobs=1)
    two = validate(tmp_path / "data", tiny_training_config(), (2, 0, 1), jobs=2)
    assert [split["split_seed"] for split in two["splits"]] == [2, 0, 1]
    assert two == one


def test_the_trained_artifact_loads_and_describes_itself(tmp_path: Path) -> None:
    card = train_tiny_model(tmp_path / "model", tmp_path / "data")
    model = load_model(tmp_path / "model")
    assert model.card == json.loads((tmp_path / "model" / CARD_FILE).read_text(encoding="utf-8")) == card
    assert (model.model_id, model.version) == ("tiny-test-model", "0.0.1")
    assert card["features"] == list(FEATURE_NAMES)
    assert card["data"]["pairs"] == len(tiny_corpus().rows)
    assert card["data"]["label_counts"]["disagree"] == len(tiny_corpus().rows) // 5
    assert [s["split_seed"] for s in card["validation"]["splits"]] == [0, 1, 2, 3, 4]
    assert card["training"]["encoder"]["char_hash_bits"] == 12
    markdown = (tmp_path / "model" / CARD_MARKDOWN_FILE).read_text(encoding="utf-8")
    assert markdown.startswith("# Model card: tiny-test-model 0.0.1")
    stage_two = "weight 0.5) and of 5 networks with one hidden layer of 32 units that differ only in their"
    assert stage_two in markdown
    assert card["files"][ARRAYS_FILE] in markdown
    # One corpus (no --arc): its provenance and licence, and the narrative set measured, not trained on.
    assert [c["domain"] for c in card["data"]["corpora"]] == ["fnc-1"]
    assert "Emergent" in card["data"]["corpora"][0]["provenance"] and card["data"]["corpora"][0]["licence"]
    assert card["narrative"]["pairs"] == 114
    assert "## Narrative development set" in markdown and "Licence: " in markdown


def test_pairs_without_a_stance_column_have_no_labels_to_train_on() -> None:
    assert PairSet(["h"], ["1"], {"1": "x"}, ["agree"]).labels == ["agree"]
    with pytest.raises(DataFormatError, match="no Stance column"):
        _ = PairSet(["h"], ["1"], {"1": "x"}, None).labels


def test_the_shipped_model_card_is_the_rendering_of_the_shipped_card_json() -> None:
    # The Jinja2 layout and the figures in card.json make MODEL_CARD.md; neither is edited by hand.
    card = json.loads((DEFAULT_MODEL_DIR / CARD_FILE).read_text(encoding="utf-8"))
    assert render_model_card(card) == (DEFAULT_MODEL_DIR / CARD_MARKDOWN_FILE).read_text(encoding="utf-8")


def test_a_card_without_a_field_the_layout_needs_is_an_error_naming_it() -> None:
    card = json.loads((DEFAULT_MODEL_DIR / CARD_FILE).read_text(encoding="utf-8"))
    del card["probes"]["reference"]
    with pytest.raises(jinja2.UndefinedError, match="reference"):
        render_model_card(card)


# -- stage 1 as trees with a latent cosine (an option, off in the shipped model) ------------

TOPICS = (
    ("volcano", "lava", "eruption"),
    ("election", "ballot", "voters"),
    ("comet", "telescope", "orbit"),
    ("harvest", "wheat", "farmers"),
    ("orchestra", "violin", "concert"),
    ("glacier", "iceberg", "melting"),
)


def disjoint_topic_pairs() -> PairSet:
    """Six stories whose claims and comments share no word with any other story."""
    headlines, body_ids, stances, bodies = [], [], [], {}
    for i, (a, b, c) in enumerate(TOPICS):
        for k, (text, label) in enumerate(
            ((f"{a} {b}", "agree"), (f"{c} {a}", "disagree"), (f"{b} {c}", "discuss"))
        ):
            bodies[f"{i}-{k}"] = text
            headlines.append(f"{a} {b} {c}")
            body_ids.append(f"{i}-{k}")
            stances.append(label)
        headlines.append(f"{a} {b} {c}")
        body_ids.append(f"{(i + 1) % len(TOPICS)}-0")
        stances.append("unrelated")
    return PairSet(headlines, body_ids, bodies, stances)


def test_latent_cosines_of_training_pairs_come_from_spaces_without_their_story() -> None:
    pairs = disjoint_topic_pairs()
    config = dataclasses.replace(tiny_training_config(), latent_components=3)
    encoder = fit_encoder(pairs, config.encoder)
    with threadpool_limits(limits=1):
        latent, cosines = fit_latent_space(encoder, pairs, config)
    assert latent.components.shape == (3, encoder.n_terms)
    # Without its story, a pair's claim has no word the space knows: every cosine out of fold is 0 ...
    np.testing.assert_array_equal(cosines, np.zeros(len(pairs)))
    # ... while in the space of every training text, the stories it keeps are close to their claims.
    in_sample = latent.cosines(
        encoder.encode([pairs.bodies[b] for b in pairs.body_ids]).word,
        encoder.encode(list(dict.fromkeys(pairs.headlines)), claims=True).word,
    )
    related = [i for i, s in enumerate(pairs.stances) if s != "unrelated"]
    claim_of = {h: j for j, h in enumerate(dict.fromkeys(pairs.headlines))}
    assert max(in_sample[i, claim_of[pairs.headlines[i]]] for i in related) > 0.9
    with pytest.raises(
        ValueError, match="latent_components \\(40\\) must be below the number of training texts"
    ):
        fit_latent_space(encoder, pairs, dataclasses.replace(config, latent_components=40))


def test_the_shipped_recipe_keeps_stage_one_logistic_without_a_latent_space() -> None:
    config = TrainingConfig()
    assert (config.relatedness_kind, config.latent_components) == ("logistic", 0)
    shipped = load_model(DEFAULT_MODEL_DIR)
    assert isinstance(shipped.stance.relatedness, DenseNetwork) and shipped.stance.latent is None


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_model_with_stage_one_trees_and_a_latent_cosine_trains_loads_and_scores(tmp_path: Path) -> None:
    write_fnc_csvs(tmp_path / "data")
    config = dataclasses.replace(tiny_training_config(), relatedness_kind="trees", latent_components=4)
    card = train(
        tmp_path / "data",
        tmp_path / "model",
        DEFAULT_SEEDS_DIR,
        config,
        model_id="tiny-latent-model",
        version="0.0.1",
        progress=lambda _message: None,
        jobs=1,
    )
    assert card["training"]["relatedness_kind"] == "trees" and card["training"]["latent_components"] == 4
    model = load_model(tmp_path / "model")
    relatedness, latent = model.stance.relatedness, model.stance.latent
    assert isinstance(relatedness, TreeEnsemble) and latent is not None
    assert latent.components.shape == (4, model.encoder.n_terms)
    # Stage 1 reads the 8 shipped columns and the latent cosine after the shared features.
    expected_columns = [FEATURE_NAMES.index(n) for n in RELATEDNESS_FEATURES] + [len(FEATURE_NAMES)]
    np.testing.assert_array_equal(relatedness.feature_indices, expected_columns)
    stances, bodies = tmp_path / "data" / "train_stances.csv", tmp_path / "data" / "train_bodies.csv"
    pairs = read_pairs(stances, bodies, require_labels=True)
    predictions = predict_pairs(model.encoder, model.stance, pairs)
    related = [s != "unrelated" for s in pairs.stances]
    assert [label != "unrelated" for label in predictions.labels] == related
    markdown = (tmp_path / "model" / CARD_MARKDOWN_FILE).read_text(encoding="utf-8")
    assert (
        "1. related vs unrelated: binary boosted trees (15 rounds of depth 2, learning rate 0.05) on "
        in markdown
    )
    assert "and the cosine of claim and text in a latent space of 4 dimensions" in markdown
