"""Fitting the encoder and the two-stage stance model on FNC-format pairs."""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.neural_network import MLPClassifier

from service.domain.encoding import EncoderConfig, TextEncoder
from service.domain.pair_features import FEATURE_NAMES, SIMILARITY_FEATURES, compute_pair_features
from service.domain.stance import (
    RELATED_LABELS,
    STANCE_LABELS,
    AveragedClassifier,
    Classifier,
    DenseNetwork,
    LatentSpace,
    StanceModel,
    TreeEnsemble,
    WordingModel,
    as_label_indices,
)
from service.domain.text import split_sentences
from service.training.fnc import KNOWN_DOMAINS, PairSet, row_domains, story_of

RELATEDNESS_FEATURES: tuple[str, ...] = (*SIMILARITY_FEATURES, "log_text_tokens", "log_claim_tokens")
"""Stage 1 reads only similarity features: flexible models on many features overfit topics."""

WORDING_COLUMNS = np.array([FEATURE_NAMES.index(f"wording_{label}") for label in RELATED_LABELS])


STANCE_KINDS: tuple[str, ...] = ("trees", "logistic", "mlp", "trees_and_mlps")
"""The learners :func:`fit_stance_model` can fit for stage 2."""

RELATEDNESS_KINDS: tuple[str, ...] = ("logistic", "trees")
"""The learners :func:`fit_stance_model` can fit for stage 1."""

SHORT_VERSION_SUFFIX = "#lead"
"""Appended to a body's id for its short version (:func:`with_short_versions`)."""


@dataclass(frozen=True)
class TrainingConfig:
    """Everything that determines a trained model; stored in the model card."""

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    relatedness_c: float = 1.0
    # Stage 1's learner: "logistic" (shipped) or "trees" (boosted trees with the trees_*
    # settings, binary). With latent_components > 0 stage 1 also reads the cosine of claim and
    # text in a truncated SVD of the training texts' word TF-IDF (LatentSpace), computed out of
    # fold for the training pairs. Tried after 5.0.0 (scripts/stage1_experiments.py): both on,
    # ARC's stage-1 ROC-AUC on story splits 0-4 rose from 0.859 to 0.887 and FNC-1's figures
    # did not fall, but on the narrative set related-vs-unrelated accuracy fell from 0.860 to
    # 0.763 (1 of 24 unrelated passages found, against 13). Off in the shipped model.
    relatedness_kind: str = "logistic"
    latent_components: int = 0
    # "trees", "logistic", "mlp", or "trees_and_mlps": the mean of the trees' probabilities
    # (weight trees_weight) and those of mlp_members networks differing only in their seed.
    stance_kind: str = "trees_and_mlps"
    mlp_members: int = 5
    trees_weight: float = 0.5
    trees_rounds: int = 200
    trees_depth: int = 3
    trees_learning_rate: float = 0.05
    trees_l2: float = 1.0
    stance_c: float = 1.0  # inverse regularisation of the logistic stance model
    stance_hidden: int = 32  # hidden units of the MLP stance model
    stance_alpha: float = 1e-3  # L2 penalty of the MLP stance model
    # Stage 2 weighs each class by (balanced weight) ** power: 1 fully balances the
    # classes, 0 not at all. 0.75 was chosen among 0.25-1 on story splits 0-2.
    class_weight_power: float = 0.75
    # Balance the classes within each corpus (domain) rather than over all pairs, so that
    # ARC's many disagreeing comments do not define 'disagree' for FNC-1's news. Tried after
    # 5.0.0 and not shipped: it raised each corpus's macro-F1 on the story splits but lowered
    # ARC's disagree F1 and the narrative set (validation_protocol.txt has the figures).
    class_weights_per_domain: bool = False
    wording_c: float = 1.0  # inverse regularisation of the wording model
    wording_folds: int = 5  # story-grouped folds for its out-of-fold scores
    # Chosen on story split 0 among 0.2-0.5 (best macro-F1 and FNC score there).
    related_threshold: float = 0.3
    # Training-set augmentation (see with_short_versions / with_hard_negatives).
    short_versions: bool = True
    hard_negatives_per_headline: int = 1
    # Also add this many per headline chosen by character n-gram similarity: without them
    # a short text sharing only character n-grams with a claim looked related.
    char_hard_negatives_per_headline: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.stance_kind not in STANCE_KINDS:
            raise ValueError(f"stance_kind must be one of {STANCE_KINDS}, not {self.stance_kind!r}")
        if self.relatedness_kind not in RELATEDNESS_KINDS:
            raise ValueError(
                f"relatedness_kind must be one of {RELATEDNESS_KINDS}, not {self.relatedness_kind!r}"
            )
        if self.latent_components < 0:
            raise ValueError(f"latent_components must be 0 (off) or positive, not {self.latent_components!r}")
        if self.mlp_members < 1:
            raise ValueError(f"mlp_members must be at least 1, not {self.mlp_members!r}")
        if not 0.0 < self.trees_weight < 1.0:
            raise ValueError(f"trees_weight must lie strictly between 0 and 1, not {self.trees_weight!r}")

    def to_dict(self) -> dict:
        """JSON-serialisable form: every field in definition order, the encoder's as its own form."""
        return {**dataclasses.asdict(self), "encoder": self.encoder.to_dict()}


