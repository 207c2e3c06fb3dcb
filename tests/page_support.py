"""Shared by the page tests: a second reference written for them, and HTML inspection helpers."""

from __future__ import annotations

import shutil
from html.parser import HTMLParser
from pathlib import Path

from service.config import DEFAULT_SEEDS_DIR

# Written for these tests (not taken from anywhere): a short municipal notice with two claims.
SECOND_REFERENCE_ID = "riverside-bike-lanes"
SECOND_REFERENCE_TITLE = "Riverside gets protected bike lanes"
SECOND_REFERENCE = '''
id = "riverside-bike-lanes"
title = "Riverside gets protected bike lanes"
language = "en"
claims_origin = "written by hand for the page tests"
body = """
The town council of Riverside voted on Tuesday to build four kilometres of protected bike lanes
along the river road.
Work starts in March and the lanes should open before the summer holidays.
Shop owners on the river road fear that the loss of parking spaces will cost them customers.
The council says that cycling to work has doubled in Riverside over the past five years.
"""

[[claims]]
id = "lanes-approved"
text = "Riverside's council approved protected bike lanes on the river road."
source = "voted on Tuesday to build four kilometres of protected bike lanes"

[[claims]]
id = "shops-fear-parking-loss"
text = "Shop owners fear losing customers because parking spaces disappear."
source = "Shop owners on the river road fear that the loss of parking spaces will cost them customers"
'''


def seeds_with_second_reference(directory: Path) -> Path:
    """A seeds folder with the shipped reference (still the default) and the second one."""
    directory.mkdir(parents=True, exist_ok=True)
    for path in DEFAULT_SEEDS_DIR.glob("*.toml"):
        shutil.copy(path, directory / path.name)
    (directory / f"{SECOND_REFERENCE_ID}.toml").write_text(SECOND_REFERENCE, encoding="utf-8")
    return directory


_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class PageParser(HTMLParser):
    """Collects what the page tests check: elements with their attributes, label targets, and the
    text inside each element that has an id (character references decoded, as a browser does)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.label_targets: set[str] = set()
        self._texts: dict[str, list[str]] = {}
        self._stack: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.elements.append((tag, attributes))
        if tag == "label" and attributes.get("for"):
            self.label_targets.add(attributes["for"] or "")
        if tag in _VOID:
            return
        element_id = attributes.get("id")
        if element_id:
            self._texts[element_id] = []
        self._stack.append((tag, element_id))

    def handle_endtag(self, tag: str) -> None:
        while self._stack:
            open_tag, _ = self._stack.pop()
            if open_tag == tag:
                break

    def handle_data(self, data: str) -> None:
        for _, element_id in self._stack:
            if element_id:
                self._texts[element_id].append(data)

    def text_of(self, element_id: str) -> str:
        """The text inside the element with ``element_id``."""
        return "".join(self._texts[element_id])

    def with_tag(self, tag: str) -> list[dict[str, str | None]]:
        """The attributes of every ``tag`` element, in document order."""
        return [attributes for name, attributes in self.elements if name == tag]


def parse_page(html: str) -> PageParser:
    """Parse ``html`` with the standard library's HTML parser."""
    parser = PageParser()
    parser.feed(html)
    parser.close()
    return parser
