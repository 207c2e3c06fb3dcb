"""``discourse references check`` and ``discourse references claims`` on real files."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.cli import main
from service.config import DEFAULT_SEEDS_DIR
from service.domain.references import derive_claims
from service.loaders.reference_files import load_reference_file
from service.loaders.runtime import Runtime

SEED = next(DEFAULT_SEEDS_DIR.glob("*.toml"))


def without_claims(text: str) -> str:
    return text[: text.index("\n[[claims]]") + 1]


def test_check_passes_the_shipped_seeds(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["references", "check", str(DEFAULT_SEEDS_DIR)]) == 0
    out, err = capsys.readouterr()
    assert out == "" and "ok" in err


def test_check_reports_one_line_per_problem_naming_file_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a.toml").write_text('id = "a"\ntitle = "T"\nbody = "!!! ???"\n', encoding="utf-8")
    (tmp_path / "b.toml").write_text(
        'id = "b"\ntitle = "T"\nbody = "Some words here."\n[[claims]]\nid = "c"\ntext = "?!"\n',
        encoding="utf-8",
    )
    (tmp_path / "c.toml").write_text('id = "c"\ntitle = "T"\n', encoding="utf-8")
    assert main(["references", "check", str(tmp_path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"{tmp_path / 'a.toml'}: body: has no words (a word is two or more letters or digits)",
        f"{tmp_path / 'b.toml'}: claim 1: claim 'c' has no words (two or more letters or digits)",
        f"{tmp_path / 'c.toml'}: 'body' must be a non-empty string",
    ]


def test_check_applies_the_folder_rules_once_every_file_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("one", "two"):
        (tmp_path / f"{name}.toml").write_text(
            f'id = "{name}"\ntitle = "T"\nbody = "Some words here."\n', encoding="utf-8"
        )
    assert main(["references", "check", str(tmp_path)]) == 1
    assert "exactly one reference must say default = true" in capsys.readouterr().out


def test_claims_prints_tables_that_make_a_valid_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], runtime: Runtime
) -> None:
    start = tmp_path / "new.toml"
    start.write_text(without_claims(SEED.read_text(encoding="utf-8")), encoding="utf-8")
    assert main(["references", "claims", str(start)]) == 0
    tables = capsys.readouterr().out
    assert tables.count("[[claims]]") >= 5
    finished = tmp_path / "finished.toml"
    finished.write_text(start.read_text(encoding="utf-8") + tables, encoding="utf-8")
    reference = load_reference_file(finished)
    derived = derive_claims(load_reference_file(start), runtime.model.encoder)
    assert [(c.id, c.text) for c in reference.claims] == [(c.id, c.text) for c in derived]
    assert all(c.source is not None for c in reference.claims if c.id != "title")
    assert main(["references", "check", str(finished)]) == 0
