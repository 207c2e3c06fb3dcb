"""The scoring domain: tokenising, TF-IDF, pair features, stance, references, evidence.

Plain Python and numpy; nothing here reads files or knows about HTTP. The names below are
what callers (the loaders, the HTTP layer, the command line, training) use; each module's
``__all__`` lists the rest of its public names.

Each name is imported from its module on first use, so that importing one light module
(:mod:`service.domain.errors`, which the settings need before numpy may be loaded) does
not load the others.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from service.domain.encoding import EncoderConfig, TextEncoder
    from service.domain.errors import DiscourseError
    from service.domain.evidence import Evidence, find_evidence
    from service.domain.normalization import FORMATS, NormalizedText, normalize
    from service.domain.pair_features import FEATURE_NAMES
    from service.domain.references import Claim, PreparedReference, Reference, prepare_reference
    from service.domain.scorer import Scorer, TextScore, UnknownReferenceError
    from service.domain.stance import (
        STANCE_LABELS,
        AveragedClassifier,
        DenseNetwork,
        StanceModel,
        TreeEnsemble,
        WordingModel,
    )
    from service.domain.text import Span
    from service.domain.vectors import EncodedTexts
    from service.domain.workload import WorkLimitError, WorkLimits

_MODULE_OF = {
    "DiscourseError": "errors",
    "EncoderConfig": "encoding",
    "TextEncoder": "encoding",
    "EncodedTexts": "vectors",
    "Evidence": "evidence",
    "find_evidence": "evidence",
    "FORMATS": "normalization",
    "NormalizedText": "normalization",
    "normalize": "normalization",
    "FEATURE_NAMES": "pair_features",
    "Claim": "references",
    "PreparedReference": "references",
    "Reference": "references",
    "prepare_reference": "references",
    "Scorer": "scorer",
    "TextScore": "scorer",
    "UnknownReferenceError": "scorer",
    "STANCE_LABELS": "stance",
    "AveragedClassifier": "stance",
    "DenseNetwork": "stance",
    "StanceModel": "stance",
    "TreeEnsemble": "stance",
    "WordingModel": "stance",
    "Span": "text",
    "WorkLimitError": "workload",
    "WorkLimits": "workload",
}

__all__ = [
    "FEATURE_NAMES",
    "FORMATS",
    "STANCE_LABELS",
    "AveragedClassifier",
    "Claim",
    "DenseNetwork",
    "DiscourseError",
    "EncodedTexts",
    "EncoderConfig",
    "Evidence",
    "NormalizedText",
    "PreparedReference",
    "Reference",
    "Scorer",
    "Span",
    "StanceModel",
    "TextEncoder",
    "TextScore",
    "TreeEnsemble",
    "UnknownReferenceError",
    "WordingModel",
    "WorkLimitError",
    "WorkLimits",
    "find_evidence",
    "normalize",
    "prepare_reference",
]


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
