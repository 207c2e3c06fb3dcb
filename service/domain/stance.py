"""The two-stage stance model, evaluated with numpy alone.

Stage 1 gives the probability that a text is about a claim (related); stage 2
splits related pairs into agree, disagree and discuss. Each stage is a small
dense network (a logistic regression is one with no hidden layer), a boosted
tree ensemble over pair features, or a weighted average of such classifiers.
Stage 2 also reads the :class:`WordingModel`'s scores of the text's own words. Every part is plain
arrays, so loading a model never runs code from a file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

import numpy as np
import scipy.sparse as sp

__all__ = [
    "RELATED_LABELS",
    "STANCE_LABELS",
    "AveragedClassifier",
    "Classifier",
    "DenseNetwork",
    "LatentSpace",
    "StanceModel",
    "TreeEnsemble",
    "WordingModel",
    "as_label_indices",
    "combine_claim_stances",
]

STANCE_LABELS: tuple[str, ...] = ("agree", "disagree", "discuss", "unrelated")
"""The four stance labels, in the column order of every probability array."""

RELATED_LABELS: tuple[str, ...] = STANCE_LABELS[:3]

# Below this norm, latent coordinates of a unit-length TF-IDF vector are rounding errors.
_LATENT_ZERO = 1e-9


@dataclass(frozen=True)
class DenseNetwork:
    """A feed-forward network: standardise, then affine layers with ReLU between them.

    A final layer with one output is read as a logistic unit (binary case), with
    more outputs as a softmax.
    """

    feature_indices: np.ndarray  # columns of the pair-feature array this network reads
    mean: np.ndarray
    scale: np.ndarray
    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]

    def __post_init__(self) -> None:
        width = len(self.feature_indices)
        if self.mean.shape != (width,) or self.scale.shape != (width,):
            raise ValueError("mean and scale must have one entry per feature")
        if len(self.weights) != len(self.biases) or not self.weights:
            raise ValueError("a network needs as many bias vectors as weight matrices, at least one")
        for w, b in zip(self.weights, self.biases, strict=True):
            if w.ndim != 2 or b.shape != (w.shape[1],):
                raise ValueError("each weight matrix must be 2-D with a matching bias vector")
            if w.shape[0] != width:
                raise ValueError(f"layer expects {w.shape[0]} inputs but receives {width}")
            width = w.shape[1]
        if not all(np.isfinite(a).all() for a in (self.mean, self.scale, *self.weights, *self.biases)):
            raise ValueError("network parameters must be finite")

    @property
    def n_outputs(self) -> int:
        """Number of output columns of the last layer."""
        return self.weights[-1].shape[1]

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities for rows of ``features`` (all pair features): shape (M, C)."""
        hidden = (features[:, self.feature_indices] - self.mean) / self.scale
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            hidden = hidden @ w + b
            if i < last:
                np.maximum(hidden, 0.0, out=hidden)
        if self.n_outputs == 1:
            positive = _sigmoid(hidden[:, 0])
            return np.column_stack([1.0 - positive, positive])
        return _softmax(hidden)


