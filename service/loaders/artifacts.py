"""Reading and writing model artifacts: JSON and numpy arrays only, checked by sha256.

An artifact is a directory ``models/<name>/`` with

* ``encoder.json`` — encoder settings, vocabulary and corpus statistics,
* ``arrays.npz`` — every numeric array (IDF weights, network weights, trees),
  read with ``allow_pickle=False`` so that loading can never run code,
* ``card.json`` — the model card: identity, data, metrics, library versions
  and the sha256 of the two files above,
* ``MODEL_CARD.md`` — the card for people, generated from ``card.json``.

:func:`load_model` refuses an artifact whose files are missing, altered,
unreadable, or made for another feature set, format or library version, and
one whose arrays are not the model its card describes.
"""

from __future__ import annotations

import hashlib
import io
import json
import unicodedata
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import sklearn

from service.domain import (
    FEATURE_NAMES,
    AveragedClassifier,
    DenseNetwork,
    DiscourseError,
    EncoderConfig,
    StanceModel,
    TextEncoder,
    TreeEnsemble,
    WordingModel,
)
from service.domain.stance import Classifier, LatentSpace  # Classifier: the protocol of a stage

FORMAT_VERSION = 4
"""Version of the file layout; bumped when this module reads files differently."""

ENCODER_FILE = "encoder.json"
ARRAYS_FILE = "arrays.npz"
CARD_FILE = "card.json"
CARD_MARKDOWN_FILE = "MODEL_CARD.md"
CHECKED_FILES = (ENCODER_FILE, ARRAYS_FILE)


class ArtifactError(DiscourseError, RuntimeError):
    """A model artifact cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class LoadedModel:
    """A verified artifact: the runtime objects and the card that describes them."""

    directory: Path
    card: dict
    encoder: TextEncoder
    stance: StanceModel

    @property
    def model_id(self) -> str:
        """The model's stable id (``card["id"]``)."""
        return self.card["id"]

    @property
    def version(self) -> str:
        """The model's version (``card["version"]``)."""
        return self.card["version"]


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


# -- reading ------------------------------------------------------------------


