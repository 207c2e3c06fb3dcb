"""``GET /v1/models``."""

from __future__ import annotations

from flask_smorest import Blueprint

from service.http.schemas import ModelListSchema
from service.http.views.context import current_runtime
from service.http.views.documentation import documents_access_problems

blp = Blueprint("models", __name__, url_prefix="/v1", description="The loaded models and their cards.")


@blp.route("/models", methods=["GET"])
@blp.response(200, ModelListSchema)
@documents_access_problems(blp)
def list_models():
    """List the loaded models

    The model card of each: training data, validation figures, limits, versions and file hashes.
    """
    return {"models": [current_runtime().model.card]}
