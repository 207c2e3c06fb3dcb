"""Scoring texts against a reference: similarity, stance per claim and overall, evidence."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from service.domain.encoding import TextEncoder
from service.domain.errors import DiscourseError
from service.domain.evidence import Evidence, find_evidence
from service.domain.language import Language, LanguageIdentifier, shared_identifier
from service.domain.normalization import NormalizedText, normalize
from service.domain.pair_features import FEATURE_NAMES, compute_pair_features
from service.domain.references import PreparedReference
from service.domain.stance import STANCE_LABELS, StanceModel, combine_claim_stances
from service.domain.vectors import EncodedTexts, blend_cosines
from service.domain.workload import (
    CHARS_PER_CHUNK,
    TEXTS_PER_CHUNK,
    Checkpoint,
    WorkCounter,
    WorkLimitError,
    WorkLimits,
    char_chunks,
    no_checkpoint,
)

__all__ = [
    "MIN_KNOWN_FRACTION",
    "MIN_LINK_FRACTION",
    "MIN_LISTED_FRACTION",
    "MIN_WORDS",
    "MISMATCH_MIN_PROBABILITY",
    "MISMATCH_MIN_WORDS",
    "STANCE_LANGUAGES",
    "ClaimScore",
    "Scorer",
    "Stance",
    "TextScore",
    "TextWarning",
    "UnknownReferenceError",
]

MIN_WORDS = 8
"""Below this many words a text is flagged as too short to judge."""
MIN_KNOWN_FRACTION = 0.5
"""Below this share of words in the model's vocabulary a text is flagged (``many_unknown_words``)."""
MIN_LISTED_FRACTION = 0.1
"""From this share of words in keyword lists or repeated sentences a text is flagged."""
MIN_LINK_FRACTION = 0.5
"""From this share of the visible characters in URLs and e-mail addresses a text is flagged."""
MISMATCH_MIN_PROBABILITY = 0.5
"""A text is in another language than the reference when its identified language differs and
the identifier gives it at least this probability; then no stance is guessed."""
STANCE_LANGUAGES: tuple[str, ...] = ("en",)
"""Languages the stance model was trained in (FNC-1 is English): elsewhere a text gets
similarity and evidence, and ``stance_not_modelled`` instead of a stance."""
MISMATCH_MIN_WORDS = 3
"""Below this many words the language is not trusted enough to withhold a stance."""

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
    """How a text relates to one claim of the reference (``related`` and ``stance`` are
    ``None`` when the text is in another language than the reference)."""

    id: str
    similarity: float
    related: float | None
    stance: Stance | None


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
    related: float | None
    stance: Stance | None
    claims: tuple[ClaimScore, ...]
    warnings: tuple[TextWarning, ...]
    language: Language | None = None
    evidence: Evidence | None = None
    reference_language: str = "en"
    """The language of the reference variant the text was scored against."""


