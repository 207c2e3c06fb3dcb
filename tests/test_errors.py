"""Every error meant for a user shares one base class, and keeps the built-in class it had."""

from __future__ import annotations

import pytest

from service.artifacts import ArtifactError
from service.config import SettingsError
from service.corpus import CorpusError
from service.domain.errors import DiscourseError
from service.domain.scorer import UnknownReferenceError
from service.domain.workload import LimitViolation, WorkLimitError
from service.file_scoring import InputError
from service.outputs import OutputError
from service.reference_files import ReferenceFileError
from service.textfiles import TextFileError
from service.training.fnc import DataFormatError
from service.training.process_pool import TrainingProcessError

ERRORS = [
    (ArtifactError("model/arrays.npz: altered"), RuntimeError),
    (ReferenceFileError("seeds/a.toml: not valid TOML"), RuntimeError),
    (TrainingProcessError("a worker was killed"), RuntimeError),
    (SettingsError("DISCOURSE_MODEL_DIR: empty"), ValueError),
    (CorpusError("in/: no files"), ValueError),
    (InputError("texts.csv: cannot be read"), ValueError),
    (OutputError("out.jsonl is an input"), ValueError),
    (TextFileError("texts.csv: no text column"), ValueError),
    (DataFormatError("stances.csv: row 3"), ValueError),
    (WorkLimitError([LimitViolation("texts", "max_tokens_per_request", "too many words")]), ValueError),
    (UnknownReferenceError("nope"), KeyError),
]


@pytest.mark.parametrize(("error", "builtin"), ERRORS, ids=lambda e: type(e).__name__)
def test_user_errors_share_the_base_class_and_keep_their_builtin(error: Exception, builtin: type) -> None:
    with pytest.raises(DiscourseError) as caught:
        raise error
    assert isinstance(caught.value, builtin)
    assert str(caught.value)  # the message names what is wrong
