"""The numpy stance model: conversions from scikit-learn are exact, and the combination rule."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from threadpoolctl import threadpool_limits

from service.domain.stance import (
    STANCE_LABELS,
    AveragedClassifier,
    DenseNetwork,
    LatentSpace,
    StanceModel,
    TreeEnsemble,
    WordingModel,
    as_label_indices,
    combine_claim_stances,
)
from service.training.trainer import (
    _ensemble_from_boosting,
    _network_from_logistic,
    _network_from_mlp,
    _standardiser,
)

# The models read 4 of 7 columns of the feature array, in a shuffled order.
COLUMNS = np.array([5, 0, 3, 6])


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    """Synthetic features (7 columns) and three classes that depend on the chosen columns."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(600, 7))
    score = x[:, 5] + 0.5 * x[:, 0] - x[:, 3] * x[:, 6]
    y = np.digitize(score, np.quantile(score, [1 / 3, 2 / 3]))
    return x, y


def test_tree_ensemble_equals_sklearn_boosting(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    model = HistGradientBoostingClassifier(max_iter=30, max_depth=3, early_stopping=False, random_state=0)
    fresh = np.random.default_rng(8).normal(size=(200, 7))
    # One thread: OpenMP start-up dominates on data this small.
    with threadpool_limits(limits=1):
        model.fit(x[:, COLUMNS], y)
        expected = [model.predict_proba(rows[:, COLUMNS]) for rows in (x, fresh, x[:1])]
    ensemble = _ensemble_from_boosting(model, COLUMNS)
    assert ensemble.n_outputs == 3
    assert len(ensemble.roots) == 30 * 3
    for rows, sklearn_probabilities in zip((x, fresh, x[:1]), expected, strict=True):
        np.testing.assert_allclose(ensemble.predict_proba(rows), sklearn_probabilities, rtol=1e-9, atol=1e-12)


def test_binary_tree_ensemble_equals_sklearn_boosting(data: tuple[np.ndarray, np.ndarray]) -> None:
    # Stage 1 as trees: one tree per round and one raw score, the log-odds of the positive class.
    x, y = data
    binary = (y == 2).astype(int)
    model = HistGradientBoostingClassifier(max_iter=30, max_depth=3, early_stopping=False, random_state=0)
    fresh = np.random.default_rng(9).normal(size=(200, 7))
    with threadpool_limits(limits=1):
        model.fit(x[:, COLUMNS], binary)
        expected = [model.predict_proba(rows[:, COLUMNS]) for rows in (x, fresh)]
    ensemble = _ensemble_from_boosting(model, COLUMNS)
    assert ensemble.n_outputs == 1 and len(ensemble.roots) == 30
    for rows, sklearn_probabilities in zip((x, fresh), expected, strict=True):
        np.testing.assert_allclose(ensemble.predict_proba(rows), sklearn_probabilities, rtol=1e-9, atol=1e-12)
    # A binary ensemble is a valid stage 1 (one output, as a logistic unit).
    StanceModel(ensemble, logistic_unit(0, 1.0, 0.0, n_outputs=3))


def test_latent_cosines_are_those_of_the_projected_unit_vectors() -> None:
    components = np.array([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, -1.0]])
    latent = LatentSpace(components)
    texts = sp.csr_matrix(np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.0, 2.0]]))
    claims = sp.csr_matrix(np.array([[0.0, 3.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]]))
    # Coordinates: texts (1, 0), (0, 0), (0, -2); claims (3, 0), (0, 1).
    np.testing.assert_allclose(latent.cosines(texts, claims), [[1.0, 0.0], [0.0, 0.0], [0.0, -1.0]])
    model = StanceModel(logistic_unit(0, 1.0, 0.0), logistic_unit(0, 1.0, 0.0, n_outputs=3), latent=latent)
    features = np.arange(3 * 2 * 5, dtype=float).reshape(3, 2, 5)
    extended = model.with_latent_cosine(features, texts, claims)
    assert extended.shape == (3, 2, 6)
    np.testing.assert_array_equal(extended[:, :, :5], features)
    np.testing.assert_allclose(extended[:, :, 5], latent.cosines(texts, claims))
    bare = StanceModel(logistic_unit(0, 1.0, 0.0), logistic_unit(0, 1.0, 0.0, n_outputs=3))
    assert bare.with_latent_cosine(features, texts, claims) is features
    with pytest.raises(ValueError, match="5 columns, the latent space 4 terms"):
        latent.project(sp.csr_matrix((1, 5)))
    with pytest.raises(ValueError, match="finite"):
        LatentSpace(np.full((2, 4), np.nan))