class UnknownReferenceError(DiscourseError, KeyError):
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
        language_identifier: LanguageIdentifier | None = None,
    ) -> None:
        if default_reference not in references:
            raise UnknownReferenceError(default_reference)
        self.encoder = encoder
        self.languages = language_identifier or shared_identifier()
        self.stance_model = stance_model
        self.references = dict(references)
        self.default_reference = default_reference
        # Build the references' product factors now: once, and before gunicorn forks its
        # workers (preload_app), so that workers share them and no request pays for them.
        for main in self.references.values():
            for prepared in (main, *main.variants.values()):
                prepared.body.warm_factors("word", "char", "sentence_word")  # similarity, evidence
                prepared.claim_vectors.warm_factors("word", "char", "terms")  # pair features

    def reference(self, reference_id: str | PreparedReference | None = None) -> PreparedReference:
        """The prepared reference with ``reference_id`` (the default one for ``None``); a
        :class:`PreparedReference` (one sent with a request) is returned as it is."""
        if isinstance(reference_id, PreparedReference):
            return reference_id
        key = self.default_reference if reference_id is None else reference_id
        try:
            return self.references[key]
        except KeyError:
            raise UnknownReferenceError(key) from None

    def score(
        self,
        texts: Sequence[str | NormalizedText],
        *,
        ids: Sequence[str] | None = None,
        reference_id: str | PreparedReference | None = None,
        explain: bool = False,
        formats: Sequence[str] | str = "text",
        limits: WorkLimits | None = None,
        checkpoint: Checkpoint = no_checkpoint,
    ) -> list[TextScore]:
        """Score ``texts`` against a reference; results follow input order.

        The texts are scored in chunks of at most
        :data:`~service.domain.workload.TEXTS_PER_CHUNK` texts and
        :data:`~service.domain.workload.CHARS_PER_CHUNK` characters; each text's scores are the
        same in any batch.

        Parameters
        ----------
        texts:
            The texts as sent (strings), or already normalised.
        ids:
            Echoed in the results; by default each text's index.
        reference_id:
            A reference id; ``None`` for the default reference; or a prepared reference
            (one sent with the request, see :mod:`service.domain.reference_cache`).
        explain:
            Add :class:`Evidence` (offsets index the texts as sent).
        formats:
            ``"text"``, ``"html"`` or ``"markdown"``, for all texts or one per text.
        limits:
            Sentences and words allowed per text and per call (checked while
            tokenising, before the costly steps); ``None``: no limit.
        checkpoint:
            Called between steps; raises to stop the work (a deadline, a client gone).

        Returns
        -------
        list of TextScore
            One per text, in order.

        Raises
        ------
        UnknownReferenceError
            No reference has ``reference_id``.
        WorkLimitError
            The texts exceed ``limits``.
        ValueError
            ``ids`` or ``formats`` do not match ``texts`` in length, or an unknown format.
        """
        reference = self.reference(reference_id)
        if ids is None:
            ids = [str(i) for i in range(len(texts))]
        if len(ids) != len(texts):
            raise ValueError(f"got {len(texts)} texts but {len(ids)} ids")
        if isinstance(formats, str):
            formats = [formats] * len(texts)
        if len(formats) != len(texts):
            raise ValueError(f"got {len(texts)} texts but {len(formats)} formats")
        if not texts:
            return []
        # Scored chunk by chunk: a chunk's temporaries (spans, token lists, feature rows) are
        # freed before the next chunk's are made, so a large request's peak, and the memory
        # the allocator keeps after it, is that of one chunk (docs/robustness.md). The limits
        # count the whole request; each text's scores do not depend on its neighbours.
        counter = WorkCounter(limits)
        results: list[TextScore] = []
        lengths = [len(t) if isinstance(t, str) else len(t.text) for t in texts]
        for lo, hi in char_chunks(lengths, CHARS_PER_CHUNK, TEXTS_PER_CHUNK):
            normalized = [
                t if isinstance(t, NormalizedText) else normalize(t, f)
                for t, f in zip(texts[lo:hi], formats[lo:hi], strict=True)
            ]
            try:
                encoded = self.encoder.encode(normalized, counter=counter, checkpoint=checkpoint)
            except WorkLimitError:
                continue  # the rest is only counted, so that the error names every text over a limit
            results.extend(self._score_chunk(reference, normalized, encoded, ids[lo:hi], explain, checkpoint))
        counter.raise_if_over()
        return results

    def _score_chunk(
        self,
        reference: PreparedReference,
        normalized: Sequence[NormalizedText],
        encoded: EncodedTexts,
        ids: Sequence[str],
        explain: bool,
        checkpoint: Checkpoint,
    ) -> list[TextScore]:
        """Score encoded texts, each against the reference's variant in its language."""
        languages = self.languages.identify([n.text for n in normalized])
        checkpoint()
        groups: dict[str, list[int]] = {}
        for i, (language, n_tokens) in enumerate(zip(languages, encoded.n_tokens.tolist(), strict=True)):
            groups.setdefault(_variant_language(reference, language, n_tokens), []).append(i)
        if len(groups) == 1:
            [language_code] = groups
            return self._score_encoded(
                reference.variant(language_code), normalized, encoded, languages, ids, explain, checkpoint
            )
        results: list[TextScore | None] = [None] * len(normalized)
        for language_code, rows in groups.items():
            part = self._score_encoded(
                reference.variant(language_code),
                [normalized[i] for i in rows],
                encoded.take(rows),
                [languages[i] for i in rows],
                [ids[i] for i in rows],
                explain,
                checkpoint,
            )
            for i, result in zip(rows, part, strict=True):
                results[i] = result
        return [r for r in results if r is not None]

    def _score_encoded(
        self,
        reference: PreparedReference,
        normalized: Sequence[NormalizedText],
        encoded: EncodedTexts,
        languages: Sequence[Language | None],
        ids: Sequence[str],
        explain: bool,
        checkpoint: Checkpoint,
    ) -> list[TextScore]:
        """Score encoded texts against one variant of a reference (see :meth:`score`)."""
        similarity = self.encoder.similarity(encoded, reference.body)[:, 0]
        checkpoint()
        reference_language = reference.reference.metadata.get("language", "en")
        # The stance model reads one language (STANCE_LANGUAGES); elsewhere only similarity and evidence.
        modelled = reference_language in STANCE_LANGUAGES
        mismatch = [
            language is not None
            and language.code != reference_language
            and language.probability >= MISMATCH_MIN_PROBABILITY
            and n_tokens >= MISMATCH_MIN_WORDS
            for language, n_tokens in zip(languages, encoded.n_tokens.tolist(), strict=True)
        ]

        features = compute_pair_features(
            self.encoder,
            encoded,
            reference.claim_vectors,
            self.stance_model.wording_scores(encoded.word),
        )
        features = self.stance_model.with_latent_cosine(features, encoded.word, reference.claim_vectors.word)
        checkpoint()
        n_texts, n_claims, n_features = features.shape
        claim_similarity = blend_cosines(
            features[:, :, _COS_WORD], features[:, :, _COS_CHAR], self.encoder.config.char_weight
        )
        claim_probs = self.stance_model.predict_proba(features.reshape(-1, n_features))
        claim_probs = claim_probs.reshape(n_texts, n_claims, len(STANCE_LABELS))
        # A text without a single word says nothing about any claim: the model's output on
        # all-zero features would be a guess, so such texts are unrelated by rule (and warned),
        # and punctuation's character n-grams are no similarity either.
        wordless = encoded.n_tokens == 0
        claim_probs[wordless] = _UNRELATED
        similarity[wordless] = 0.0
        claim_similarity[wordless] = 0.0
        overall, related = combine_claim_stances(claim_probs, self.stance_model.related_threshold)
        overall_labels = self.stance_model.decide(overall)
        claim_labels = self.stance_model.decide(claim_probs.reshape(-1, len(STANCE_LABELS)))
        claim_labels = claim_labels.reshape(n_texts, n_claims)
        checkpoint()
        evidence = (
            find_evidence(self.encoder, encoded, reference, by_characters=not modelled) if explain else None
        )
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
        n_listed_l = encoded.n_listed.tolist()

        results = []
        for i in range(n_texts):
            judged = modelled and not mismatch[i]
            claims = tuple(
                ClaimScore(
                    id=claim.id,
                    similarity=round(claim_similarity_l[i][k], 4),
                    related=round(claim_related_l[i][k], 4) if judged else None,
                    stance=_stance(claim_labels_l[i][k], claim_probs_l[i][k], claim_largest_l[i][k])
                    if judged
                    else None,
                )
                for k, claim in enumerate(reference.claims)
            )
            results.append(
                TextScore(
                    id=ids[i],
                    similarity=round(similarity_l[i], 4),
                    related=round(related_l[i], 4) if judged else None,
                    stance=_stance(overall_labels_l[i], overall_l[i], overall_largest_l[i])
                    if judged
                    else None,
                    claims=claims,
                    warnings=_warnings(
                        normalized[i],
                        int(n_tokens_l[i]),
                        int(n_known_l[i]),
                        float(n_listed_l[i]),
                        languages[i] if mismatch[i] else None,
                        reference_language,
                    )
                    + (() if modelled or mismatch[i] else (_not_modelled(reference_language),)),
                    language=languages[i],
                    evidence=evidence[i] if evidence is not None else None,
                    reference_language=reference_language,
                )
            )
        return results


