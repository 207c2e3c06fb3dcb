"""Markdown documents rendered from Jinja2 templates: the model card and the benchmarks report.

One set of rendering rules for both, so that they read alike and fail alike: nothing is
escaped (Markdown, not HTML), a block tag takes its own line with it, and a field the
template names but the data lacks is an error naming it (``StrictUndefined``) rather than
an empty cell.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jinja2

__all__ = ["markdown_template"]


def markdown_template(
    source: str, *, filters: Mapping[str, Callable[..., Any]] | None = None
) -> jinja2.Template:
    """Compile the Jinja2 template ``source`` for a Markdown document.

    Parameters
    ----------
    source:
        The template's text.
    filters:
        Extra filters by name, e.g. number formats.

    Returns
    -------
    jinja2.Template
        Its ``render`` raises ``jinja2.UndefinedError`` naming any undefined field it meets.
    """
    environment = jinja2.Environment(
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    environment.filters.update(filters or {})
    return environment.from_string(source)
