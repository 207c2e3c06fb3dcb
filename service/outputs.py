"""Writing result files safely: never over an input, never half-written.

A file is written to a temporary file beside its destination (same folder, so
same file system) and renamed into place only when complete; an error or a
Ctrl-C leaves the destination as it was. Missing folders are created.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TextIO

from service.domain.errors import DiscourseError


class OutputError(DiscourseError, ValueError):
    """An output cannot be written where asked (it is an input, or its folder cannot be made)."""


def same_file(a: Path, b: Path) -> bool:
    """True when ``a`` and ``b`` name the same file (through links, ``..`` or hard links)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one does not exist (yet): compare where they would be
        return a.resolve() == b.resolve()


def refuse_inputs(output: Path, inputs: Iterable[Path], what: str = "--out") -> None:
    """Raise :class:`OutputError` when ``output`` is one of ``inputs`` or a folder holding one."""
    for source in inputs:
        if same_file(output, source):
            raise OutputError(f"{what} {output} is the input file {source}: refusing to write over an input")


@contextlib.contextmanager
def atomic_text(path: Path, tag: str = "") -> Iterator[TextIO]:
    """A UTF-8 text file at ``path``, in place only if the ``with`` block completes.

    Creates missing parent folders. ``tag`` goes into the temporary file's name
    (``.NAME.TAG.XXXX.tmp``), e.g. the id of the process writing it. Raises
    :class:`OutputError` naming the path when the folder cannot be made or written.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.{tag + '.' if tag else ''}", suffix=".tmp"
        )
    except OSError as error:
        raise OutputError(f"{path}: cannot be written ({error.strerror})") from None
    try:
        os.chmod(temporary, 0o666 & ~_umask())  # as open() would have made it, not mkstemp's 0600
        with open(handle, "w", encoding="utf-8", newline="\n") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