def load_model(directory: Path) -> LoadedModel:
    """Load and verify the artifact in ``directory`` (JSON and ``.npz`` arrays; no code runs).

    Parameters
    ----------
    directory:
        A model directory: ``card.json``, ``encoder.json``, ``arrays.npz``.

    Returns
    -------
    LoadedModel
        The encoder, the stance model and the card, each file's sha256 checked
        against the card.

    Raises
    ------
    ArtifactError
        Naming the offending file, when a file is missing, its sha256 differs from
        the card, it cannot be parsed, or it was made for another format, feature set
        or scikit-learn/numpy version.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ArtifactError(f"{directory}: model directory not found")
    card = _read_json(directory / CARD_FILE)
    _check_card(directory / CARD_FILE, card)
    for name in CHECKED_FILES:
        path = directory / name
        if not path.is_file():
            raise ArtifactError(f"{path}: missing (listed in {CARD_FILE})")
        expected = card["files"].get(name)
        actual = sha256_of(path)
        if actual != expected:
            raise ArtifactError(
                f"{path}: sha256 {actual} does not match {expected} recorded in {CARD_FILE}; "
                "the file was altered or belongs to another model"
            )
    encoder_data = _read_json(directory / ENCODER_FILE)
    arrays = _read_arrays(directory / ARRAYS_FILE)
    try:
        encoder = TextEncoder(
            EncoderConfig.from_dict(encoder_data["config"]),
            encoder_data["vocabulary"],
            arrays["word_idf"],
            arrays["char_idf"],
            encoder_data["avg_tokens"],
        )
        wording = WordingModel(arrays["wording.weights"], arrays["wording.intercept"])
        if wording.n_terms != encoder.n_terms:
            raise ValueError(
                f"the wording model has {wording.n_terms} terms, the vocabulary {encoder.n_terms}"
            )
        stance_stage = _classifier(arrays, "stance")
        _check_stage_matches_card(stance_stage, card["training"])
        latent = _latent_space(arrays, encoder.n_terms)
        relatedness = _single_classifier(arrays, "relatedness")
        _check_relatedness(relatedness, card["training"], latent)
        stance = StanceModel(
            relatedness=relatedness,
            stance=stance_stage,
            related_threshold=float(card["training"]["related_threshold"]),
            wording=wording,
            latent=latent,
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ArtifactError(f"{directory}: inconsistent artifact: {error}") from None
    return LoadedModel(directory, card, encoder, stance)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"{path}: missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ArtifactError(f"{path}: not readable JSON ({error})") from None
    if not isinstance(data, dict):
        raise ArtifactError(f"{path}: expected a JSON object")
    return data


def _check_card(path: Path, card: dict) -> None:
    for key in ("id", "version", "format_version", "files", "features", "libraries", "training"):
        if key not in card:
            raise ArtifactError(f"{path}: missing required key {key!r}")
    if card["format_version"] != FORMAT_VERSION:
        raise ArtifactError(
            f"{path}: artifact format {card['format_version']!r}, this code reads format "
            f"{FORMAT_VERSION}; retrain with `discourse train`"
        )
    if list(card["features"]) != list(FEATURE_NAMES):
        raise ArtifactError(
            f"{path}: the model was trained on other pair features than this code computes; "
            "retrain with `discourse train`"
        )
    trained = card["libraries"]
    running = {"scikit-learn": sklearn.__version__, "numpy": np.__version__}
    # Tokenising and hashing come from scikit-learn, so a different minor
    # version could change features silently; numpy only matters by major.
    if _minor(str(trained.get("scikit-learn", ""))) != _minor(running["scikit-learn"]):
        raise ArtifactError(
            f"{path}: trained with scikit-learn {trained.get('scikit-learn')}, running "
            f"{running['scikit-learn']}; install the trained version or retrain"
        )
    if str(trained.get("numpy", "")).split(".")[0] != running["numpy"].split(".")[0]:
        raise ArtifactError(
            f"{path}: trained with numpy {trained.get('numpy')}, running {running['numpy']}; "
            "install the trained major version or retrain"
        )


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise ArtifactError(f"{path}: not a readable numpy archive ({error})") from None
    for name, array in arrays.items():
        # Every parameter is a real number or an index: a complex, boolean or text array
        # would pass the models' checks and fail later, on a request.
        if array.dtype.kind not in "fiu":
            raise ArtifactError(f"{path}: array {name!r} has dtype {array.dtype}, not a real number type")
    return arrays


def _network(arrays: dict[str, np.ndarray], prefix: str) -> DenseNetwork:
    n_layers = int(arrays[f"{prefix}.layers"])
    return DenseNetwork(
        feature_indices=arrays[f"{prefix}.feature_indices"],
        mean=arrays[f"{prefix}.mean"],
        scale=arrays[f"{prefix}.scale"],
        weights=tuple(arrays[f"{prefix}.w{i}"] for i in range(n_layers)),
        biases=tuple(arrays[f"{prefix}.b{i}"] for i in range(n_layers)),
    )


_TREE_FIELDS = ("feature", "threshold", "left", "right", "value", "roots", "tree_class", "baseline")


def _classifier(arrays: dict[str, np.ndarray], prefix: str) -> Classifier:
    """The classifier stored under ``prefix``: an average of single classifiers, or one of them."""
    if f"{prefix}.member_weights" not in arrays:
        return _single_classifier(arrays, prefix)
    weights = arrays[f"{prefix}.member_weights"]
    if weights.ndim != 1:
        raise ValueError(f"{prefix}.member_weights must be 1-D, not of shape {weights.shape}")
    members = tuple(_single_classifier(arrays, f"{prefix}.m{i}") for i in range(len(weights)))
    return AveragedClassifier(members, weights)


def _single_classifier(arrays: dict[str, np.ndarray], prefix: str) -> TreeEnsemble | DenseNetwork:
    """A tree ensemble if ``prefix`` has a depth, else a dense network."""
    if f"{prefix}.member_weights" in arrays:
        # Nothing trains nested averages; refusing them also bounds the loader's recursion.
        raise ValueError(f"{prefix}: an average cannot be a member of another average")
    if f"{prefix}.depth" in arrays:
        return TreeEnsemble(
            feature_indices=arrays[f"{prefix}.feature_indices"],
            depth=int(arrays[f"{prefix}.depth"]),
            **{name: arrays[f"{prefix}.{name}"] for name in _TREE_FIELDS},
        )
    return _network(arrays, prefix)


def _latent_space(arrays: dict[str, np.ndarray], n_terms: int) -> LatentSpace | None:
    """The latent space stored with a model trained with latent_components > 0, else None."""
    if "latent.components" not in arrays:
        return None
    latent = LatentSpace(arrays["latent.components"])
    if latent.n_terms != n_terms:
        raise ValueError(f"the latent space has {latent.n_terms} terms, the vocabulary {n_terms}")
    return latent


def _check_relatedness(
    stage: TreeEnsemble | DenseNetwork, training: dict, latent: LatentSpace | None
) -> None:
    """Raise ValueError when stage 1 is not what ``card["training"]`` describes or reads a
    column the pair features will not have.

    Cards written before stage 1 had a choice of learner or latent space have neither key:
    a logistic stage 1 without a latent space.
    """
    kind = training.get("relatedness_kind", "logistic")
    components = training.get("latent_components", 0)
    expected = TreeEnsemble if kind == "trees" else DenseNetwork
    if not isinstance(stage, expected):
        raise ValueError(f"stage 1 in {ARRAYS_FILE} is not a {kind} classifier, as {CARD_FILE} says")
    if (latent is None) != (not components) or (latent is not None and len(latent.components) != components):
        raise ValueError(
            f"the latent space in {ARRAYS_FILE} does not have the {components} dimensions of {CARD_FILE}"
        )
    n_columns = len(FEATURE_NAMES) + (latent is not None)
    columns = np.asarray(stage.feature_indices)
    if columns.size and (columns.min() < 0 or columns.max() >= n_columns):
        raise ValueError(f"stage 1 reads a feature column outside the {n_columns} the model computes")


def _check_stage_matches_card(stage: Classifier, training: dict) -> None:
    """Raise ValueError when the stored stance stage is not what ``card["training"]`` describes."""
    kind = training["stance_kind"]
    if kind == "trees_and_mlps":
        n_networks = training["mlp_members"]
        if not isinstance(n_networks, int) or n_networks < 1:
            raise ValueError(f"mlp_members in {CARD_FILE} must be a positive integer, not {n_networks!r}")
        network_weight = (1.0 - training["trees_weight"]) / n_networks
        expected = np.array([training["trees_weight"]] + [network_weight] * n_networks)
        matches = (
            isinstance(stage, AveragedClassifier)
            and len(stage.members) == 1 + n_networks
            and isinstance(stage.members[0], TreeEnsemble)
            and all(isinstance(m, DenseNetwork) for m in stage.members[1:])
            and np.allclose(stage.weights, expected, rtol=0.0, atol=1e-12)
        )
        described = f"trees (weight {training['trees_weight']}) and {n_networks} networks"
    else:
        matches = isinstance(stage, TreeEnsemble if kind == "trees" else DenseNetwork)
        described = f"a single {kind} classifier"
    if not matches:
        raise ValueError(f"the stance stage in {ARRAYS_FILE} is not {described}, as {CARD_FILE} says")


# -- writing ------------------------------------------------------------------


def model_arrays(encoder: TextEncoder, model: StanceModel) -> dict[str, np.ndarray]:
    """The arrays of an encoder and stance model under the names :func:`load_model` reads."""
    arrays: dict[str, np.ndarray] = {
        "word_idf": encoder.word_idf.astype(np.float64),
        "char_idf": encoder.char_idf.astype(np.float64),
    }
    if model.wording is None:
        raise ValueError("a stance model without a wording model cannot be stored")
    arrays["wording.weights"] = model.wording.weights.astype(np.float64)
    arrays["wording.intercept"] = model.wording.intercept.astype(np.float64)
    _store_classifier(arrays, "relatedness", model.relatedness)
    if model.latent is not None:
        arrays["latent.components"] = model.latent.components.astype(np.float64)
    _store_classifier(arrays, "stance", model.stance)
    return arrays


def _store_classifier(arrays: dict[str, np.ndarray], prefix: str, part: Classifier) -> None:
    if isinstance(part, AveragedClassifier):
        arrays[f"{prefix}.member_weights"] = np.asarray(part.weights, dtype=np.float64)
        for i, member in enumerate(part.members):
            if isinstance(member, AveragedClassifier):
                raise TypeError("an average of averages cannot be stored; flatten it")
            _store_classifier(arrays, f"{prefix}.m{i}", member)
        return
    if not isinstance(part, TreeEnsemble | DenseNetwork):
        raise TypeError(f"cannot store a {type(part).__name__}")
    arrays[f"{prefix}.feature_indices"] = np.asarray(part.feature_indices, dtype=np.int64)
    if isinstance(part, TreeEnsemble):
        arrays[f"{prefix}.depth"] = np.asarray(part.depth, dtype=np.int64)
        for name in _TREE_FIELDS:
            arrays[f"{prefix}.{name}"] = np.asarray(getattr(part, name))
    else:
        arrays[f"{prefix}.mean"] = part.mean
        arrays[f"{prefix}.scale"] = part.scale
        arrays[f"{prefix}.layers"] = np.asarray(len(part.weights), dtype=np.int64)
        for i, (w, b) in enumerate(zip(part.weights, part.biases, strict=True)):
            arrays[f"{prefix}.w{i}"] = w
            arrays[f"{prefix}.b{i}"] = b


def write_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write an ``.npz`` whose bytes depend only on the arrays.

    Members are written in sorted order with a fixed timestamp and mode, so
    a retrained but identical model has the same sha256 whatever the numpy
    version or the order the arrays were built in.
    """
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(arrays):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asarray(arrays[name], order="C"), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, buffer.getvalue())


def write_json(path: Path, data: dict, indent: int | None = 1) -> None:
    """Write JSON with sorted keys and a trailing newline (stable bytes)."""
    text = json.dumps(data, indent=indent, sort_keys=True, ensure_ascii=False)
    path.write_text(text + "\n", encoding="utf-8")


def encoder_document(encoder: TextEncoder) -> dict:
    """The JSON form of an encoder (its arrays go to ``arrays.npz``)."""
    return {
        "config": encoder.config.to_dict(),
        "vocabulary": encoder.vocabulary,
        "avg_tokens": encoder.avg_tokens,
    }


def library_versions() -> dict[str, str]:
    """Versions of the libraries whose behaviour the artifact depends on."""
    # The text normalisation depends on the Unicode database of the Python build (NFKC) and on
    # the confusables table; recorded so that a retrain can be compared, not checked at load.
    return {
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "unicode": unicodedata.unidata_version,
        "confusable-homoglyphs": metadata.version("confusable-homoglyphs"),
    }
