"""Scoring texts against a reference: similarity, stance per claim and overall, evidence."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from service.domain.encoding import TextEncoder
from service.domain.evidence import Evidence, find_evidence
from service.domain.pair_features import FEATURE_NAMES, compute_pair_features
from service.domain.references import PreparedReference
from service.domain.stance import STANCE_LABELS, StanceModel, combine_claim_stances
from service.domain.workload import Checkpoint, WorkLimits, no_checkpoint

MIN_WORDS = 8
"""Below this many words a text is flagged as too short to judge."""
MIN_KNOWN_FRACTION = 0.5
"""Below this share of words in the background vocabulary a text is flagged."""

_UNRELATED = np.array([0.0, 0.0, 0.0, 1.0])
_COS_WORD = FEATURE_NAMES.index("cos_word")
_COS_CHAR = FEATURE_NAMES.index("cos_char")


@dataclass(frozen=True)
class Stance:
    """A stance label and the probability of each of the four labels."""

    label: str
    scores: dict[str, float]


@dataclass(frozen=True)
class ClaimScore:
    """How a text relates to one claim of the reference."""

    id: str
    similarity: float
    related: float
    stance: Stance


@dataclass(frozen=True)
class TextWarning:
    """Something that makes a score less trustworthy, with a stable code."""

    code: str
    message: str


@dataclass(frozen=True)
class TextScore:
    """The full result for one submitted text."""

    id: str
    similarity: float
    related: float
    stance: Stance
    claims: tuple[ClaimScore, ...]
    warnings: tuple[TextWarning, ...]
    evidence: Evidence | None = None


class UnknownReferenceError(KeyError):
    """No reference has the requested id."""

    def __init__(self, reference_id: str) -> None:
        super().__init__(reference_id)
        self.reference_id = reference_id

    def __str__(self) -> str:
        return f"no reference with id {self.reference_id!r}"


class Scorer:
    """Scores batches of texts against prepared references with one encoder and stance model.

    The scorer holds no per-request state and is safe to share between threads.
    """

    def __init__(
        self,
        encoder: TextEncoder,
        stance_model: StanceModel,
        references: Mapping[str, PreparedReference],
        default_reference: str,
    ) -> None:
        if default_reference not in references:
            raise UnknownReferenceError(default_reference)
        self.encoder = encoder
        self.stance_model = stance_model
        self.references = dict(references)
        self.default_reference = default_reference
        # Build the references' product factors now: once, and before gunicorn forks its
        # workers (preload_app), so that workers share them and no request pays for them.
        for prepared in self.references.values():
            prepared.body.warm_factors("word", "char", "sentence_word")  # similarity, evidence
            prepared.claim_vectors.warm_factors("word", "char", "terms")  # pair features

    def reference(self, reference_id: str | None = None) -> PreparedReference:
        """The prepared reference with ``reference_id`` (the default one for ``None``)."""
        key = self.default_reference if reference_id is None else reference_id
        try:
            return self.references[key]
        except KeyError:
            raise UnknownReferenceError(key) from None

    def score(
        self,
        texts: Sequence[str],
        ids: Sequence[str] | None = None,
        reference_id: str | None = None,
        explain: bool = False,
        limits: WorkLimits | None = None,
        checkpoint: Checkpoint = no_checkpoint,
    ) -> list[TextScore]:
        """Score ``texts`` (in one batch) against a reference; results follow input order.

        ``ids`` are echoed in the results; by default each text's index. Raises
        :class:`~service.domain.workload.WorkLimitError` when the texts exceed
        ``limits`` (checked while tokenising, before the costly steps);
        ``checkpoint`` is called between steps and stops the work by raising.
        """
        reference = self.reference(reference_id)
        if ids is None:
            ids = [str(i) for i in range(len(texts))]
        if len(ids) != len(texts):
            raise ValueError(f"got {len(texts)} texts but {len(ids)} ids")
        if not texts:
            return []
        encoded = self.encoder.encode(texts, limits, checkpoint)
        similarity = self.encoder.similarity(encoded, reference.body)[:, 0]
        checkpoint()

        features = compute_pair_features(
            self.encoder,
            encoded,
            reference.claim_vectors,
            self.stance_model.wording_scores(encoded.word),
        )
        checkpoint()
        n_texts, n_claims, n_features = features.shape
        w = self.encoder.config.char_weight
        claim_similarity = np.clip(
            (1 - w) * features[:, :, _COS_WORD] + w * features[:, :, _COS_CHAR], 0.0, 1.0
        )
        claim_probs = self.stance_model.predict_proba(features.reshape(-1, n_features))
        claim_probs = claim_probs.reshape(n_texts, n_claims, len(STANCE_LABELS))
        # A text without a single word says nothing about any claim: the model's output on
        # all-zero features would be a guess, so such texts are unrelated by rule (and warned).
        claim_probs[encoded.n_tokens == 0] = _UNRELATED
        overall, related = combine_claim_stances(claim_probs, self.stance_model.related_threshold)
        overall_labels = self.stance_model.decide(overall)
        claim_labels = self.stance_model.decide(claim_probs.reshape(-1, len(STANCE_LABELS)))
        claim_labels = claim_labels.reshape(n_texts, n_claims)
        checkpoint()
        evidence = find_evidence(self.encoder, encoded, reference) if explain else None
        checkpoint()

        # Python lists for the per-text loop: indexing them is far cheaper than numpy scalars,
        # and every value (floats, argmax) is the same as read from the arrays.
        claim_similarity_l = claim_similarity.tolist()
        claim_related_l = (1.0 - claim_probs[:, :, 3]).tolist()
        claim_probs_l = claim_probs.tolist()
        claim_labels_l = claim_labels.tolist()
        claim_largest_l = np.argmax(claim_probs, axis=2).tolist()
        overall_l = overall.tolist()
        overall_labels_l = overall_labels.tolist()
        overall_largest_l = np.argmax(overall, axis=1).tolist()
        similarity_l = similarity.tolist()
        related_l = related.tolist()
        n_tokens_l = encoded.n_tokens.tolist()
        n_known_l = encoded.n_known.tolist()

        results = []
        for i in range(n_texts):
            claims = tuple(
                ClaimScore(
                    id=claim.id,
                    similarity=round(claim_similarity_l[i][k], 4),
                    related=round(claim_related_l[i][k], 4),
                    stance=_stance(claim_labels_l[i][k], claim_probs_l[i][k], claim_largest_l[i][k]),
                )
                for k, claim in enumerate(reference.claims)
            )
            results.append(
                TextScore(
                    id=ids[i],
                    similarity=round(similarity_l[i], 4),
                    related=round(related_l[i], 4),
                    stance=_stance(overall_labels_l[i], overall_l[i], overall_largest_l[i]),
                    claims=claims,
                    warnings=_warnings(int(n_tokens_l[i]), int(n_known_l[i])),
                    evidence=evidence[i] if evidence is not None else None,
                )
            )
        return results


def _stance(label_index: int, probabilities: list[float], largest: int) -> Stance:
    """The label and the four probabilities rounded to 4 decimals, still summing to 1.

    ``largest`` is the index of the (first) largest probability, as ``np.argmax`` gives it.
    """
    # Rounded scores are renormalised on the unrounded values; the largest
    # absorbs the rounding so that the four still sum to exactly 1.
    rounded = [round(p, 4) for p in probabilities]
    rounded[largest] = round(1.0 - sum(r for j, r in enumerate(rounded) if j != largest), 4)
    return Stance(
        label=STANCE_LABELS[label_index],
        scores=dict(zip(STANCE_LABELS, rounded, strict=True)),
    )


def _warnings(n_tokens: int, n_known: int) -> tuple[TextWarning, ...]:
    if n_tokens == 0:
        return (TextWarning("no_words", "the text has no words; it cannot be judged"),)
    warnings = []
    if n_tokens < MIN_WORDS:
        warnings.append(
            TextWarning(
                "too_short",
                f"the text has {n_tokens} word(s); below {MIN_WORDS} the stance is unreliable",
            )
        )
    if n_known / n_tokens < MIN_KNOWN_FRACTION:
        warnings.append(
            TextWarning(
                "mostly_out_of_vocabulary",
                f"only {100 * n_known / n_tokens:.0f}% of the words are in the English background "
                "vocabulary; the text is probably not English, so scores are unreliable",
            )
        )
    return tuple(warnings)
