"""``GET /v1/models``."""

from __future__ import annotations

from flask_smorest import Blueprint

from service.http.problems import PROBLEM_MEDIA_TYPE
from service.http.schemas import ModelListSchema, ProblemSchema
from service.http.views.context import current_runtime

blp = Blueprint("models", __name__, url_prefix="/v1", description="The loaded models and their cards.")


@blp.route("/models", methods=["GET"])
@blp.response(200, ModelListSchema)
@blp.alt_response(
    401,
    schema=ProblemSchema,
    content_type=PROBLEM_MEDIA_TYPE,
    description="API keys are configured and none valid was sent.",
)
@blp.alt_response(
    429,
    schema=ProblemSchema,
    content_type=PROBLEM_MEDIA_TYPE,
    description="Rate limit exceeded; see Retry-After.",
)
def list_models():
    """List the loaded models

    The model card of each: training data, validation figures, limits, versions and file hashes.
    """
    return {"models": [current_runtime().model.card]}
