"""Marshmallow schemas of every request and response; the OpenAPI document is generated from them.

Field names are the API contract: clients code against them, so they change
only with a new API version.
"""

from __future__ import annotations

import re
from collections.abc import Sized

from marshmallow import Schema, ValidationError, fields, post_dump, validate, validates

from service.config import Settings
from service.domain import input_rules
from service.domain.input_rules import MAX_ID_CHARS, NOT_BLANK_PATTERN  # the one place of these rules
from service.domain.normalization import FORMATS
from service.domain.references import MAX_CLAIMS
from service.domain.stance import STANCE_LABELS

MAX_TITLE_CHARS = 1_000
"""Longest title of a reference sent with a request."""
MAX_CLAIM_CHARS = 2_000
"""Longest claim of a reference sent with a request."""
MAX_FILE_REFERENCE_ID_CHARS = 64
"""Longest id of a reference file."""
CONTENT_ID = re.compile(r"sha256:[0-9a-f]{64}")
"""The id of a reference sent with a request."""


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


def _not_blank(value: str) -> None:
    if input_rules.is_blank(value):
        raise ValidationError(input_rules.BLANK_TEXT)


class ReferenceInputSchema(Schema):
    """A reference sent with the request (``reference`` as an object). Unknown fields are rejected."""

    title = fields.String(
        required=True,
        validate=[_not_blank, validate.Length(max=MAX_TITLE_CHARS)],
        metadata={"description": "The reference's title.", "pattern": NOT_BLANK_PATTERN},
    )
    text = fields.String(
        required=True,
        validate=_not_blank,
        metadata={
            "description": "The reference's text (limit: `x-limits.max_reference_chars`, 100,000 "
            "characters by default); read as `format` says, as texts are.",
            "pattern": NOT_BLANK_PATTERN,
        },
    )
    claims = fields.List(
        fields.String(
            validate=[_not_blank, validate.Length(max=MAX_CLAIM_CHARS)],
            metadata={"pattern": NOT_BLANK_PATTERN},
        ),
        validate=validate.Length(
            min=1,
            max=MAX_CLAIMS,
            error=f"Give 1 to {MAX_CLAIMS} claims, or leave `claims` out to derive them.",
        ),
        metadata={
            "description": f"The reference's main claims, 1 to {MAX_CLAIMS}, each with words; ids "
            "`claim-1`, `claim-2`, … in order. Left out: 5 to 8 claims are derived from the text "
            "(`claims_origin` says how)."
        },
    )
    language = fields.String(
        validate=validate.Regexp(r"^[a-z]{2,3}$", error="Must be an ISO 639 code such as `en` or `ru`."),
        metadata={"description": "ISO 639-1 (or 639-3) code of the text's language; default: identified."},
    )
    format = fields.String(
        load_default="text",
        validate=validate.OneOf(FORMATS),
        metadata={"description": "How to read `text`: `text` (default), `html` or `markdown`, as for texts."},
    )


class ReferenceField(fields.Field):
    """``reference``: an id (string) or a reference object (:class:`ReferenceInputSchema`)."""

    def _deserialize(self, value: object, attr: str | None, data: object, **kwargs: object) -> object:
        if isinstance(value, str):
            if not (1 <= len(value) <= MAX_FILE_REFERENCE_ID_CHARS or CONTENT_ID.fullmatch(value)):
                raise ValidationError(
                    f"A reference id has 1 to {MAX_FILE_REFERENCE_ID_CHARS} characters, or is "
                    "sha256: and 64 hex digits."
                )
            return value
        if isinstance(value, dict):
            return ReferenceInputSchema().load(value)
        raise ValidationError(
            "Must be a reference id (a string) or a reference object with `title` and `text`."
        )


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
        reference = ReferenceField(
            metadata={
                "description": "The reference: the id of a reference file (GET /v1/references), the "
                "`sha256:<hex>` id of a reference sent earlier (while this worker still has it cached, "
                "else 404 `reference-not-cached`), or a reference object sent with this request. "
                "Default: the default reference.",
                "oneOf": [
                    {"type": "string", "minLength": 1, "maxLength": MAX_FILE_REFERENCE_ID_CHARS},
                    {"type": "string", "pattern": f"^{CONTENT_ID.pattern}$"},
                    {"$ref": "#/components/schemas/ReferenceInput"},
                ],
            },
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
    "stance_not_modelled",
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
            "`keyword_list` (a tenth of the words or more in keyword lists or repeated sentences), "
            "`stance_not_modelled` (scored against a reference variant in a language the stance "
            "model does not read: similarity and evidence only)."
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
    reference_language = fields.String(
        required=True,
        metadata={
            "description": "Language of the reference variant this text was scored against: the "
            "text's own when the reference has it, else the reference's main language. Stance only "
            "in `en` (else null with `stance_not_modelled`); evidence offsets index that variant's text."
        },
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


class ScoredReferenceSchema(Schema):
    """The reference a response was scored against, with the claims used."""

    id = fields.String(
        required=True,
        metadata={
            "description": "File reference id, or `sha256:<hex>` of a sent reference's normalised content."
        },
    )
    title = fields.String(required=True, metadata={"description": "The reference's title."})
    language = fields.String(required=True, metadata={"description": "The reference's language."})
    claims_origin = fields.String(
        required=True,
        metadata={"description": "Where the claims come from: stated (file, request) or how derived."},
    )
    claims = fields.List(
        fields.Nested(lambda: ClaimSchema()),
        required=True,
        metadata={"description": "The claims the texts were scored against, in order, with their offsets."},
    )


class ScoreResponseSchema(Schema):
    """Body of a `POST /v1/score` answer: one result per text, in the order sent."""

    reference = fields.Nested(
        ScoredReferenceSchema,
        required=True,
        metadata={"description": "The reference scored against, with the claims used."},
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
    languages = fields.List(
        fields.String(),
        required=True,
        metadata={
            "description": "The main language, then those of the variants (a text in one of "
            "them is scored against that variant)."
        },
    )


class ReferenceDetailSchema(ReferenceSchema):
    """A reference document with its text."""

    text = fields.String(
        required=True, metadata={"description": "The reference body as written; evidence offsets index it."}
    )
    variants = fields.Dict(
        keys=fields.String(),
        values=fields.Nested(lambda: ReferenceVariantSchema()),
        required=True,
        metadata={"description": "The reference in other languages, by language code ({} if none)."},
    )


class ReferenceVariantSchema(Schema):
    """One language variant of a reference file: its own title, text and claims (same ids)."""

    title = fields.String(required=True, metadata={"description": "The variant's title."})
    text = fields.String(
        required=True,
        metadata={"description": "The variant's body as written; evidence against it indexes this text."},
    )
    claims = fields.List(
        fields.Nested(ClaimSchema),
        required=True,
        metadata={"description": "The variant's claims, with the same ids as the main language's."},
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