def test_tree_ensemble_follows_thresholds_exactly_at_the_split_value() -> None:
    # One stump: x[0] <= 0.5 goes left (+1 to class 0), else right (+1 to class 1); 2 classes.
    ensemble = TreeEnsemble(
        feature_indices=np.array([2]),
        feature=np.array([0, 0, 0]),
        threshold=np.array([0.5, 0.0, 0.0]),
        left=np.array([1, -1, -1]),
        right=np.array([2, -1, -1]),
        value=np.array([0.0, 1.0, -1.0]),
        roots=np.array([0]),
        tree_class=np.array([0]),
        baseline=np.array([0.0, 0.0]),
        depth=1,
    )
    rows = np.array([[9.0, 9.0, 0.5], [9.0, 9.0, 0.50001]])
    probabilities = ensemble.predict_proba(rows)
    e = np.e
    np.testing.assert_allclose(probabilities, [[e / (e + 1), 1 / (e + 1)], [1 / (e + 1), e / (e + 1)]])


def test_dense_network_equals_binary_logistic_regression(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    mean, scale = _standardiser(x[:, COLUMNS])
    model = LogisticRegression(max_iter=1000).fit((x[:, COLUMNS] - mean) / scale, y == 2)
    network = _network_from_logistic(model, COLUMNS, mean, scale)
    assert network.n_outputs == 1
    np.testing.assert_allclose(
        network.predict_proba(x), model.predict_proba((x[:, COLUMNS] - mean) / scale), rtol=1e-9
    )


def test_dense_network_equals_multinomial_logistic_regression(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    mean, scale = _standardiser(x[:, COLUMNS])
    model = LogisticRegression(max_iter=1000).fit((x[:, COLUMNS] - mean) / scale, y)
    network = _network_from_logistic(model, COLUMNS, mean, scale)
    assert network.n_outputs == 3
    np.testing.assert_allclose(
        network.predict_proba(x), model.predict_proba((x[:, COLUMNS] - mean) / scale), rtol=1e-9
    )


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # equal even if unconverged
def test_dense_network_equals_mlp(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    mean, scale = _standardiser(x[:, COLUMNS])
    z = (x[:, COLUMNS] - mean) / scale
    with threadpool_limits(limits=1):
        model = MLPClassifier(hidden_layer_sizes=(8,), max_iter=60, random_state=0).fit(z, y)
    network = _network_from_mlp(model, COLUMNS, mean, scale)
    assert len(network.weights) == 2
    np.testing.assert_allclose(network.predict_proba(x), model.predict_proba(z), rtol=1e-9, atol=1e-12)


def test_dense_network_refuses_inconsistent_parameters() -> None:
    ok = {"feature_indices": np.array([0, 1]), "mean": np.zeros(2), "scale": np.ones(2)}
    with pytest.raises(ValueError, match="inputs"):
        DenseNetwork(**ok, weights=(np.ones((3, 1)),), biases=(np.zeros(1),))
    with pytest.raises(ValueError, match="bias"):
        DenseNetwork(**ok, weights=(np.ones((2, 1)),), biases=())
    with pytest.raises(ValueError, match="finite"):
        DenseNetwork(**ok, weights=(np.full((2, 1), np.nan),), biases=(np.zeros(1),))


def test_tree_ensemble_refuses_nodes_pointing_outside() -> None:
    with pytest.raises(ValueError, match="left points outside"):
        TreeEnsemble(
            feature_indices=np.array([0]),
            feature=np.array([0, 0]),
            threshold=np.array([0.0, 0.0]),
            left=np.array([5, -1]),
            right=np.array([1, -1]),
            value=np.zeros(2),
            roots=np.array([0]),
            tree_class=np.array([0]),
            baseline=np.zeros(3),
            depth=1,
        )


def logistic_unit(feature: int, weight: float, bias: float, n_outputs: int = 1) -> DenseNetwork:
    """A one-layer network reading one feature column."""
    return DenseNetwork(
        feature_indices=np.array([feature]),
        mean=np.zeros(1),
        scale=np.ones(1),
        weights=(np.full((1, n_outputs), weight),),
        biases=(np.full(n_outputs, bias) if n_outputs == 1 else np.array([0.0, 0.5, 1.0][:n_outputs]),),
    )


def test_averaged_classifier_is_the_weighted_mean_of_its_members() -> None:
    def softmax_unit(feature: int, weights: list[float]) -> DenseNetwork:
        weight_matrix = np.array([weights])
        return DenseNetwork(np.array([feature]), np.zeros(1), np.ones(1), (weight_matrix,), (np.zeros(3),))

    first, second = softmax_unit(0, [1.0, 0.0, -1.0]), softmax_unit(1, [-2.0, 1.0, 0.0])
    average = AveragedClassifier((first, second), np.array([0.25, 0.75]))
    features = np.array([[0.3, -1.0], [2.0, 0.5], [-1.0, 0.0]])
    expected = 0.25 * first.predict_proba(features) + 0.75 * second.predict_proba(features)
    np.testing.assert_allclose(average.predict_proba(features), expected, rtol=1e-12)
    np.testing.assert_allclose(average.predict_proba(features).sum(axis=1), 1.0)
    assert average.n_outputs == 3
    # The members disagree, so the weights matter: the other way round gives other probabilities.
    swapped = AveragedClassifier((first, second), np.array([0.75, 0.25]))
    assert not np.allclose(swapped.predict_proba(features), expected)


@pytest.mark.parametrize(
    ("members", "weights", "message"),
    [
        ((), np.array([]), "at least one member"),
        ((logistic_unit(0, 1.0, 0.0, 3),), np.array([0.5, 0.5]), "one weight per member"),
        ((logistic_unit(0, 1.0, 0.0, 3),) * 2, np.array([0.5, 0.4]), "sum to 1"),
        ((logistic_unit(0, 1.0, 0.0, 3),) * 2, np.array([1.5, -0.5]), "non-negative"),
        ((logistic_unit(0, 1.0, 0.0, 3),) * 2, np.array([np.nan, 0.5]), "finite"),
        ((logistic_unit(0, 1.0, 0.0, 3), logistic_unit(0, 1.0, 0.0)), np.array([0.5, 0.5]), "same number"),
    ],
)
def test_averaged_classifier_refuses_bad_members_and_weights(
    members: tuple[DenseNetwork, ...], weights: np.ndarray, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        AveragedClassifier(members, weights)


def test_stance_model_combines_relatedness_and_stance() -> None:
    relatedness = logistic_unit(0, 1.0, 0.0)  # P(related) = sigmoid(x0)
    stance = DenseNetwork(
        feature_indices=np.array([0]),
        mean=np.zeros(1),
        scale=np.ones(1),
        weights=(np.zeros((1, 3)),),
        biases=(np.log(np.array([0.5, 0.2, 0.3])),),
    )
    model = StanceModel(relatedness, stance, related_threshold=0.5)
    features = np.array([[np.log(3.0)], [-np.log(3.0)], [0.0]])  # P(related) = 0.75, 0.25, 0.5
    probabilities = model.predict_proba(features)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    np.testing.assert_allclose(probabilities[0], [0.375, 0.15, 0.225, 0.25])
    np.testing.assert_allclose(probabilities[1], [0.125, 0.05, 0.075, 0.75])
    assert model.labels(probabilities) == ["agree", "unrelated", "agree"]  # 0.5 reaches the threshold


def test_stance_model_refuses_wrong_stages() -> None:
    three_way = logistic_unit(0, 1.0, 0.0, n_outputs=3)
    with pytest.raises(ValueError, match="single logistic output"):
        StanceModel(three_way, three_way)
    with pytest.raises(ValueError, match="3 outputs"):
        StanceModel(logistic_unit(0, 1.0, 0.0), logistic_unit(0, 1.0, 0.0))
    with pytest.raises(ValueError, match="threshold"):
        StanceModel(logistic_unit(0, 1.0, 0.0), three_way, related_threshold=1.0)


def test_wording_model_scores_are_the_linear_function_of_the_word_vector() -> None:
    weights = np.array([[1.0, 0.0, -1.0], [0.0, 2.0, 0.0], [0.5, 0.5, 0.5], [0.0, 0.0, 3.0]])
    wording = WordingModel(weights, np.array([0.1, 0.2, 0.3]))
    vectors = sp.csr_matrix(np.array([[0.6, 0.8, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]))
    np.testing.assert_allclose(wording.scores(vectors), [[0.7, 1.8, -0.3], [0.1, 0.2, 0.3]], atol=1e-12)
    model = StanceModel(logistic_unit(0, 1.0, 0.0), logistic_unit(0, 1.0, 0.0, n_outputs=3), 0.5, wording)
    np.testing.assert_array_equal(model.wording_scores(vectors), wording.scores(vectors))
    bare = StanceModel(logistic_unit(0, 1.0, 0.0), logistic_unit(0, 1.0, 0.0, n_outputs=3))
    np.testing.assert_array_equal(bare.wording_scores(vectors), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="5 columns, the wording model 4 terms"):
        wording.scores(sp.csr_matrix((1, 5)))


@pytest.mark.parametrize(
    ("weights", "intercept", "message"),
    [
        (np.zeros((4, 2)), np.zeros(3), "shape \\(terms, 3\\)"),
        (np.zeros(4), np.zeros(3), "shape \\(terms, 3\\)"),
        (np.zeros((4, 3)), np.zeros(2), "intercept must have 3"),
        (np.full((4, 3), np.inf), np.zeros(3), "finite"),
    ],
)
def test_wording_model_refuses_bad_parameters(
    weights: np.ndarray, intercept: np.ndarray, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        WordingModel(weights, intercept)


def claim_row(related: float, conditional: tuple[float, float, float]) -> list[float]:
    """Joint probabilities of one claim from P(related) and the agree/disagree/discuss split."""
    return [related * c for c in conditional] + [1.0 - related]


def test_combine_averages_the_claims_the_text_is_about_weighted_by_relatedness() -> None:
    claims = np.array(
        [
            [
                claim_row(0.9, (0.8, 0.1, 0.1)),
                claim_row(0.6, (0.2, 0.2, 0.6)),
                claim_row(0.1, (0.0, 1.0, 0.0)),  # below the threshold: ignored
            ]
        ]
    )
    probabilities, related = combine_claim_stances(claims, related_threshold=0.5)
    assert related[0] == pytest.approx(0.9)  # the highest relatedness over the claims
    mixed = (0.9 * np.array([0.8, 0.1, 0.1]) + 0.6 * np.array([0.2, 0.2, 0.6])) / 1.5
    np.testing.assert_allclose(probabilities[0], [*(0.9 * mixed), 0.1])
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)


def test_combine_falls_back_to_the_most_related_claim() -> None:
    claims = np.array([[claim_row(0.2, (0.1, 0.7, 0.2)), claim_row(0.4, (0.6, 0.1, 0.3))]])
    probabilities, related = combine_claim_stances(claims, related_threshold=0.5)
    assert related[0] == pytest.approx(0.4)
    np.testing.assert_allclose(probabilities[0], [0.4 * 0.6, 0.4 * 0.1, 0.4 * 0.3, 0.6])


def test_combine_handles_texts_independently_and_many_claims() -> None:
    rng = np.random.default_rng(0)
    related = rng.uniform(size=(5, 9))
    conditional = rng.dirichlet(np.ones(3), size=(5, 9))
    claims = np.concatenate([related[:, :, None] * conditional, 1 - related[:, :, None]], axis=2)
    probabilities, overall_related = combine_claim_stances(claims, 0.5)
    assert probabilities.shape == (5, 4)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    np.testing.assert_allclose(overall_related, related.max(axis=1))
    single, _ = combine_claim_stances(claims[2:3], 0.5)
    np.testing.assert_allclose(single[0], probabilities[2])


def test_combine_is_finite_when_no_claim_is_related_at_all() -> None:
    # A relatedness that underflows to exactly 0 leaves no agree/disagree/discuss mass to split.
    claims = np.array([[[0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 1.0]]])
    probabilities, related = combine_claim_stances(claims, 0.5)
    assert np.isfinite(probabilities).all()
    np.testing.assert_allclose(probabilities[0], [0.0, 0.0, 0.0, 1.0])
    assert related[0] == 0.0


def test_label_indices() -> None:
    np.testing.assert_array_equal(as_label_indices(["unrelated", "agree", "discuss"]), [3, 0, 2])
    assert STANCE_LABELS == ("agree", "disagree", "discuss", "unrelated")
    with pytest.raises(ValueError, match="unknown stance label 'maybe'"):
        as_label_indices(["agree", "maybe"])


def walk_each_tree(ensemble: TreeEnsemble, rows: np.ndarray) -> np.ndarray:
    """Probabilities by following every row down every tree node by node (NaN goes right)."""
    raw = np.tile(ensemble.baseline, (len(rows), 1))
    for r, row in enumerate(rows):
        for root, tree_class in zip(ensemble.roots, ensemble.tree_class, strict=True):
            node = root
            while ensemble.left[node] >= 0:
                value = row[ensemble.feature_indices[ensemble.feature[node]]]
                node = ensemble.left[node] if value <= ensemble.threshold[node] else ensemble.right[node]
            raw[r, tree_class] += ensemble.value[node]
    exp = np.exp(raw - raw.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def lopsided_ensemble(depth: int = 3) -> TreeEnsemble:
    """Two classes, three trees: a stump, a chain three deep on the right, a lone leaf."""
    return TreeEnsemble(
        feature_indices=np.array([3, 1, 0]),
        # tree 0: nodes 0-2; tree 1: nodes 3-9 (right chain 3 -> 5 -> 7); tree 2: node 10
        feature=np.array([0, 0, 0, 1, 0, 2, 0, 0, 0, 0, 0]),
        threshold=np.array([0.0, 0, 0, -0.5, 0, 0.25, 0, 1.0, 0, 0, 0]),
        left=np.array([1, -1, -1, 4, -1, 6, -1, 8, -1, -1, -1]),
        right=np.array([2, -1, -1, 5, -1, 7, -1, 9, -1, -1, -1]),
        value=np.array([0, 0.3, -0.2, 0, 0.5, 0, -0.7, 0, 0.9, -1.1, 0.05]),
        roots=np.array([0, 3, 10]),
        tree_class=np.array([1, 0, 1]),
        baseline=np.array([0.1, -0.1]),
        depth=depth,
    )


def test_tree_ensemble_equals_a_node_by_node_walk_of_uneven_trees_with_missing_values() -> None:
    ensemble = lopsided_ensemble()
    rows = np.random.default_rng(3).normal(size=(300, 4))
    rows[np.random.default_rng(4).random(rows.shape) < 0.2] = np.nan
    rows[:5, 1] = -0.5  # exactly at a threshold: goes left
    np.testing.assert_allclose(ensemble.predict_proba(rows), walk_each_tree(ensemble, rows), rtol=1e-12)
    # Deeper than needed changes nothing.
    np.testing.assert_array_equal(
        lopsided_ensemble(depth=5).predict_proba(rows), ensemble.predict_proba(rows)
    )


def test_tree_ensemble_refuses_a_depth_shallower_than_its_trees() -> None:
    with pytest.raises(ValueError, match=r"deeper than the ensemble's depth \(2\)"):
        lopsided_ensemble(depth=2)
