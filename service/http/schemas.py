"""Marshmallow schemas of every request and response; the OpenAPI document is generated from them.

Field names are the API contract: clients code against them, so they change
only with a new API version.
"""

from __future__ import annotations

from collections.abc import Sized

from marshmallow import Schema, ValidationError, fields, post_dump, validate, validates

from service.config import Settings
from service.domain import input_rules
from service.domain.input_rules import MAX_ID_CHARS, NOT_BLANK_PATTERN  # the one place of these rules
from service.domain.normalization import FORMATS
from service.domain.stance import STANCE_LABELS


class OverLimit(str):
    """A validation message about a configured limit: the problem's detail says "Over the limits".

    ``given`` says how much was sent where the message does not (``"5 given"``).
    """

    given: str = ""

    def __new__(cls, message: str, given: str = "") -> OverLimit:
        made = super().__new__(cls, message)
        made.given = given
        return made


class MaxTexts(validate.Validator):
    """At most ``max`` texts in a request.

    ``min``, ``max`` and ``equal`` are read by apispec as for :class:`validate.Length`: the limit
    shows in the OpenAPI document as ``maxItems``.
    """

    min = None
    equal = None

    def __init__(self, max_texts: int) -> None:
        self.max = max_texts

    def __call__(self, value: Sized) -> Sized:
        if len(value) > self.max:
            raise ValidationError(OverLimit(f"At most {self.max} texts per request.", f"{len(value)} given"))
        return value


class TextRules(validate.Validator):
    """The rules of a text (:func:`input_rules.text_problem`: not blank, at most ``max`` characters).

    ``min``, ``max`` and ``equal`` are read by apispec as for :class:`validate.Length`, so the
    limit shows in the OpenAPI document as ``maxLength``.
    """

    min = None
    equal = None

    def __init__(self, max_text_chars: int) -> None:
        self.max = max_text_chars

    def __call__(self, value: str) -> str:
        problem = input_rules.text_problem(value, self.max)
        if problem is not None:
            raise ValidationError(OverLimit(problem) if len(value) > self.max else problem)
        return value


class BoundedList(fields.List):
    """A list whose :class:`MaxTexts` rules run before its items are loaded.

    A request over the number of texts is refused before anything else is spent on it.
    """

    def _deserialize(self, value: object, attr: str | None, data: object, **kwargs: object) -> list:
        if isinstance(value, list):
            for rule in self.validators:
                if isinstance(rule, MaxTexts):
                    rule(value)
        return super()._deserialize(value, attr, data, **kwargs)


class StrictBoolean(fields.Boolean):
    """A JSON ``true`` or ``false`` only; marshmallow's Boolean also takes ``1``, ``"yes"``, ``"off"``."""

    def _deserialize(self, value: object, attr: str | None, data: object, **kwargs: object) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


def score_request_schema(settings: Settings) -> Schema:
    """The body of ``POST /v1/score`` with the limits of ``settings`` in it.

    Built once per app: the limits validate (422 ``validation-error`` naming each field) and
    show in the OpenAPI document (``maxItems``, ``maxLength``, the field descriptions). The
    sentence and word limits depend on how the text splits, so :mod:`service.domain.workload`
    checks them while scoring; they are described here.
    """

    class TextInputSchema(Schema):
        """One text to score."""

        id = fields.String(
            validate=validate.Length(min=1, max=MAX_ID_CHARS),
            metadata={
                "description": 'Client id, echoed in the result. Default: the text\'s index ("0", "1", '
                '...), or, if another text of the request was given that id, "<index>-<k>" with the '
                "smallest k >= 1 that no text uses, so ids never collide."
            },
        )
        text = fields.String(
            required=True,
            validate=TextRules(settings.max_text_chars),
            metadata={
                "description": "The text (plain text; any language is accepted, English is modelled); "
                "not blank: at least one character other than whitespace; at most "
                f"{settings.max_text_chars} characters, {settings.max_sentences_per_text} sentences and "
                f"{settings.max_tokens_per_text} words (a sentence counts if it has a word; a word is a "
                "run of two or more letters or digits).",
                "pattern": NOT_BLANK_PATTERN,
            },
        )
        format = fields.String(
            load_default="text",
            validate=validate.OneOf(FORMATS),
            metadata={
                "description": "How to read `text`: `text` (default), `html` (tags, scripts, styles and "
                "attributes dropped, entities decoded) or `markdown`. Evidence offsets always index "
                "`text` as sent."
            },
        )

    class ScoreRequestSchema(Schema):
        """Body of `POST /v1/score`. Unknown fields are rejected; a request over a limit is refused
        whole (nothing is truncated)."""

        texts = BoundedList(
            fields.Nested(TextInputSchema),
            required=True,
            validate=[
                validate.Length(min=1),
                MaxTexts(settings.max_texts),
            ],
            metadata={
                "description": f"The texts to score, in order: at most {settings.max_texts}, with at "
                f"most {settings.max_sentences_per_request} sentences and "
                f"{settings.max_tokens_per_request} words in all."
            },
        )
        reference = fields.String(
            validate=validate.Length(min=1, max=64),
            metadata={"description": "Reference id (default: the default reference)."},
        )
        explain = StrictBoolean(
            load_default=False,
            metadata={"description": "Add an `evidence` object to every result (slower)."},
        )

        @validates("texts")
        def _unique_ids(self, texts: list[dict], **_: object) -> None:
            if input_rules.duplicate_ids(t["id"] for t in texts if "id" in t):
                raise ValidationError(input_rules.DUPLICATE_IDS)

    return ScoreRequestSchema()