def _variant_language(reference: PreparedReference, language: Language | None, n_tokens: int) -> str:
    """The language of the variant of ``reference`` a text in ``language`` is scored against:
    its own when the reference has that variant and the identification is trusted, else the
    reference's main language."""
    if (
        language is not None
        and language.code in reference.variants
        and language.probability >= MISMATCH_MIN_PROBABILITY
        and n_tokens >= MISMATCH_MIN_WORDS
    ):
        return language.code
    return reference.reference.metadata.get("language", "en")


def _not_modelled(reference_language: str) -> TextWarning:
    return TextWarning(
        "stance_not_modelled",
        f"the text was scored against the {reference_language} variant of the reference; the stance "
        f"model reads {', '.join(STANCE_LANGUAGES)} only, so there is no stance: similarity and "
        "evidence are given",
    )


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


def _warnings(
    text: NormalizedText,
    n_tokens: int,
    n_known: int,
    n_listed: float,
    mismatch: Language | None,
    reference_language: str,
) -> tuple[TextWarning, ...]:
    warnings = []
    if text.markup_detected:
        warnings.append(
            TextWarning(
                "markup_detected",
                f"the text looks like {'HTML' if text.markup_detected == 'html' else 'Markdown'}: send "
                f'"format": "{text.markup_detected}" so that its markup is not read as words',
            )
        )
    visible = len(text.text) - text.text.count(" ") + text.link_chars
    if text.link_chars and text.link_chars >= MIN_LINK_FRACTION * max(visible, 1):
        warnings.append(
            TextWarning(
                "mostly_links",
                f"{100 * text.link_chars / max(visible, 1):.0f}% of the text is URLs or e-mail "
                "addresses, which are not read as words",
            )
        )
    if mismatch is not None:
        warnings.append(
            TextWarning(
                "language_mismatch",
                f"the text is in another language ({mismatch.code}, probability {mismatch.probability:.2f}) "
                f"than the reference ({reference_language}); no stance is given, only similarity",
            )
        )
    if n_tokens == 0:
        warnings.append(TextWarning("no_words", "the text has no words; it cannot be judged"))
        return tuple(warnings)
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
                "many_unknown_words",
                f"{100 * (n_tokens - n_known) / n_tokens:.0f}% of the words are not in the model's "
                "vocabulary (rare words, names or another language); the scores rest on the rest",
            )
        )
    if n_listed >= MIN_LISTED_FRACTION * n_tokens:
        warnings.append(
            TextWarning(
                "keyword_list",
                f"{100 * n_listed / n_tokens:.0f}% of the words are in keyword lists or repeated "
                "sentences; they count far less than words in sentences",
            )
        )
    return tuple(warnings)
