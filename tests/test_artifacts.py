"""Artifact integrity: altered, missing or incompatible files are refused naming the file; no pickles."""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from service.config import DEFAULT_MODEL_DIR, Settings
from service.domain.stance import AveragedClassifier, DenseNetwork, TreeEnsemble
from service.http.app import create_app
from service.loaders.artifacts import (
    ARRAYS_FILE,
    CARD_FILE,
    ENCODER_FILE,
    ArtifactError,
    load_model,
    model_arrays,
    sha256_of,
    write_arrays,
)


@pytest.fixture
def model_copy(tmp_path: Path) -> Path:
    """A copy of the shipped artifact that a test may damage."""
    return Path(shutil.copytree(DEFAULT_MODEL_DIR, tmp_path / "model"))


def edit_card(directory: Path, change: Callable[[dict], None]) -> None:
    path = directory / CARD_FILE
    card = json.loads(path.read_text(encoding="utf-8"))
    change(card)
    path.write_text(json.dumps(card), encoding="utf-8")


def flip_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def other_minor(version: str) -> str:
    major, minor, *_ = version.split(".")
    return f"{major}.{int(minor) + 1}.0"


DAMAGES: dict[str, tuple[Callable[[Path], None], str, str]] = {
    # name: (damage, file the message must name, text the message must contain)
    "tampered arrays": (lambda d: flip_one_byte(d / ARRAYS_FILE), ARRAYS_FILE, "does not match"),
    "tampered encoder": (
        lambda d: (d / ENCODER_FILE).write_text((d / ENCODER_FILE).read_text().replace("nato", "natO", 1)),
        ENCODER_FILE,
        "does not match",
    ),
    "missing encoder": (lambda d: (d / ENCODER_FILE).unlink(), ENCODER_FILE, "missing"),
    "missing arrays": (lambda d: (d / ARRAYS_FILE).unlink(), ARRAYS_FILE, "missing"),
    "missing card": (lambda d: (d / CARD_FILE).unlink(), CARD_FILE, "missing"),
    "card not JSON": (lambda d: (d / CARD_FILE).write_text("{not json"), CARD_FILE, "not readable JSON"),
    "other format version": (
        lambda d: edit_card(d, lambda c: c.update(format_version=c["format_version"] + 1)),
        CARD_FILE,
        "artifact format",
    ),
    "other scikit-learn minor": (
        lambda d: edit_card(
            d, lambda c: c["libraries"].update({"scikit-learn": other_minor(c["libraries"]["scikit-learn"])})
        ),
        CARD_FILE,
        "scikit-learn",
    ),
    "other numpy major": (
        lambda d: edit_card(d, lambda c: c["libraries"].update(numpy="1.26.4")),
        CARD_FILE,
        "numpy",
    ),
    "other feature names": (
        lambda d: edit_card(d, lambda c: c.update(features=[*c["features"][:-1], "something_else"])),
        CARD_FILE,
        "other pair features",
    ),
    "fewer features": (
        lambda d: edit_card(d, lambda c: c.update(features=c["features"][:-1])),
        CARD_FILE,
        "other pair features",
    ),
    "card without files": (lambda d: edit_card(d, lambda c: c.pop("files")), CARD_FILE, "'files'"),
}


def test_the_shipped_artifact_loads_and_matches_its_card() -> None:
    model = load_model(DEFAULT_MODEL_DIR)
    assert model.model_id == model.card["id"] and model.version == model.card["version"]
    for name in (ENCODER_FILE, ARRAYS_FILE):
        assert model.card["files"][name] == sha256_of(DEFAULT_MODEL_DIR / name)
    assert model.encoder.n_terms == model.card["vocabulary_terms"]
    # The stance stage is what the card says it is: the trees and their networks, weighted.
    training = model.card["training"]
    stage = model.stance.stance
    assert training["stance_kind"] == "trees_and_mlps" and isinstance(stage, AveragedClassifier)
    assert isinstance(stage.members[0], TreeEnsemble) and stage.weights[0] == training["trees_weight"]
    networks = stage.members[1:]
    assert len(networks) == training["mlp_members"] and all(isinstance(n, DenseNetwork) for n in networks)
    assert all(n.weights[0].shape[1] == training["stance_hidden"] for n in networks)
    network_weight = (1 - training["trees_weight"]) / training["mlp_members"]
    np.testing.assert_allclose(stage.weights[1:], network_weight, rtol=1e-12)


