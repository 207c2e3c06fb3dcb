"""The scoring domain: tokenising, TF-IDF, pair features, stance, references, evidence.

Plain Python and numpy; nothing here reads files or knows about HTTP. The names below are
what callers use; each is imported from its module on first use, so that importing one light
module (:mod:`service.domain.errors`, which the settings need before numpy may be loaded)
does not load the rest.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from service.domain.errors import DiscourseError
    from service.domain.references import Claim, Reference
    from service.domain.text import Span

_EXPORTS = {
    "DiscourseError": "service.domain.errors",
    "Claim": "service.domain.references",
    "Reference": "service.domain.references",
    "Span": "service.domain.text",
}

__all__ = ["Claim", "DiscourseError", "Reference", "Span"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