Progress = Callable[[str], None]


def log_to_stderr(message: str) -> None:
    """Default progress sink: a timestamped line on stderr, or nothing once no one reads it.

    Progress is for whoever watches: a reader that went away (``discourse train 2>&1 | head``)
    must not stop a training run that then writes no model.
    """
    with contextlib.suppress(BrokenPipeError, ValueError):  # ValueError: stderr itself was closed
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def fit_encoder(pairs: PairSet, config: EncoderConfig) -> TextEncoder:
    """Fit vocabulary and IDF on the distinct headlines and bodies of ``pairs`` only."""
    documents = list(dict.fromkeys(pairs.headlines)) + list(pairs.bodies.values())
    return TextEncoder.fit(documents, config=config)


def augment(pairs: PairSet, encoder: TextEncoder, config: TrainingConfig) -> PairSet:
    """The training pairs with the augmentations ``config`` asks for (hard negatives first)."""
    if config.hard_negatives_per_headline > 0 or config.char_hard_negatives_per_headline > 0:
        pairs = with_hard_negatives(
            pairs, encoder, config.hard_negatives_per_headline, config.char_hard_negatives_per_headline
        )
    if config.short_versions:
        pairs = with_short_versions(pairs, config.seed)
    return pairs


def pair_feature_matrix(
    encoder: TextEncoder,
    pairs: PairSet,
    wording: WordingModel | None = None,
    chunk: int = 64,
    progress: Progress | None = None,
    latent: LatentSpace | None = None,
) -> np.ndarray:
    """Pair features of every row of ``pairs``, shape (len(pairs), F), in row order.

    Without ``wording`` the ``wording_*`` columns are 0, as :func:`fit_model`
    needs before it fills them with out-of-fold scores. With ``latent`` one more column
    follows, the latent cosine of headline and body (F + 1 columns, as the model reads them).
    """
    headlines = list(dict.fromkeys(pairs.headlines))
    headline_index = {h: i for i, h in enumerate(headlines)}
    body_ids = list(dict.fromkeys(pairs.body_ids))  # only the bodies the pairs use
    body_index = {b: i for i, b in enumerate(body_ids)}
    encoded_headlines = encoder.encode(headlines, claims=True)
    rows_of_body: dict[int, list[int]] = {}
    for row, body_id in enumerate(pairs.body_ids):
        rows_of_body.setdefault(body_index[body_id], []).append(row)

    result = np.zeros((len(pairs), len(FEATURE_NAMES) + (latent is not None)))
    for start in range(0, len(body_ids), chunk):
        chunk_ids = body_ids[start : start + chunk]
        encoded_bodies = encoder.encode([pairs.bodies[b] for b in chunk_ids])
        rows = [r for i in range(start, start + len(chunk_ids)) for r in rows_of_body.get(i, [])]
        needed = sorted({headline_index[pairs.headlines[r]] for r in rows})
        position = {h: j for j, h in enumerate(needed)}
        subset = encoded_headlines.take(needed)
        scores = (
            np.zeros((len(chunk_ids), len(WORDING_COLUMNS)))
            if wording is None
            else wording.scores(encoded_bodies.word)
        )
        features = compute_pair_features(encoder, encoded_bodies, subset, scores)
        if latent is not None:
            cosines = latent.cosines(encoded_bodies.word, subset.word)
            features = np.concatenate([features, cosines[:, :, None]], axis=2)
        for r in rows:
            result[r] = features[
                body_index[pairs.body_ids[r]] - start, position[headline_index[pairs.headlines[r]]]
            ]
        done = min(start + chunk, len(body_ids))
        if progress and (done == len(body_ids) or (start // chunk) % 8 == 7):
            progress(f"pair features: {done}/{len(body_ids)} bodies")
    return result


def _standardiser(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    return mean, scale


def _network_from_logistic(model: LogisticRegression, columns, mean, scale) -> DenseNetwork:
    weights = model.coef_.T.copy()  # (F, 1) for binary, (F, C) for multinomial
    return DenseNetwork(columns, mean, scale, (weights,), (model.intercept_.copy(),))


def _network_from_mlp(model: MLPClassifier, columns, mean, scale) -> DenseNetwork:
    return DenseNetwork(
        columns,
        mean,
        scale,
        tuple(w.copy() for w in model.coefs_),
        tuple(b.copy() for b in model.intercepts_),
    )


def _ensemble_from_boosting(model: HistGradientBoostingClassifier, columns) -> TreeEnsemble:
    """Flatten a fitted HistGradientBoostingClassifier into node arrays."""
    feature, threshold, left, right, value, roots, tree_class = [], [], [], [], [], [], []
    depth = 0
    offset = 0
    for round_predictors in model._predictors:
        for class_index, predictor in enumerate(round_predictors):
            nodes = predictor.nodes
            if nodes["is_categorical"].any():
                raise ValueError("categorical splits are not supported")
            is_leaf = nodes["is_leaf"].astype(bool)
            roots.append(offset)
            tree_class.append(class_index)
            feature.append(np.where(is_leaf, 0, nodes["feature_idx"].astype(np.int64)))
            threshold.append(np.where(is_leaf, 0.0, nodes["num_threshold"]))
            left.append(np.where(is_leaf, -1, nodes["left"].astype(np.int64) + offset))
            right.append(np.where(is_leaf, -1, nodes["right"].astype(np.int64) + offset))
            value.append(np.where(is_leaf, nodes["value"], 0.0))
            depth = max(depth, int(nodes["depth"].max()))
            offset += len(nodes)
    return TreeEnsemble(
        feature_indices=np.asarray(columns),
        feature=np.concatenate(feature).astype(np.int64),
        threshold=np.concatenate(threshold).astype(np.float64),
        left=np.concatenate(left).astype(np.int64),
        right=np.concatenate(right).astype(np.int64),
        value=np.concatenate(value).astype(np.float64),
        roots=np.asarray(roots, dtype=np.int64),
        tree_class=np.asarray(tree_class, dtype=np.int64),
        baseline=np.asarray(model._baseline_prediction, dtype=np.float64).ravel(),
        depth=depth,
    )


def fit_model(
    encoder: TextEncoder, pairs: PairSet, config: TrainingConfig, progress: Progress | None = None
) -> StanceModel:
    """Fit the wording model and both stages on labelled (headline, body) pairs.

    The stance stage is trained on out-of-fold wording scores (folds never
    split a story), so it learns how far the wording model can be trusted on
    stories it has not seen, not on the articles it memorised.
    """
    features = pair_feature_matrix(encoder, pairs, progress=progress)
    wording, out_of_fold = fit_wording_model(encoder, pairs, config)
    features[:, WORDING_COLUMNS] = out_of_fold
    if progress:
        progress("wording model fitted")
    latent = None
    if config.latent_components > 0:
        latent, latent_cosines = fit_latent_space(encoder, pairs, config)
        features = np.column_stack([features, latent_cosines])
        if progress:
            progress("latent space fitted")
    domains = row_domains(pairs, KNOWN_DOMAINS)
    return fit_stance_model(features, pairs.labels, config, wording, progress, domains, latent)


def _fit_svd(documents: sp.csr_matrix, config: TrainingConfig) -> LatentSpace:
    if config.latent_components >= min(documents.shape):
        raise ValueError(
            f"latent_components ({config.latent_components}) must be below the number of training "
            f"texts and terms ({documents.shape[0]} × {documents.shape[1]})"
        )
    svd = TruncatedSVD(n_components=config.latent_components, random_state=config.seed)
    svd.fit(documents)
    return LatentSpace(svd.components_.astype(np.float64))


def fit_latent_space(
    encoder: TextEncoder, pairs: PairSet, config: TrainingConfig
) -> tuple[LatentSpace, np.ndarray]:
    """The :class:`LatentSpace` of the training texts, and each pair's latent cosine out of fold.

    The space is a truncated SVD (``config.latent_components`` dimensions) of the word TF-IDF
    rows of the distinct headlines and bodies (not the short versions: each is part of its
    body), as the encoder's vocabulary. A pair's cosine comes from a space fitted without
    its headline's story (stories dealt round-robin in a seeded random order into
    ``config.wording_folds`` folds): in a space fitted on a story's own texts its pairs are
    closer than those of a story never seen, and stage 1 would learn to trust the cosine more
    than it deserves on new texts. Returns the space and cosines of shape (len(pairs),).
    """
    headlines = list(dict.fromkeys(pairs.headlines))
    body_ids = [b for b in pairs.bodies if not b.endswith(SHORT_VERSION_SUFFIX)]
    claim_vectors = encoder.encode(headlines, claims=True).word
    documents = sp.vstack([claim_vectors, encoder.encode([pairs.bodies[b] for b in body_ids]).word]).tocsr()
    story = story_of(pairs)
    document_story = [story["h:" + h] for h in headlines] + [story["b:" + b] for b in body_ids]
    names = sorted(set(document_story))
    order = np.random.default_rng(config.seed).permutation(len(names))
    n_folds = min(config.wording_folds, len(names))
    fold_of = {names[j]: i % n_folds for i, j in enumerate(order)}
    document_fold = np.array([fold_of[s] for s in document_story])

    all_bodies = list(dict.fromkeys(pairs.body_ids))
    body_vectors = encoder.encode([pairs.bodies[b] for b in all_bodies]).word
    headline_row = {h: i for i, h in enumerate(headlines)}
    body_row = {b: i for i, b in enumerate(all_bodies)}
    h_rows = np.array([headline_row[h] for h in pairs.headlines])
    b_rows = np.array([body_row[b] for b in pairs.body_ids])
    pair_fold = np.array([fold_of[story["h:" + h]] for h in pairs.headlines])
    cosines = np.zeros(len(pairs))
    for fold in range(n_folds):
        rows = np.flatnonzero(pair_fold == fold)
        if not len(rows):
            continue
        space = _fit_svd(documents[document_fold != fold], config)
        claims, bodies = space.project(claim_vectors), space.project(body_vectors)
        cosines[rows] = np.einsum("ij,ij->i", claims[h_rows[rows]], bodies[b_rows[rows]])
    return _fit_svd(documents, config), cosines


def fit_wording_model(
    encoder: TextEncoder, pairs: PairSet, config: TrainingConfig
) -> tuple[WordingModel, np.ndarray]:
    """Fit the :class:`WordingModel` on the related pairs' bodies.

    Returns the model, fitted on every related pair, and scores for every
    row of ``pairs``. A related row's scores come from a model fitted without
    its story (folds never split a story); an unrelated row's come from the
    final model, as nothing reads them: stage 1 sees only
    :data:`RELATEDNESS_FEATURES`, stage 2 only related rows.
    """
    y = as_label_indices(pairs.labels)
    related = np.flatnonzero(y != STANCE_LABELS.index("unrelated"))
    body_ids = list(dict.fromkeys(pairs.body_ids))
    body_row = {b: i for i, b in enumerate(body_ids)}
    body_vectors = encoder.encode([pairs.bodies[b] for b in body_ids]).word
    x = body_vectors[[body_row[b] for b in pairs.body_ids]]
    story = story_of(pairs)
    # A related pair's headline and body are in one story; its short version keeps the headline.
    groups = np.array([story["h:" + pairs.headlines[r]] for r in related])
    n_folds = min(config.wording_folds, len(set(groups)))
    if n_folds < 2:
        raise ValueError("the wording model needs related pairs from at least 2 stories")

    final = _fit_wording(x[related], y[related], config)
    scores = final.scores(x)
    for fit, held_out in GroupKFold(n_splits=n_folds).split(related, groups=groups):
        fold_model = _fit_wording(x[related[fit]], y[related[fit]], config)
        scores[related[held_out]] = fold_model.scores(x[related[held_out]])
    return final, scores


def _fit_wording(x: sp.csr_matrix, labels: np.ndarray, config: TrainingConfig) -> WordingModel:
    if len(np.unique(labels)) < len(RELATED_LABELS):
        seen = [RELATED_LABELS[i] for i in np.unique(labels)]
        raise ValueError(
            f"the wording model's training rows lack a related class: saw {seen} of {RELATED_LABELS}"
        )
    model = LogisticRegression(C=config.wording_c, max_iter=3000)
    model.fit(x, labels, sample_weight=_class_weights(labels, 1.0))
    return WordingModel(model.coef_.T.copy(), model.intercept_.copy())


def _class_weights(labels: np.ndarray, power: float) -> np.ndarray:
    """Per-row weights (n / (classes × count)) ** power: 1 balances the classes fully."""
    n_classes = len(RELATED_LABELS)
    counts = np.bincount(labels, minlength=n_classes).astype(float)
    return ((len(labels) / (n_classes * np.maximum(counts, 1.0))) ** power)[labels]


def stance_sample_weights(
    labels: np.ndarray, power: float, domains: Sequence[str] | None = None
) -> np.ndarray:
    """Stage 2's per-row weights: :func:`_class_weights` over all rows, or within each domain.

    ``labels`` are related-label indices, shape (n,); ``domains`` (one name per row, or None)
    makes each corpus's classes balanced among themselves, so a class that one corpus has many
    of (ARC's disagreeing comments) does not set the weight of that class in another corpus
    (FNC-1's rare debunking articles). Each domain's weights sum to about its row count,
    as over all rows, so no corpus is weighed up or down as a whole.
    """
    if domains is None:
        return _class_weights(labels, power)
    if len(domains) != len(labels):
        raise ValueError(f"domains has {len(domains)} entries for {len(labels)} labels")
    names = np.asarray(domains)
    weights = np.empty(len(labels))
    for name in dict.fromkeys(domains):
        rows = names == name
        weights[rows] = _class_weights(labels[rows], power)
    return weights


def fit_stance_model(
    features: np.ndarray,
    labels: list[str],
    config: TrainingConfig,
    wording: WordingModel | None = None,
    progress: Progress | None = None,
    domains: Sequence[str] | None = None,
    latent: LatentSpace | None = None,
) -> StanceModel:
    """Fit both stages on a complete pair-feature matrix and its FNC labels.

    ``domains`` names each row's corpus; with ``config.class_weights_per_domain`` stage 2's
    classes are balanced within each corpus (see :func:`stance_sample_weights`). With
    ``latent``, ``features`` has one more column after the F shared ones, the latent cosine
    (out of fold), which stage 1 reads and stage 2 does not.
    """
    y = as_label_indices(labels)
    related = y != STANCE_LABELS.index("unrelated")
    n_shared = len(FEATURE_NAMES)
    if features.shape[1] != n_shared + (latent is not None):
        raise ValueError(
            f"features have {features.shape[1]} columns; expected {n_shared + (latent is not None)}"
        )

    rel_columns = np.array(
        [FEATURE_NAMES.index(n) for n in RELATEDNESS_FEATURES] + ([n_shared] if latent is not None else [])
    )
    x_rel = features[:, rel_columns]
    relatedness: DenseNetwork | TreeEnsemble
    if config.relatedness_kind == "trees":
        relatedness = _fit_relatedness_trees(x_rel, related.astype(int), rel_columns, config)
    else:
        mean, scale = _standardiser(x_rel)
        stage1 = LogisticRegression(C=config.relatedness_c, max_iter=2000)
        stage1.fit((x_rel - mean) / scale, related.astype(int))
        relatedness = _network_from_logistic(stage1, rel_columns, mean, scale)
    if progress:
        progress("stage 1 (related vs unrelated) fitted")

    x_st = features[related][:, :n_shared]
    y_st = y[related]
    # Class weights so that the rare 'disagree' is not ignored (nor over-predicted).
    related_domains = (
        [d for d, r in zip(domains, related, strict=True) if r]
        if domains is not None and config.class_weights_per_domain
        else None
    )
    sample_weight = stance_sample_weights(y_st, config.class_weight_power, related_domains)
    if config.stance_kind == "trees":
        stance: Classifier = _fit_trees(x_st, y_st, sample_weight, config)
    elif config.stance_kind == "logistic":
        stance = _fit_logistic(x_st, y_st, sample_weight, config)
    elif config.stance_kind == "mlp":
        stance = _fit_mlp(x_st, y_st, sample_weight, config, config.seed)
    elif config.stance_kind == "trees_and_mlps":
        networks = [
            _fit_mlp(x_st, y_st, sample_weight, config, config.seed + i) for i in range(config.mlp_members)
        ]
        network_weight = (1.0 - config.trees_weight) / config.mlp_members
        stance = AveragedClassifier(
            (_fit_trees(x_st, y_st, sample_weight, config), *networks),
            np.array([config.trees_weight] + [network_weight] * config.mlp_members),
        )
    else:  # TrainingConfig rejects other kinds; a config built around it must not pass silently
        raise ValueError(f"stance_kind must be one of {STANCE_KINDS}, not {config.stance_kind!r}")
    if progress:
        progress("stage 2 (agree/disagree/discuss) fitted")
    return StanceModel(relatedness, stance, config.related_threshold, wording, latent)


def _booster(config: TrainingConfig) -> HistGradientBoostingClassifier:
    """Unfitted boosted trees with the trees_* settings (stage 1 or stage 2)."""
    return HistGradientBoostingClassifier(
        learning_rate=config.trees_learning_rate,
        max_iter=config.trees_rounds,
        max_depth=config.trees_depth,
        l2_regularization=config.trees_l2,
        early_stopping=False,
        random_state=config.seed,
    )


def _fit_relatedness_trees(
    x: np.ndarray, related: np.ndarray, columns: np.ndarray, config: TrainingConfig
) -> TreeEnsemble:
    """Stage 1 as binary boosted trees (the trees_* settings) on ``x``, the ``columns`` of the features."""
    model = _booster(config)
    model.fit(x, related)
    if list(model.classes_) != [0, 1]:
        raise ValueError("stage 1 needs both related and unrelated training pairs")
    return _ensemble_from_boosting(model, columns)


def _check_classes(model: HistGradientBoostingClassifier | LogisticRegression | MLPClassifier) -> None:
    if list(model.classes_) != [0, 1, 2]:
        raise ValueError(
            f"the stance stage's training rows lack a related class: saw "
            f"{[RELATED_LABELS[i] for i in model.classes_]} of {RELATED_LABELS}"
        )


def _fit_trees(
    x: np.ndarray, y: np.ndarray, sample_weight: np.ndarray, config: TrainingConfig
) -> TreeEnsemble:
    model = _booster(config)
    # Trees need no standardising; the sample weights balance the classes.
    model.fit(x, y, sample_weight=sample_weight)
    _check_classes(model)
    return _ensemble_from_boosting(model, np.arange(x.shape[1]))


def _fit_logistic(
    x: np.ndarray, y: np.ndarray, sample_weight: np.ndarray, config: TrainingConfig
) -> DenseNetwork:
    mean, scale = _standardiser(x)
    model = LogisticRegression(C=config.stance_c, max_iter=5000)
    model.fit((x - mean) / scale, y, sample_weight=sample_weight)
    _check_classes(model)
    return _network_from_logistic(model, np.arange(x.shape[1]), mean, scale)


def _fit_mlp(
    x: np.ndarray, y: np.ndarray, sample_weight: np.ndarray, config: TrainingConfig, seed: int
) -> DenseNetwork:
    mean, scale = _standardiser(x)
    model = MLPClassifier(
        hidden_layer_sizes=(config.stance_hidden,),
        alpha=config.stance_alpha,
        max_iter=400,
        early_stopping=False,
        random_state=seed,
    )
    model.fit((x - mean) / scale, y, sample_weight=sample_weight)
    _check_classes(model)
    return _network_from_mlp(model, np.arange(x.shape[1]), mean, scale)


def with_short_versions(pairs: PairSet, seed: int) -> PairSet:
    """``pairs`` plus, for every pair, a copy whose body is cut to its first 1 to 3 sentences.

    FNC-1 bodies are whole articles, but the service also judges a sentence
    or a paragraph: without short bodies in training, a short text sharing
    two topical words with a claim looks far more related than it is. The
    label is kept: the lead of an article states its stance as the article does.
    """
    rng = np.random.default_rng(seed)
    short_bodies = {}
    for body_id, body in pairs.bodies.items():
        sentences = split_sentences(body)
        keep = int(rng.integers(1, 4))
        if len(sentences) > keep:
            short_bodies[body_id + SHORT_VERSION_SUFFIX] = body[: sentences[keep - 1].end]
    rows = [i for i, b in enumerate(pairs.body_ids) if b + SHORT_VERSION_SUFFIX in short_bodies]
    return PairSet(
        headlines=pairs.headlines + [pairs.headlines[i] for i in rows],
        body_ids=pairs.body_ids + [pairs.body_ids[i] + SHORT_VERSION_SUFFIX for i in rows],
        bodies={**pairs.bodies, **short_bodies},
        stances=None if pairs.stances is None else pairs.stances + [pairs.stances[i] for i in rows],
    )


def with_hard_negatives(
    pairs: PairSet, encoder: TextEncoder, per_headline: int = 1, char_per_headline: int = 0
) -> PairSet:
    """``pairs`` plus, for every headline, the most similar bodies of *other* stories as unrelated.

    FNC-1's unrelated pairs are random, so they almost never share a topical
    word; a model trained on them alone calls any text that shares "security
    architecture" with a claim related. Bodies from another story that share
    the most words with the headline (``per_headline`` of them by word
    TF-IDF cosine, then ``char_per_headline`` more by character n-gram
    cosine) teach it otherwise.
    """
    story = story_of(pairs)
    headlines = list(dict.fromkeys(pairs.headlines))
    body_ids = list(pairs.bodies)
    encoded_headlines = encoder.encode(headlines, claims=True)
    encoded_bodies = encoder.encode([pairs.bodies[b] for b in body_ids])
    body_story = np.array([story["b:" + b] for b in body_ids])
    paired = set(zip(pairs.headlines, pairs.body_ids, strict=True))
    extra_headlines, extra_bodies = [], []
    for representation, wanted in (("word", per_headline), ("char", char_per_headline)):
        if wanted <= 0:
            continue
        similarity = (
            getattr(encoded_headlines, representation) @ getattr(encoded_bodies, representation).T
        ).toarray()
        for i, headline in enumerate(headlines):
            scores = np.where(body_story == story["h:" + headline], -1.0, similarity[i])
            taken = 0
            for j in np.argsort(-scores, kind="stable"):
                if taken == wanted or scores[j] <= 0:
                    break
                if (headline, body_ids[j]) in paired:
                    continue
                paired.add((headline, body_ids[j]))
                extra_headlines.append(headline)
                extra_bodies.append(body_ids[j])
                taken += 1
    return PairSet(
        headlines=pairs.headlines + extra_headlines,
        body_ids=pairs.body_ids + extra_bodies,
        bodies=pairs.bodies,
        stances=None if pairs.stances is None else pairs.stances + ["unrelated"] * len(extra_headlines),
    )
