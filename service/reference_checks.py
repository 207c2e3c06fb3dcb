"""``discourse references check`` and ``discourse references claims``: reference files for authors.

``check`` runs every rule the service applies at start-up (the file rules of
:mod:`service.loaders.reference_files`, then preparation with the model: a body or claim
without words) on one file or a directory, and reports each problem on one line
naming the file and the field, instead of stopping at the first. ``claims`` derives
claims for a file (ignoring any it has) and writes them as ``[[claims]]`` tables, to
paste into the file and edit.
"""

from __future__ import annotations

import json
from pathlib import Path

from service.domain.encoding import TextEncoder
from service.domain.references import ReferenceContentError, derive_claims, prepare_reference
from service.loaders.reference_files import ReferenceFileError, load_reference_directory, load_reference_file


def check_references(path: Path, encoder: TextEncoder) -> list[str]:
    """Every problem of the reference file ``path`` or of the ``*.toml`` files of a directory.

    Returns one line per problem (empty: all good). A file that breaks a file rule is not
    prepared (its first problem is reported); the directory rules (unique ids, one default)
    are checked once every file reads.
    """
    path = Path(path)
    paths = sorted(path.glob("*.toml")) if path.is_dir() else [path]
    if path.is_dir() and not paths:
        return [f"{path}: no reference files (*.toml)"]
    if not path.exists():
        return [f"{path}: not found"]
    problems: list[str] = []
    for file in paths:
        try:
            reference = load_reference_file(file)
        except ReferenceFileError as error:
            problems.append(str(error))
            continue
        try:
            prepare_reference(reference, encoder)
        except ReferenceContentError as error:
            field = "body" if error.field == "text" else _claim_field(reference, error.field)
            problems.append(f"{file}: {field}: {error.message}")
    if path.is_dir() and not problems:
        try:
            load_reference_directory(path)
        except ReferenceFileError as error:
            problems.append(str(error))
    return problems


def _claim_field(reference: object, field: str) -> str:
    # "claims.2" (from 0) as the file numbers its tables: "claim 3".
    index = int(field.split(".")[1])
    return f"claim {index + 1}"


def derived_claims_toml(path: Path, encoder: TextEncoder) -> str:
    """``claims_origin`` and the derived claims of the reference file ``path`` as TOML tables.

    Raises :class:`ReferenceFileError` if the file breaks a rule, naming it.
    """
    reference = load_reference_file(path)
    claims = derive_claims(reference, encoder)
    if not claims:
        raise ReferenceFileError(f"{path}: body: has no sentence with words to derive claims from")
    lines = [
        "# Derived by `discourse references claims`: keep, edit or replace each claim; `source` must",
        "# stay word for word in the body. Paste these lines at the end of the file (after any other",
        "# key), in place of its [[claims]] tables, and say how they were made in claims_origin.",
        "",
    ]
    for claim in claims:
        lines.append("[[claims]]")
        lines.append(f"id = {_toml_string(claim.id)}")
        lines.append(f"text = {_toml_string(claim.text)}")
        if claim.source is not None:
            lines.append(f"source = {_toml_string(claim.source.text)}")
        lines.append("")
    return "\n".join(lines)


def _toml_string(value: str) -> str:
    # A JSON string is a valid TOML basic string (same escapes: \" \\ \n \t \uXXXX).
    return json.dumps(value, ensure_ascii=False)
