"""The one normalisation of text: what training, scoring, evidence and the command line read.

Analysts paste text from web pages, PDFs, e-mail, word processors and social
media, so the same visible words arrive encoded in many ways. :func:`normalize`
maps them to one form before any word is counted:

* markup: ``format="html"`` reads HTML with the standard library's HTML parser
  (scripts, styles, comments and attributes dropped, entities decoded, block
  elements end sentences); ``format="markdown"`` reads Markdown with
  markdown-it-py (link targets, emphasis marks and headings' ``#`` dropped);
* Unicode compatibility forms (NFKC, character by character, then NFC over
  combining sequences): full-width letters, ligatures, non-breaking spaces;
* invisible format characters (soft hyphens, zero-width spaces and joiners,
  direction marks, byte-order marks) removed; controls and unassigned or
  private-use code points blanked;
* typographic quotes, apostrophes, primes and dashes to their ASCII forms;
* letters of other scripts that look like Latin letters, inside a word that
  also has Latin letters ("NАТО" with Cyrillic А, Т, О), folded to the Latin
  letter, from Unicode's confusables table as the confusable-homoglyphs
  package ships it; words wholly in another script are left alone;
* URLs and e-mail addresses blanked: they are not words of the text.

Offsets stay true: :class:`NormalizedText` keeps, for every character of the
normalised text, the span of the client's text it came from, so evidence
offsets index the text exactly as it was sent.

Cost is linear in the length of the text. Plain ASCII text (most of what is
sent) takes a fast path that keeps every offset; other text is folded with
``str.translate`` and numpy arrays; only text with combining marks runs a
Python loop over its characters.
"""

from __future__ import annotations

import html
import json
import re
import threading
import unicodedata
from dataclasses import dataclass
from functools import cache
from html.parser import HTMLParser
from importlib import resources

import numpy as np

__all__ = ["FORMATS", "NormalizedText", "normalize"]

FORMATS: tuple[str, ...] = ("text", "html", "markdown")
"""The formats a text may be sent in."""

# Typographic punctuation with a plain ASCII equivalent; compared after NFKC.
_PUNCTUATION = {
    **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032\u2035\u02bc\u02b9\u00b4", "'"),
    **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033\u2036\u00ab\u00bb\u2039\u203a", '"'),
    **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u2043\ufe58\ufe63\uff0d", "-"),
}
# ASCII controls map to one character each, so that plain ASCII text keeps its length (and
# its offsets) on the fast path.
_LINE_BREAKS = {"\u2028": "\n", "\u2029": "\n\n", "\x85": "\n", "\r": " ", "\x0b": "\n", "\x0c": "\n"}

# URLs (with a scheme or "www.") and e-mail addresses; a URL does not end in punctuation
# (the full stop after it belongs to the sentence). Matches start only at a scheme, "www." or
# an "@" (a local part is at most 64 characters, as in RFC 5321), and backtrack only over
# trailing punctuation, so the scan stays linear.
_LINK = re.compile(
    r"(?i)\b(?:(?:https?|ftp)://|www\.)[^\s<>\"'()\[\]{}]*[^\s<>\"'()\[\]{}.,;:!?]"
    r"|\b[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63})+"
)
# Signs that a text sent as plain text is HTML or Markdown (detection only: nothing is
# parsed with these).
_HTML_SIGN = re.compile(
    r"(?i)<(?:/?(?:p|div|span|a|b|i|em|strong|br|ul|ol|li|h[1-6]|table|tr|td|img|blockquote|"
    r"script|style|html|body|section|article)\b[^<>]{0,200}>)|&(?:#\d{1,7}|#x[0-9a-f]{1,6}|[a-z]{2,8});"
)
_MARKDOWN_SIGN = re.compile(r"(?m)^#{1,6} \S|\[[^\]\n]{1,200}\]\((?:https?://|/|#)[^)\s]{0,500}\)|^\s*```")