class ReferenceBriefSchema(Schema):
    """The reference a response was scored against."""

    id = fields.String(required=True, metadata={"description": "Reference id."})
    title = fields.String(required=True, metadata={"description": "Reference title."})


class ModelBriefSchema(Schema):
    """The model that scored a response."""

    id = fields.String(required=True, metadata={"description": "Model id (its card's `id`)."})
    version = fields.String(required=True, metadata={"description": "Model version (its card's `version`)."})


_SCORES_DESCRIPTION = "Probability of each label; the four sum to 1."


class LanguageSchema(Schema):
    """The language identified in a text."""

    code = fields.String(
        required=True,
        metadata={"description": "ISO 639-1 code where the language has one (`en`, `ru`), else ISO 639-3."},
    )
    probability = fields.Float(required=True, metadata={"description": "The identifier's probability, 0..1."})


class StanceSchema(Schema):
    """A stance label with the probability of each of the four labels."""

    label = fields.String(
        required=True,
        validate=validate.OneOf(STANCE_LABELS),
        metadata={
            "description": "unrelated when `related` is below the model's threshold, otherwise the "
            "most probable of agree, disagree and discuss."
        },
    )
    scores = fields.Dict(
        keys=fields.String(validate=validate.OneOf(STANCE_LABELS)),
        values=fields.Float(),
        required=True,
        metadata={"description": _SCORES_DESCRIPTION},
    )


class ClaimScoreSchema(Schema):
    """Similarity and stance of a text towards one claim of the reference."""

    id = fields.String(required=True, metadata={"description": "Claim id (see GET /v1/references)."})
    similarity = fields.Float(required=True, metadata={"description": "TF-IDF cosine to the claim, 0..1."})
    related = fields.Float(
        required=True,
        allow_none=True,
        metadata={"description": "Probability the text is about the claim; null with `language_mismatch`."},
    )
    stance = fields.Nested(
        StanceSchema,
        required=True,
        allow_none=True,
        metadata={"description": "Null with `language_mismatch`."},
    )


WARNING_CODES = (
    "markup_detected",
    "mostly_links",
    "language_mismatch",
    "no_words",
    "too_short",
    "many_unknown_words",
    "keyword_list",
)


class WarningSchema(Schema):
    """Something about a text that makes its scores less reliable."""

    code = fields.String(
        required=True,
        validate=validate.OneOf(WARNING_CODES),
        metadata={
            "description": "Stable code: `markup_detected` (a `text` that looks like HTML or Markdown), "
            "`mostly_links` (half the text or more is URLs or e-mail addresses), `language_mismatch` "
            "(another language than the reference: no stance), `no_words`, `too_short` (under 8 "
            "words), `many_unknown_words` (half the words or more not in the model's vocabulary), "
            "`keyword_list` (a tenth of the words or more in keyword lists or repeated sentences)."
        },
    )
    message = fields.String(
        required=True, metadata={"description": "What the warning means for this text, in English."}
    )


class PassageMatchSchema(Schema):
    """A sentence of the text and the passage of the reference closest to it."""

    text_start = fields.Integer(
        required=True, metadata={"description": "Start of the sentence in the text as sent (code points)."}
    )
    text_end = fields.Integer(
        required=True,
        metadata={"description": "End of the sentence in the text as sent (code points, exclusive)."},
    )
    reference_start = fields.Integer(
        required=True, metadata={"description": "Start of the passage in the reference text (code points)."}
    )
    reference_end = fields.Integer(
        required=True,
        metadata={"description": "End of the passage in the reference text (code points, exclusive)."},
    )
    reference_passage = fields.String(
        required=True, metadata={"description": "The passage of the reference."}
    )
    similarity = fields.Float(
        required=True, metadata={"description": "TF-IDF cosine of the sentence and the passage, 0..1."}
    )


class SharedTermSchema(Schema):
    """A word the text shares with the reference, with its part of the word similarity."""

    term = fields.String(required=True, metadata={"description": "The word (lower case, as tokenised)."})
    weight = fields.Float(
        required=True, metadata={"description": "Share of the word TF-IDF cosine due to this term."}
    )


class EvidenceSchema(Schema):
    """Why a text scored as it did (only with `explain: true`)."""

    passages = fields.List(
        fields.Nested(PassageMatchSchema),
        required=True,
        metadata={
            "description": "Sentences of the text with the closest passage of the reference body. "
            "Offsets are Unicode code point indices, end exclusive: text[text_start:text_end] and "
            "reference_text[reference_start:reference_end]."
        },
    )
    shared_terms = fields.List(
        fields.Nested(SharedTermSchema),
        required=True,
        metadata={
            "description": "The shared words that weigh most in the word similarity, the largest first."
        },
    )


