"""The model runtime: a verified artifact plus prepared references, ready to score.

This is the one place where the file loaders (:mod:`service.loaders.artifacts`,
:mod:`service.loaders.reference_files`) meet the scoring domain. The HTTP layer and
the command line both build their :class:`Runtime` here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from service.domain.references import prepare_reference
from service.domain.scorer import Scorer
from service.loaders.artifacts import LoadedModel, load_model
from service.loaders.reference_files import ReferenceFileError, load_reference_directory


@dataclass(frozen=True)
class Runtime:
    """What scoring needs: the loaded model (with its card) and the scorer."""

    model: LoadedModel
    scorer: Scorer


def load_runtime(model_dir: Path, seeds_dir: Path) -> Runtime:
    """Load and verify the model in ``model_dir`` and the references in ``seeds_dir``.

    Parameters
    ----------
    model_dir:
        A model directory (see :func:`load_model`).
    seeds_dir:
        A directory of reference files, one TOML file each.

    Returns
    -------
    Runtime
        The loaded model and a :class:`Scorer` with every reference prepared.

    Raises
    ------
    ArtifactError
        The model cannot be used; the message names the file.
    ReferenceFileError
        A reference file is malformed, or a reference has no word the model counts;
        the message names the file or directory.
    """
    model = load_model(model_dir)
    references, default_id = load_reference_directory(seeds_dir)
    prepared = {}
    for reference in references:
        try:
            prepared[reference.id] = prepare_reference(reference, model.encoder)
        except ValueError as error:
            raise ReferenceFileError(f"{seeds_dir}: reference {reference.id!r}: {error}") from None
    return Runtime(model, Scorer(model.encoder, model.stance, prepared, default_id))