@dataclass(frozen=True, eq=False)
class NormalizedText:
    """A text as the client sent it (``source``) and as the model reads it (``text``).

    ``starts`` and ``ends`` (int64 arrays of ``len(text)``) give, for each
    character of ``text``, the span ``source[starts[i]:ends[i]]`` it came from;
    ``None`` means the identity (same length, character for character).
    """

    source: str
    text: str
    format: str = "text"
    starts: np.ndarray | None = None
    ends: np.ndarray | None = None
    link_chars: int = 0
    """Characters of URLs and e-mail addresses blanked in ``text``."""
    confusables_folded: int = 0
    """Look-alike letters of other scripts folded to Latin letters."""
    markup_detected: str | None = None
    """For ``format="text"``: ``"html"`` or ``"markdown"`` when the text looks like it."""

    def source_span(self, start: int, end: int) -> tuple[int, int]:
        """The span of ``source`` that ``text[start:end]`` came from (``start < end``)."""
        if self.starts is None or self.ends is None:
            return start, end
        return int(self.starts[start]), int(self.ends[end - 1])


def normalize(source: str, format: str = "text") -> NormalizedText:
    """Normalise ``source`` as described in the module docstring.

    Parameters
    ----------
    source:
        The text as the client sent it, of any length.
    format:
        ``"text"`` (default), ``"html"`` or ``"markdown"``.

    Returns
    -------
    NormalizedText
        The normalised text with the map back to ``source``.

    Raises
    ------
    ValueError
        For an unknown ``format``.
    """
    if format == "text":
        text, starts, ends = source, None, None
    elif format == "html":
        text, starts, ends = _read_html(source)
    elif format == "markdown":
        text, starts, ends = _read_markdown(source)
    else:
        raise ValueError(f"unknown format {format!r}; expected one of {', '.join(FORMATS)}")

    folded = 0
    if text.isascii():
        if not text.isprintable():
            text = text.translate(_ascii_table())  # controls blanked: same length
    else:
        text, starts, ends = _fold_characters(text, starts, ends)
        if not unicodedata.is_normalized("NFC", text):
            text, starts, ends = _compose(text, starts, ends)
        text, folded = _fold_confusables(text)

    text, link_chars = _blank_links(text, starts)
    markup = None
    if format == "text":
        # The membership tests run at C speed and spare most texts both searches.
        if ("<" in source or "&" in source) and _HTML_SIGN.search(source):
            markup = "html"
        elif ("#" in source or "](" in source or "```" in source) and _MARKDOWN_SIGN.search(source):
            markup = "markdown"
    return NormalizedText(source, text, format, starts, ends, link_chars, folded, markup)


# -- characters -------------------------------------------------------------------


@cache
def _ascii_table() -> dict[int, str]:
    table = {c: _fold_one(chr(c)) for c in range(128) if _fold_one(chr(c)) != chr(c)}
    assert all(len(v) == 1 for v in table.values()), "the ASCII fast path keeps lengths"
    return table


def _fold_one(ch: str) -> str:
    """The normalised form of one character (possibly empty or several characters)."""
    if ch in "\t\n" or ch == " ":
        return ch
    if ch in _LINE_BREAKS:
        return _LINE_BREAKS[ch]
    category = unicodedata.category(ch)
    if category == "Cf":  # soft hyphen, zero-width characters, direction and byte-order marks
        return ""
    if category in ("Cc", "Cs", "Co", "Cn"):
        return " "
    if category in ("Zs", "Zl", "Zp"):
        return " "
    folded = unicodedata.normalize("NFKC", ch)
    if len(folded) > 1 and folded[0] == " " and all(unicodedata.combining(c) for c in folded[1:]):
        # Spacing accents (¨ ˘ ΄ …): NFKC makes them a space and combining marks, no letter.
        return " "
    return "".join(_PUNCTUATION.get(c, " " if unicodedata.category(c) == "Zs" else c) for c in folded)


# The table of every non-ASCII character met so far whose form changes; grows to the
# distinct characters users send (bounded by Unicode's size) and is shared by threads.
_TABLE: dict[int, str] = {}
_TABLE_LOCK = threading.Lock()