@dataclass(frozen=True)
class TreeEnsemble:
    """Gradient-boosted decision trees (one tree per class and round), stored as flat node arrays.

    Node ``i`` sends a row left when ``x[feature[i]] <= threshold[i]``;
    ``left[i] == -1`` marks a leaf whose ``value[i]`` is added to the raw
    score of class ``tree_class[t]`` of its tree. Probabilities are the
    softmax of ``baseline`` plus the sum of the leaves reached.
    """

    feature_indices: np.ndarray
    feature: np.ndarray  # (nodes,) column of the tree's input, per node
    threshold: np.ndarray  # (nodes,)
    left: np.ndarray  # (nodes,) child node, -1 for a leaf
    right: np.ndarray  # (nodes,)
    value: np.ndarray  # (nodes,) leaf values
    roots: np.ndarray  # (trees,) root node of each tree
    tree_class: np.ndarray  # (trees,) class each tree adds to
    baseline: np.ndarray  # (classes,)
    depth: int

    def __post_init__(self) -> None:
        n_nodes = len(self.feature)
        if not all(len(a) == n_nodes for a in (self.threshold, self.left, self.right, self.value)):
            raise ValueError("node arrays must all have one entry per node")
        if len(self.roots) != len(self.tree_class) or not len(self.roots):
            raise ValueError("roots and tree_class must have one entry per tree, at least one")
        inner = self.left >= 0
        for name, nodes in (("left", self.left[inner]), ("right", self.right[inner]), ("roots", self.roots)):
            if nodes.size and (nodes.min() < 0 or nodes.max() >= n_nodes):
                raise ValueError(f"{name} points outside the node arrays")
        if inner.any() and (
            self.feature[inner].min() < 0 or self.feature[inner].max() >= len(self.feature_indices)
        ):
            raise ValueError("a node splits on a feature the ensemble does not read")
        if self.tree_class.min() < 0 or self.tree_class.max() >= len(self.baseline):
            raise ValueError("tree_class names a class outside the baseline")
        if not (np.isfinite(self.threshold[inner]).all() and np.isfinite(self.value).all()):
            raise ValueError("thresholds and leaf values must be finite")
        self._layout  # noqa: B018  (built now, so that a tree deeper than ``depth`` fails at load)

    @property
    def n_outputs(self) -> int:
        """Number of classes; 1 for a binary ensemble (one log-odds score, two probability columns)."""
        return len(self.baseline)

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities for rows of ``features`` (all pair features): shape (M, C)."""
        levels, leaf_values, class_bounds = self._layout
        n_rows, n_trees = features.shape[0], len(self.roots)
        values = np.ascontiguousarray(features, dtype=np.float64).ravel()
        row_starts = (np.arange(n_rows) * features.shape[1])[:, None]
        tree_offsets = np.arange(n_trees)
        # Every tree is laid out as a perfect binary tree, level by level, so a row's position
        # at the next level is 2 * position + (went right): three flat gathers per level.
        position = np.zeros((n_rows, n_trees), dtype=np.intp)
        for level, (columns, thresholds) in enumerate(levels):
            flat = (tree_offsets << level) + position
            went_right = ~(values.take(row_starts + columns.take(flat)) <= thresholds.take(flat))
            position <<= 1
            position += went_right
        reached = leaf_values.take((tree_offsets << len(levels)) + position)  # (M, trees)
        raw = np.zeros((n_rows, self.n_outputs)) + self.baseline
        for c, (lo, hi) in enumerate(class_bounds):
            # Tree after tree, in order (a Fortran-ordered sum adds column after column): the
            # order the validation figures were computed in, so probabilities stay bit-identical.
            raw[:, c] += np.asfortranarray(reached[:, lo:hi]).sum(axis=1)
        if self.n_outputs == 1:  # binary: one raw score, the log-odds of the positive class
            positive = _sigmoid(raw[:, 0])
            return np.column_stack([1.0 - positive, positive])
        return _softmax(raw)

    @cached_property
    def _layout(self) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray, list[tuple[int, int]]]:
        """The trees as perfect binary trees of ``depth`` levels, grouped by class.

        A leaf above the last level becomes a split that sends every row, NaN
        included, to a copy of itself (threshold +inf, both children the same
        leaf), so results equal a walk of the original nodes; within a class the
        trees keep their order, so the leaf values are summed in the same order.
        Returns, per level, the pair-feature column and threshold of each
        (tree, position) flattened; the leaf value of each (tree, position) of
        the last level; and the [lo, hi) range of trees of each class.

        Raises ``ValueError`` when a tree is deeper than ``depth``.
        """
        order = np.argsort(self.tree_class, kind="stable")
        bounds = np.concatenate([[0], np.cumsum(np.bincount(self.tree_class, minlength=self.n_outputs))])
        class_bounds = [(int(bounds[c]), int(bounds[c + 1])) for c in range(self.n_outputs)]
        node = self.roots[order][:, None]  # (trees, positions at this level)
        levels = []
        for _ in range(self.depth):
            leaf = self.left[node] < 0
            columns = self.feature_indices[np.where(leaf, 0, self.feature[node])]
            thresholds = np.where(leaf, np.inf, self.threshold[node])
            children = np.stack(
                [np.where(leaf, node, self.left[node]), np.where(leaf, node, self.right[node])], axis=2
            )
            levels.append((columns.ravel(), thresholds.ravel()))
            node = children.reshape(len(order), -1)
        if (self.left[node] >= 0).any():
            raise ValueError(f"a tree is deeper than the ensemble's depth ({self.depth})")
        return levels, self.value[node].ravel(), class_bounds


@dataclass(frozen=True)
class WordingModel:
    """A linear model of how a text's own words lean: agree, disagree or discuss, whatever the claim.

    It reads a text's word TF-IDF vector (the encoder's vocabulary) and
    gives one score (a logit) per related label. Debunking articles share
    words ("hoax", "satirical", "prank") that no fixed word list anticipates;
    these weights are learnt from the training articles, and the stance
    stage learns how far to trust them from scores computed out of fold.
    """

    weights: np.ndarray  # (vocabulary terms, 3) in RELATED_LABELS order
    intercept: np.ndarray  # (3,)

    def __post_init__(self) -> None:
        if self.weights.ndim != 2 or self.weights.shape[1] != len(RELATED_LABELS):
            raise ValueError(f"wording weights must have shape (terms, {len(RELATED_LABELS)})")
        if self.intercept.shape != (len(RELATED_LABELS),):
            raise ValueError(f"the wording intercept must have {len(RELATED_LABELS)} entries")
        if not (np.isfinite(self.weights).all() and np.isfinite(self.intercept).all()):
            raise ValueError("wording parameters must be finite")

    @property
    def n_terms(self) -> int:
        """Size of the vocabulary the weights are indexed by."""
        return self.weights.shape[0]

    def scores(self, word_vectors: sp.csr_matrix) -> np.ndarray:
        """Scores of texts given their word TF-IDF rows: shape (N, 3)."""
        if word_vectors.shape[1] != self.n_terms:
            raise ValueError(
                f"word vectors have {word_vectors.shape[1]} columns, the wording model {self.n_terms} terms"
            )
        return np.asarray(word_vectors @ self.weights) + self.intercept


@dataclass(frozen=True)
class LatentSpace:
    """A latent-semantic space of the word TF-IDF vectors: the top right singular vectors of the
    training texts' TF-IDF matrix (a truncated SVD, as in latent semantic analysis).

    Two texts about one subject in different words (a debate claim and a reader's comment)
    can be close in this space while sharing few terms; stage 1 may read the cosine of claim
    and text here as one more feature (:meth:`cosines`).
    """

    components: np.ndarray  # (dimensions, vocabulary terms)

    def __post_init__(self) -> None:
        if self.components.ndim != 2 or not self.components.shape[0]:
            raise ValueError("latent components must have shape (dimensions >= 1, terms)")
        if not np.isfinite(self.components).all():
            raise ValueError("latent components must be finite")

    @property
    def n_terms(self) -> int:
        """Size of the vocabulary the components are indexed by."""
        return self.components.shape[1]

    def project(self, word_vectors: sp.csr_matrix) -> np.ndarray:
        """Unit-length coordinates of texts given their word TF-IDF rows: shape (N, dimensions).

        A text with no coordinate (no word of the space) stays all zeros, so its cosines are 0;
        so does one whose coordinates are only rounding errors (norm below 1e-9, against 1 for a
        text within the space): scaled to unit length, they would give any cosine at all.
        """
        if word_vectors.shape[1] != self.n_terms:
            raise ValueError(
                f"word vectors have {word_vectors.shape[1]} columns, the latent space {self.n_terms} terms"
            )
        coordinates = np.asarray(word_vectors @ self.components.T)
        norms = np.linalg.norm(coordinates, axis=1, keepdims=True)
        return np.where(norms > _LATENT_ZERO, coordinates / np.maximum(norms, _LATENT_ZERO), 0.0)

    def cosines(self, text_vectors: sp.csr_matrix, claim_vectors: sp.csr_matrix) -> np.ndarray:
        """Cosine of every (text, claim) pair in the latent space: shape (N texts, K claims)."""
        return self.project(text_vectors) @ self.project(claim_vectors).T


@dataclass(frozen=True)
class AveragedClassifier:
    """The weighted mean of the class probabilities of several classifiers.

    Boosted trees cut the pair features into boxes and small networks draw
    smooth boundaries through them, so they err on different pairs; on the
    validation stories the mean of both did better than the trees alone (the
    model card and the README give the figures).
    """

    members: tuple[Classifier, ...]
    weights: np.ndarray  # (members,) non-negative, summing to 1

    def __post_init__(self) -> None:
        if not self.members or self.weights.shape != (len(self.members),):
            raise ValueError("an average needs at least one member and one weight per member")
        if not np.isfinite(self.weights).all() or (self.weights < 0).any():
            raise ValueError("member weights must be finite and non-negative")
        if abs(float(self.weights.sum()) - 1.0) > 1e-9:
            raise ValueError(f"member weights must sum to 1, not {float(self.weights.sum())!r}")
        if len({member.n_outputs for member in self.members}) != 1:
            raise ValueError("every member must give the same number of classes")

    @property
    def n_outputs(self) -> int:
        """Number of classes (that of every member)."""
        return self.members[0].n_outputs

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Weighted mean of the members' probabilities: shape (M, C), rows sum to 1."""
        result = self.weights[0] * self.members[0].predict_proba(features)
        for weight, member in zip(self.weights[1:], self.members[1:], strict=True):
            result += weight * member.predict_proba(features)
        return result


class Classifier(Protocol):
    """What :class:`StanceModel` needs of each stage."""

    @property
    def n_outputs(self) -> int: ...

    def predict_proba(self, features: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class StanceModel:
    """Combines the relatedness network and the stance classifier into four-way stance probabilities."""

    relatedness: DenseNetwork | TreeEnsemble
    stance: Classifier
    related_threshold: float = 0.5
    # None only for models whose stance stage ignores the wording columns (tests).
    wording: WordingModel | None = None
    # With a latent space, the pair features get one more column after the shared ones: the
    # latent cosine of text and claim (:meth:`with_latent_cosine`), which stage 1 may read.
    latent: LatentSpace | None = None

    def __post_init__(self) -> None:
        if self.relatedness.n_outputs != 1:
            raise ValueError("the relatedness network must have a single logistic output")
        if self.stance.n_outputs != len(RELATED_LABELS):
            raise ValueError(f"the stance classifier must have {len(RELATED_LABELS)} outputs")
        if not 0.0 < self.related_threshold < 1.0:
            raise ValueError("related_threshold must lie strictly between 0 and 1")

    def with_latent_cosine(
        self, features: np.ndarray, text_vectors: sp.csr_matrix, claim_vectors: sp.csr_matrix
    ) -> np.ndarray:
        """``features`` (N texts, K claims, F) as this model reads them: unchanged without a
        latent space, else with the latent cosine of each pair appended, shape (N, K, F + 1).

        ``text_vectors`` and ``claim_vectors`` are the texts' and claims' word TF-IDF rows.
        """
        if self.latent is None:
            return features
        cosines = self.latent.cosines(text_vectors, claim_vectors)
        return np.concatenate([features, cosines[:, :, None]], axis=2)

    def wording_scores(self, word_vectors: sp.csr_matrix) -> np.ndarray:
        """The :class:`WordingModel` scores of texts (zeros without one): shape (N, 3)."""
        if self.wording is None:
            return np.zeros((word_vectors.shape[0], len(RELATED_LABELS)))
        return self.wording.scores(word_vectors)

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Probabilities of (agree, disagree, discuss, unrelated) per row: shape (M, 4), rows sum to 1."""
        related = self.relatedness.predict_proba(features)[:, 1]
        conditional = self.stance.predict_proba(features)
        return np.column_stack([related[:, None] * conditional, 1.0 - related])

    def decide(self, probabilities: np.ndarray) -> np.ndarray:
        """Label index per row: unrelated below the threshold, else the most probable related label."""
        related = 1.0 - probabilities[:, 3]
        best_related = np.argmax(probabilities[:, :3], axis=1)
        return np.where(related >= self.related_threshold, best_related, 3)

    def labels(self, probabilities: np.ndarray) -> list[str]:
        """Label names for :meth:`decide`."""
        return [STANCE_LABELS[i] for i in self.decide(probabilities)]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free form of 1 / (1 + exp(-x))


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def combine_claim_stances(
    claim_probabilities: np.ndarray, related_threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Overall stance of each text from its stances towards every claim.

    ``claim_probabilities`` has shape (N texts, K claims, 4). The rule:

    * ``related`` is the highest relatedness over the claims: a text is about
      the reference if it is about any of its claims.
    * The related part is split as the claims the text is about see it: the
      conditional agree/disagree/discuss distributions of the claims whose
      relatedness reaches the threshold are averaged, weighted by relatedness;
      when no claim reaches it, the single most related claim is used.

    Returns ``(probabilities (N, 4), related (N,))``.
    """
    related_per_claim = 1.0 - claim_probabilities[:, :, 3]  # (N, K)
    related = related_per_claim.max(axis=1)
    conditional = claim_probabilities[:, :, :3] / np.maximum(related_per_claim, 1e-12)[:, :, None]
    weights = np.where(related_per_claim >= related_threshold, related_per_claim, 0.0)
    none_related = weights.sum(axis=1) == 0
    if none_related.any():
        best = np.argmax(related_per_claim[none_related], axis=1)
        fallback = np.zeros_like(related_per_claim[none_related])
        fallback[np.arange(len(best)), best] = 1.0
        weights[none_related] = fallback
    weights = weights / weights.sum(axis=1, keepdims=True)
    mixed = np.einsum("nk,nkc->nc", weights, conditional)
    # A text related to no claim at all (P(related) exactly 0) has no split to
    # average; any split gives the same probabilities, so use an even one.
    total = mixed.sum(axis=1, keepdims=True)
    mixed = np.divide(mixed, total, out=np.full_like(mixed, 1.0 / mixed.shape[1]), where=total > 0)
    probabilities = np.column_stack([related[:, None] * mixed, 1.0 - related])
    return probabilities, related


def as_label_indices(labels: Sequence[str]) -> np.ndarray:
    """Map label names to column indices of :data:`STANCE_LABELS`, rejecting unknown names."""
    lookup = {name: i for i, name in enumerate(STANCE_LABELS)}
    try:
        return np.array([lookup[label] for label in labels], dtype=np.int64)
    except KeyError as error:
        raise ValueError(f"unknown stance label {error.args[0]!r}; expected one of {STANCE_LABELS}") from None
