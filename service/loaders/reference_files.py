"""Reading reference documents from ``seeds/``: one TOML file per reference.

A file holds ``id``, ``title`` and ``body`` (required), optional metadata
strings, ``default = true`` on at most one reference, and optionally
``[[claims]]`` tables with ``id``, ``text`` and ``source`` (a passage copied
word for word from the body). A file that breaks any rule stops start-up with
a :class:`ReferenceFileError` naming the file and the rule.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from pathlib import Path

from service.domain.errors import DiscourseError
from service.domain.references import MAX_CLAIMS, Claim, Reference
from service.domain.text import Span

_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
_STRUCTURAL_KEYS = {"id", "title", "body", "claims", "default", "claims_origin", "variants"}


class ReferenceFileError(DiscourseError, RuntimeError):
    """A reference file is malformed; the message names the file and the problem.

    A RuntimeError, like :class:`service.loaders.artifacts.ArtifactError`, so that gunicorn
    reports a failed start-up as one line instead of a traceback.
    """


def load_reference_file(path: Path) -> Reference:
    """Parse and check one reference file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise ReferenceFileError(f"{path}: cannot be read ({error})") from None
    except tomllib.TOMLDecodeError as error:
        raise ReferenceFileError(f"{path}: not valid TOML ({error})") from None

    def need_text(key: str, table: dict, where: str = "") -> str:
        value = table.get(key)
        if not isinstance(value, str) or not value.strip():
            raise ReferenceFileError(f"{path}: {where}{key!r} must be a non-empty string")
        return value

    reference_id = need_text("id", data)
    if not _ID.fullmatch(reference_id):
        raise ReferenceFileError(
            f"{path}: id {reference_id!r} must be 1-64 lower-case letters, digits or hyphens"
        )
    title = need_text("title", data).strip()
    body = need_text("body", data)
    default = data.get("default", False)
    if not isinstance(default, bool):
        raise ReferenceFileError(f"{path}: 'default' must be true or false")

    def read_claims(raw_claims: object, body: str, prefix: str = "") -> list[Claim]:
        if not isinstance(raw_claims, list) or len(raw_claims) > MAX_CLAIMS:
            raise ReferenceFileError(
                f"{path}: '{prefix}claims' must be a list of at most {MAX_CLAIMS} tables"
            )
        claims: list[Claim] = []
        for n, raw in enumerate(raw_claims, start=1):
            where = f"{prefix}claim {n}: "
            if not isinstance(raw, dict):
                raise ReferenceFileError(f"{path}: {where}must be a table with id, text and source")
            claim_id = need_text("id", raw, where)
            if not _ID.fullmatch(claim_id):
                raise ReferenceFileError(f"{path}: {where}id {claim_id!r} must match {_ID.pattern}")
            if any(c.id == claim_id for c in claims):
                raise ReferenceFileError(f"{path}: {where}id {claim_id!r} is used twice")
            source = None
            if "source" in raw:
                quoted = need_text("source", raw, where)
                start = body.find(quoted)
                if start < 0:
                    raise ReferenceFileError(
                        f"{path}: {where}source {quoted[:60]!r} is not found word for word in the body"
                    )
                source = Span(start, start + len(quoted), quoted)
            claims.append(Claim(claim_id, need_text("text", raw, where).strip(), source))
        return claims

    claims = read_claims(data.get("claims", []), body)
    variants = _read_variants(path, data.get("variants", {}), reference_id, claims, need_text, read_claims)

    metadata = {}
    for key, value in data.items():
        if key in _STRUCTURAL_KEYS:
            continue
        if not isinstance(value, str):
            raise ReferenceFileError(f"{path}: metadata {key!r} must be a string")
        metadata[key] = value
    origin = data.get("claims_origin", "stated in the reference file")
    return Reference(
        id=reference_id,
        title=title,
        body=body,
        claims=tuple(claims),
        metadata=metadata,
        default=default,
        claims_origin=str(origin),
        variants=variants,
    )


_LANGUAGE = re.compile(r"[a-z]{2,3}")


def _read_variants(
    path: Path,
    raw: object,
    reference_id: str,
    claims: list[Claim],
    need_text: Callable[..., str],
    read_claims: Callable[..., list[Claim]],
) -> dict[str, Reference]:
    """``[variants.<language>]`` tables: the document in other languages, ``title``, ``body`` and
    ``[[variants.<language>.claims]]`` with the same claim ids as the main claims (none if it
    has none)."""
    if not isinstance(raw, dict):
        raise ReferenceFileError(f"{path}: 'variants' must be tables such as [variants.ru]")
    main_ids = [c.id for c in claims]
    variants: dict[str, Reference] = {}
    for language, table in raw.items():
        prefix = f"variants.{language}."
        if not _LANGUAGE.fullmatch(language):
            raise ReferenceFileError(
                f"{path}: 'variants.{language}': the key must be a language code such as ru"
            )
        if not isinstance(table, dict):
            raise ReferenceFileError(f"{path}: 'variants.{language}' must be a table with title and body")
        unknown = sorted(set(table) - {"title", "body", "claims"})
        if unknown:
            raise ReferenceFileError(
                f"{path}: '{prefix}{unknown[0]}' is not a variant field (title, body, claims)"
            )
        body = need_text("body", table, prefix)
        variant_claims = read_claims(table.get("claims", []), body, prefix)
        ids = [c.id for c in variant_claims]
        if sorted(ids) != sorted(main_ids):
            raise ReferenceFileError(
                f"{path}: '{prefix}claims' must have the main claims' ids ({', '.join(main_ids) or 'none'}); "
                f"found {', '.join(ids) or 'none'}"
            )
        order = {claim_id: k for k, claim_id in enumerate(main_ids)}
        variants[language] = Reference(
            id=reference_id,
            title=need_text("title", table, prefix).strip(),
            body=body,
            claims=tuple(sorted(variant_claims, key=lambda c: order[c.id])),
            metadata={"language": language},
            claims_origin="stated in the reference file",
        )
    return variants


def load_reference_directory(directory: Path) -> tuple[list[Reference], str]:
    """Load every ``*.toml`` file of ``directory``; return the references and the default id.

    With a single reference it is the default; with several, exactly one must
    say ``default = true``.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ReferenceFileError(f"{directory}: reference directory not found")
    paths = sorted(directory.glob("*.toml"))
    if not paths:
        raise ReferenceFileError(f"{directory}: no reference files (*.toml)")
    references: list[Reference] = []
    seen: dict[str, Path] = {}
    for path in paths:
        reference = load_reference_file(path)
        if reference.id in seen:
            raise ReferenceFileError(f"{path}: id {reference.id!r} is already used by {seen[reference.id]}")
        seen[reference.id] = path
        references.append(reference)
    defaults = [r.id for r in references if r.default]
    if len(references) == 1:
        return references, references[0].id
    if len(defaults) != 1:
        raise ReferenceFileError(
            f"{directory}: exactly one reference must say default = true; found {len(defaults)}"
            + (f" ({', '.join(defaults)})" if defaults else "")
        )
    return references, defaults[0]