def _fold_characters(
    text: str, starts: np.ndarray | None, ends: np.ndarray | None
) -> tuple[str, np.ndarray | None, np.ndarray | None]:
    distinct = {ord(c) for c in set(text) if not c.isascii() or not c.isprintable()}
    missing = [c for c in distinct if c not in _TABLE and _fold_one(chr(c)) != chr(c)]
    if missing:
        with _TABLE_LOCK:
            for c in missing:
                _TABLE[c] = _fold_one(chr(c))
    resized = {c: len(_TABLE[c]) for c in distinct if c in _TABLE and len(_TABLE[c]) != 1}
    folded = text.translate(_TABLE)
    if not resized:
        return folded, starts, ends
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    lengths = np.ones(len(text), dtype=np.int64)
    for code, length in resized.items():
        lengths[codes == code] = length
    origin = np.repeat(np.arange(len(text), dtype=np.int64), lengths)
    return folded, *_compose_map(origin, origin + 1, starts, ends)


def _compose_map(
    starts: np.ndarray, ends: np.ndarray, outer_starts: np.ndarray | None, outer_ends: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Spans of the original source for spans given in an intermediate text (``outer`` maps it)."""
    if outer_starts is None or outer_ends is None:
        return starts, ends
    if len(starts) == 0:
        return starts, ends
    return outer_starts[starts], outer_ends[np.maximum(ends - 1, starts)]


def _compose(
    text: str, starts: np.ndarray | None, ends: np.ndarray | None
) -> tuple[str, np.ndarray | None, np.ndarray | None]:
    """NFC over each base character and the combining marks that follow it."""
    pieces: list[str] = []
    piece_starts: list[int] = []
    piece_ends: list[int] = []
    i, n = 0, len(text)
    while i < n:
        j = i + 1
        while j < n and unicodedata.combining(text[j]):
            j += 1
        composed = unicodedata.normalize("NFC", text[i:j])
        pieces.append(composed)
        piece_starts.extend([i] * len(composed))
        piece_ends.extend([j] * len(composed))
        i = j
    new_starts = np.asarray(piece_starts, dtype=np.int64)
    new_ends = np.asarray(piece_ends, dtype=np.int64)
    return "".join(pieces), *_compose_map(new_starts, new_ends, starts, ends)


@cache
def _latin_lookalikes() -> dict[int, str]:
    """Letters of other scripts that Unicode's confusables table maps to one Latin letter.

    Read from the confusable-homoglyphs package's copy of the table; only
    letters are kept (digits and symbols are not folded inside words).
    """
    data = json.loads(
        resources.files("confusable_homoglyphs").joinpath("confusables.json").read_text("utf-8")
    )
    table: dict[int, str] = {}
    for char, glyphs in data.items():
        if len(char) != 1 or char.isascii() or not char.isalpha():
            continue
        if unicodedata.name(char, "").startswith("LATIN"):
            continue
        for glyph in glyphs:
            target = glyph["c"]
            if len(target) == 1 and target.isascii() and target.isalpha():
                table[ord(char)] = target
                break
    return table


_WORD = re.compile(r"[^\W\d_]{2,}")


def _fold_confusables(text: str) -> tuple[str, int]:
    """Fold look-alike letters inside words that mix them with Latin letters (same length)."""
    lookalikes = _latin_lookalikes()
    changed: list[tuple[int, str]] = []
    for match in _WORD.finditer(text):
        word = match.group()
        if word.isascii() or not any(c.isascii() for c in word):
            continue
        folded = word.translate(lookalikes)
        if folded != word and _is_latin(folded):
            changed.append((match.start(), folded))
    if not changed:
        return text, 0
    count = 0
    parts, last = [], 0
    for start, folded in changed:
        count += sum(a != b for a, b in zip(folded, text[start : start + len(folded)], strict=True))
        parts += [text[last:start], folded]
        last = start + len(folded)
    parts.append(text[last:])
    return "".join(parts), count


def _is_latin(word: str) -> bool:
    """True when every letter of ``word`` is ASCII or a Latin letter (e.g. with an accent)."""
    return all(c.isascii() or unicodedata.name(c, "").startswith("LATIN") for c in word)


def _blank_links(text: str, starts: np.ndarray | None) -> tuple[str, int]:
    """Replace URLs and e-mail addresses by spaces (same length).

    A blanked span is widened to whole characters of the source: when one
    source character gave several (a "½" gave "1⁄2"), all of them go or none.
    """
    if "://" not in text and "www." not in text.lower() and "@" not in text:
        return text, 0
    blanked = 0
    parts, last = [], 0
    for match in _LINK.finditer(text):
        start, end = match.span()
        if starts is not None:
            while start > last and starts[start - 1] == starts[start]:
                start -= 1
            while end < len(text) and starts[end] == starts[end - 1]:
                end += 1
        start = max(start, last)  # a widened span may reach into the next match
        if end <= start:
            continue
        parts += [text[last:start], " " * (end - start)]
        blanked += end - start
        last = end
    if not blanked:
        return text, 0
    parts.append(text[last:])
    return "".join(parts), blanked


# -- HTML -------------------------------------------------------------------------

_SKIPPED = frozenset({"script", "style", "noscript", "template", "head", "svg", "math", "iframe", "object"})
_BLOCKS = frozenset(
    """address article aside blockquote body br caption dd details dialog div dl dt fieldset figcaption
    figure footer form h1 h2 h3 h4 h5 h6 header hr html li main nav ol p pre section summary table tbody
    td tfoot th thead title tr ul""".split()
)
_VOID = frozenset("area base br col embed hr img input link meta source track wbr".split())


class _HtmlReader(HTMLParser):
    """Collects the text of an HTML document as pieces located in the source.

    Each event is recorded with its source position; an event's span ends
    where the next one starts. A piece is (kind, position, text): ``data`` is
    the source's own characters, ``entity`` a character reference decoded from
    its span, ``break`` the end of a block element.
    """

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=False)
        newlines = np.frombuffer(source.encode("utf-32-le", "surrogatepass"), dtype=np.uint32) == 10
        self.line_starts = np.concatenate(([0], np.flatnonzero(newlines) + 1)).tolist()
        self.kinds: list[str] = []
        self.positions: list[int] = []
        self.texts: list[str] = []
        self.skipping = 0
        self.in_pre = 0

    def _add(self, kind: str, text: str) -> None:
        line, column = self.getpos()
        self.kinds.append(kind)
        self.positions.append(self.line_starts[line - 1] + column)
        self.texts.append(text)

    def _tag(self, tag: str) -> None:
        self._add("break", "\n\n" if tag in _BLOCKS else "")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self.skipping += 1
        if tag == "pre":
            self.in_pre += 1
        self._tag(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._tag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED and self.skipping:
            self.skipping -= 1
        if tag == "pre" and self.in_pre:
            self.in_pre -= 1
        self._tag(tag)

    def handle_data(self, data: str) -> None:
        # Outside <pre>, a line break in the source is a space on the page.
        self._add("data", "" if self.skipping else data if self.in_pre else data.replace("\n", " "))

    def handle_entityref(self, name: str) -> None:
        self._add("entity", "" if self.skipping else "&")  # decoded from its span below

    def handle_charref(self, name: str) -> None:
        self._add("entity", "" if self.skipping else "&")

    def handle_comment(self, data: str) -> None:
        self._add("break", "")

    def handle_decl(self, decl: str) -> None:
        self._add("break", "")

    def handle_pi(self, data: str) -> None:
        self._add("break", "")

    def unknown_decl(self, data: str) -> None:
        self._add("break", "")


def _read_html(source: str) -> tuple[str, np.ndarray, np.ndarray]:
    reader = _HtmlReader(source)
    reader.feed(source)
    # What feed() leaves unparsed is one unfinished construct at the end: a tag, comment or
    # declaration that never closes (HTML drops it, and finishing it with close() costs time
    # quadratic in its length), or a character reference or a last "<", which are text.
    tail = len(reader.rawdata)
    end_of_events = len(source) - tail
    # Inside a skipped element (an unclosed <script> or <style> keeps the rest as its content)
    # the tail is dropped with it.
    if tail and not reader.skipping and (source[end_of_events] == "&" or tail == 1):  # "&..." or a last "<"
        reader.kinds.append("entity")
        reader.positions.append(end_of_events)
        reader.texts.append("&")
        end_of_events = len(source)
    positions = [*reader.positions, end_of_events]
    pieces = []
    for k, (kind, text) in enumerate(zip(reader.kinds, reader.texts, strict=True)):
        if not text:
            continue
        start, end = positions[k], max(positions[k + 1], positions[k])
        if kind == "entity":  # html.unescape leaves an unknown name as written ("AT&T")
            text = html.unescape(source[start:end])
        pieces.append((text, start, end, kind == "data"))
    return _assemble(pieces)


def _assemble(pieces: list[tuple[str, int, int, bool]]) -> tuple[str, np.ndarray, np.ndarray]:
    """Join pieces ``(text, start, end, exact)`` and map each character back to the source.

    An exact piece is ``source[start:start + len(text)]`` character for character; every
    character of any other piece comes from the whole span ``source[start:end]``.
    """
    if not pieces:
        return "", np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    texts, starts, ends, exact = zip(*pieces, strict=True)
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    owner = np.repeat(np.arange(len(texts)), lengths)
    before = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    offset = np.arange(int(lengths.sum()), dtype=np.int64) - before[owner]
    piece_start = np.asarray(starts, dtype=np.int64)[owner]
    is_exact = np.asarray(exact, dtype=bool)[owner]
    char_starts = np.where(is_exact, piece_start + offset, piece_start)
    char_ends = np.where(is_exact, char_starts + 1, np.asarray(ends, dtype=np.int64)[owner])
    return "".join(texts), char_starts, char_ends


# -- Markdown ---------------------------------------------------------------------


def _read_markdown(source: str) -> tuple[str, np.ndarray, np.ndarray]:
    """The text of a Markdown document, each piece located in the source after the last one.

    markdown-it-py gives block tokens with their source lines and inline
    tokens with their text; each text is found in its block's lines. A piece
    that is not there verbatim (an escape or an entity) maps to the position
    where the search stood, whole.
    """
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").parse(source)
    line_starts = [0]
    for index, char in enumerate(source):
        if char == "\n":
            line_starts.append(index + 1)
    line_starts.append(len(source))

    pieces: list[tuple[str, int, int, bool]] = []
    cursor = 0

    def add(text: str, position: int | None) -> None:
        nonlocal cursor
        if not text:
            return
        if position is None:  # not in the source verbatim: the whole piece maps to the cursor
            pieces.append((text, cursor, cursor, False))
        else:
            pieces.append((text, position, position + len(text), True))
            cursor = position + len(text)

    for token in tokens:
        if token.map is not None:
            cursor = max(cursor, line_starts[min(token.map[0], len(line_starts) - 1)])
        if token.type == "inline":
            block_end = line_starts[min(token.map[1], len(line_starts) - 1)] if token.map else len(source)
            for child in token.children or ():
                if child.type in ("text", "code_inline"):
                    found = source.find(child.content, cursor, block_end) if child.content else -1
                    add(child.content, found if found >= 0 else None)
                elif child.type in ("softbreak", "hardbreak"):
                    add(" ", None)
                elif child.type == "image":
                    alt = "".join(c.content for c in child.children or ())
                    found = source.find(alt, cursor, block_end) if alt else -1
                    add(alt, found if found >= 0 else None)
        elif token.type in ("fence", "code_block"):
            found = source.find(token.content, cursor) if token.content else -1
            add(token.content, found if found >= 0 else None)
        elif token.nesting == -1 and token.block:
            add("\n\n", None)
    return _assemble(pieces)