class TextResultSchema(Schema):
    """The scores of one text."""

    id = fields.String(required=True, metadata={"description": "The client's id, or the text's index."})
    similarity = fields.Float(
        required=True, metadata={"description": "TF-IDF cosine to the whole reference, 0..1."}
    )
    related = fields.Float(
        required=True,
        allow_none=True,
        metadata={
            "description": "Probability that the text is about the reference; null with `language_mismatch`."
        },
    )
    stance = fields.Nested(
        StanceSchema,
        required=True,
        allow_none=True,
        metadata={
            "description": "Null when the text is in another language than the reference "
            "(`language_mismatch`): the model judges stance in the reference's language only."
        },
    )
    language = fields.Nested(
        LanguageSchema,
        required=True,
        allow_none=True,
        metadata={"description": "The text's identified language; null for a text without letters."},
    )
    claims = fields.List(
        fields.Nested(ClaimScoreSchema),
        required=True,
        metadata={"description": "Similarity and stance towards each claim of the reference, in its order."},
    )
    warnings = fields.List(
        fields.Nested(WarningSchema),
        required=True,
        metadata={"description": "What makes this text's scores less reliable; empty when nothing does."},
    )
    evidence = fields.Nested(EvidenceSchema, metadata={"description": "Only with explain: true."})

    @post_dump
    def _omit_absent_evidence(self, data: dict, **_: object) -> dict:
        # Without explain the domain result has evidence=None: leave the key out, as documented.
        if data.get("evidence") is None:
            data.pop("evidence", None)
        return data


class ScoreResponseSchema(Schema):
    """Body of a `POST /v1/score` answer: one result per text, in the order sent."""

    reference = fields.Nested(
        ReferenceBriefSchema, required=True, metadata={"description": "The reference scored against."}
    )
    model = fields.Nested(ModelBriefSchema, required=True, metadata={"description": "The model that scored."})
    results = fields.List(
        fields.Nested(TextResultSchema),
        required=True,
        metadata={"description": "One result per text, in the order sent."},
    )


class ClaimSchema(Schema):
    """A main claim of a reference, stated in its file or derived from its body."""

    id = fields.String(required=True, metadata={"description": "Claim id, unique within the reference."})
    text = fields.String(required=True, metadata={"description": "The claim."})
    source_start = fields.Integer(
        allow_none=True, metadata={"description": "Offset in the reference text of the passage it restates."}
    )
    source_end = fields.Integer(
        allow_none=True, metadata={"description": "End (exclusive) of that passage in the reference text."}
    )


class ReferenceSchema(Schema):
    """A reference document without its text."""

    id = fields.String(
        required=True, metadata={"description": "Reference id (the `reference` field of a score request)."}
    )
    title = fields.String(required=True, metadata={"description": "Reference title."})
    default = fields.Boolean(
        required=True,
        metadata={"description": "Whether requests without `reference` are scored against this one."},
    )
    metadata = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        required=True,
        metadata={"description": "Other fields of the reference file (source, date, ...)."},
    )
    claims_origin = fields.String(
        required=True,
        metadata={"description": "Where the claims come from: stated in the file, or how they were derived."},
    )
    claims = fields.List(
        fields.Nested(ClaimSchema),
        required=True,
        metadata={"description": "The reference's main claims, in order."},
    )


class ReferenceDetailSchema(ReferenceSchema):
    """A reference document with its text."""

    text = fields.String(
        required=True, metadata={"description": "The reference body as written; evidence offsets index it."}
    )


class ReferenceListSchema(Schema):
    """Every reference document the service scores against."""

    references = fields.List(
        fields.Nested(ReferenceSchema),
        required=True,
        metadata={"description": "Every reference, the default one included."},
    )


class ModelListSchema(Schema):
    """The loaded models."""

    models = fields.List(
        fields.Dict(),
        required=True,
        metadata={"description": "Model cards (card.json) of the loaded models."},
    )


class HealthSchema(Schema):
    """A probe's answer."""

    status = fields.String(
        required=True, metadata={"description": "`ok` when the probe passes, otherwise what is wrong."}
    )
    checks = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        metadata={"description": "Each check of the probe and its state."},
    )


class ProblemSchema(Schema):
    """RFC 9457 problem details."""

    type = fields.String(
        required=True,
        metadata={"description": "URI of the problem type, relative to the API root (`/problems/<slug>`)."},
    )
    title = fields.String(required=True, metadata={"description": "Short summary of the problem type."})
    status = fields.Integer(required=True, metadata={"description": "The HTTP status code."})
    detail = fields.String(required=True, metadata={"description": "What went wrong with this request."})
    instance = fields.String(metadata={"description": "This occurrence: `urn:request:<request id>`."})
    request_id = fields.String(
        metadata={"description": "The request id (also in the X-Request-ID header and the logs)."}
    )
    errors = fields.List(
        fields.Dict(keys=fields.String(), values=fields.String()),
        metadata={"description": "For validation errors: [{field, message}]."},
    )