@pytest.mark.parametrize("damage", list(DAMAGES), ids=list(DAMAGES))
def test_a_damaged_artifact_is_refused_naming_the_file(model_copy: Path, damage: str) -> None:
    change, file_name, text = DAMAGES[damage]
    change(model_copy)
    with pytest.raises(ArtifactError) as error:
        load_model(model_copy)
    message = str(error.value)
    assert message.startswith(str(model_copy / file_name)), message
    assert text in message


def test_a_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="model directory not found"):
        load_model(tmp_path / "nothing-here")


@pytest.mark.parametrize("damage", ["tampered arrays", "missing encoder", "other format version"])
def test_the_app_does_not_start_with_a_damaged_artifact(model_copy: Path, damage: str) -> None:
    change, file_name, _ = DAMAGES[damage]
    change(model_copy)
    with pytest.raises(ArtifactError, match=file_name):
        create_app(Settings(model_dir=model_copy, rate_limit_enabled=False))


class _Payload:
    """Unpickling this would create ``path``: proof that code from the file ran."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (self.path.touch, ())


def test_object_arrays_are_refused_and_never_unpickled(model_copy: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pickle-ran"
    arrays_path = model_copy / ARRAYS_FILE
    with np.load(arrays_path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    arrays["word_idf"] = np.array([_Payload(marker)] * 3, dtype=object)
    np.savez(arrays_path, **arrays)  # numpy pickles object arrays
    # Record the new hash, as an attacker able to write the directory could.
    edit_card(model_copy, lambda c: c["files"].update({ARRAYS_FILE: sha256_of(arrays_path)}))
    with zipfile.ZipFile(arrays_path) as archive:
        assert b"pickle-ran" in archive.read("word_idf.npy")  # the payload is really there
    with pytest.raises(ArtifactError) as error:
        load_model(model_copy)
    assert str(error.value).startswith(f"{arrays_path}: not a readable numpy archive")
    assert not marker.exists()


ARRAY_EDITS: dict[str, tuple[Callable[[dict], None], str]] = {
    # name: (edit of the arrays, text the message must contain)
    "short relatedness mean": (
        lambda a: a.update({"relatedness.mean": a["relatedness.mean"][:-1]}),
        "one entry per feature",
    ),
    "wording model for another vocabulary": (
        lambda a: a.update({"wording.weights": a["wording.weights"][:-1]}),
        "terms, the vocabulary",
    ),
    "no wording model": (lambda a: a.pop("wording.weights"), "wording.weights"),
    "stance member weights not summing to 1": (
        lambda a: a.update({"stance.member_weights": a["stance.member_weights"] / 2}),
        "sum to 1",
    ),
    "a stance member missing": (lambda a: a.pop("stance.m3.w0"), "stance.m3.w0"),
    "member weights not 1-D": (
        lambda a: a.update({"stance.member_weights": a["stance.member_weights"][None, :]}),
        "must be 1-D",
    ),
    "an average inside the average": (
        lambda a: a.update({"stance.m1.member_weights": np.array([1.0])}),
        "cannot be a member of another average",
    ),
    "stage 1 reading a column the features lack": (
        lambda a: a.update({"relatedness.feature_indices": a["relatedness.feature_indices"] + 33}),
        "stage 1 reads a feature column outside the 40 the model computes",
    ),
    "latent space for another vocabulary": (
        lambda a: a.update({"latent.components": np.ones((3, 5))}),
        "the latent space has 5 terms, the vocabulary",
    ),
    "wording model with NaN": (
        lambda a: a.update({"wording.intercept": np.array([0.0, np.nan, 0.0])}),
        "finite",
    ),
}


@pytest.mark.parametrize("edit", list(ARRAY_EDITS), ids=list(ARRAY_EDITS))
def test_inconsistent_arrays_are_refused_naming_the_directory(model_copy: Path, edit: str) -> None:
    change, text = ARRAY_EDITS[edit]
    # The new hash is recorded, so that only the consistency check can catch it.
    rewrite_arrays(model_copy, change)
    with pytest.raises(ArtifactError, match=rf"{model_copy}: inconsistent artifact") as error:
        load_model(model_copy)
    assert text in str(error.value)


def rewrite_arrays(directory: Path, change: Callable[[dict], None]) -> None:
    """Apply ``change`` to the artifact's arrays and record the new sha256 in its card."""
    arrays_path = directory / ARRAYS_FILE
    with np.load(arrays_path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    change(arrays)
    write_arrays(arrays_path, arrays)
    edit_card(directory, lambda c: c["files"].update({ARRAYS_FILE: sha256_of(arrays_path)}))


@pytest.mark.parametrize("dtype", [np.complex128, np.bool_, np.str_])
def test_arrays_of_other_than_real_numbers_are_refused_naming_them(model_copy: Path, dtype: type) -> None:
    # A complex weight passes every finiteness and sign check, and fails only when a request is scored.
    rewrite_arrays(model_copy, lambda a: a.update({"stance.member_weights": np.ones(6, dtype=dtype)}))
    with pytest.raises(ArtifactError) as error:
        load_model(model_copy)
    message = str(error.value)
    assert message.startswith(f"{model_copy / ARRAYS_FILE}: array 'stance.member_weights' has dtype")
    assert "not a real number type" in message


MISDESCRIBED = f"the stance stage in {ARRAYS_FILE} is not {{}}, as {CARD_FILE} says"
CARD_MISDESCRIPTIONS: dict[str, tuple[dict, str]] = {
    # name: (change to card["training"], text the message must contain)
    "fewer networks": ({"mlp_members": 4}, MISDESCRIBED.format("trees (weight 0.5) and 4 networks")),
    "other weights": ({"trees_weight": 0.6}, MISDESCRIBED.format("trees (weight 0.6) and 5 networks")),
    "trees alone": ({"stance_kind": "trees"}, MISDESCRIBED.format("a single trees classifier")),
    "one network": ({"stance_kind": "mlp"}, MISDESCRIBED.format("a single mlp classifier")),
    "no networks": ({"mlp_members": 0}, f"mlp_members in {CARD_FILE} must be a positive integer, not 0"),
    "stage 1 as trees": (
        {"relatedness_kind": "trees"},
        f"stage 1 in {ARRAYS_FILE} is not a trees classifier, as {CARD_FILE} says",
    ),
    "a latent space the arrays lack": (
        {"latent_components": 150},
        f"the latent space in {ARRAYS_FILE} does not have the 150 dimensions of {CARD_FILE}",
    ),
}


@pytest.mark.parametrize("change", list(CARD_MISDESCRIPTIONS), ids=list(CARD_MISDESCRIPTIONS))
def test_a_card_that_misdescribes_the_stance_stage_is_refused(model_copy: Path, change: str) -> None:
    training, text = CARD_MISDESCRIPTIONS[change]
    edit_card(model_copy, lambda c: c["training"].update(training))
    with pytest.raises(ArtifactError, match=rf"{model_copy}: inconsistent artifact") as error:
        load_model(model_copy)
    assert text in str(error.value)


def test_an_average_of_averages_cannot_be_stored() -> None:
    model = load_model(DEFAULT_MODEL_DIR)
    stage = model.stance.stance
    nested = dataclasses.replace(
        model.stance, stance=AveragedClassifier((stage, stage), np.array([0.5, 0.5]))
    )
    with pytest.raises(TypeError, match="an average of averages cannot be stored"):
        model_arrays(model.encoder, nested)


def test_write_arrays_is_byte_deterministic_and_round_trips(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = load_model(DEFAULT_MODEL_DIR)
    arrays = model_arrays(model.encoder, model.stance)
    first, second = tmp_path / "first.npz", tmp_path / "second.npz"
    write_arrays(first, arrays)
    # Another insertion order on another day gives the same bytes.
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + 86_400 + 3_661)
    write_arrays(second, dict(reversed(list(arrays.items()))))
    assert first.read_bytes() == second.read_bytes()
    with np.load(first, allow_pickle=False) as data:
        assert sorted(data.files) == sorted(arrays)
        for name, array in arrays.items():
            np.testing.assert_array_equal(data[name], array)
            assert data[name].dtype == array.dtype
    with zipfile.ZipFile(first) as archive:
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_model_arrays_reproduce_the_shipped_arrays() -> None:
    model = load_model(DEFAULT_MODEL_DIR)
    arrays = model_arrays(model.encoder, model.stance)
    with np.load(DEFAULT_MODEL_DIR / ARRAYS_FILE, allow_pickle=False) as data:
        assert sorted(data.files) == sorted(arrays)
        for name in data.files:
            np.testing.assert_array_equal(data[name], arrays[name])
