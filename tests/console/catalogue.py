"""The project's own translation catalogue, read as the tests need it: which English strings of the
console must not be left on a page shown in Traditional Chinese, and what a page shows as text."""

from __future__ import annotations

import re
from functools import cache
from html.parser import HTMLParser
from pathlib import Path

import polib

ROOT = Path(__file__).resolve().parents[2]
CATALOGUES = sorted((ROOT / "locale").glob("*/LC_MESSAGES/*.po"))
ZH_HANT = ROOT / "locale" / "zh_Hant" / "LC_MESSAGES" / "django.po"
_PLACEHOLDER = re.compile(r"%\([^)]+\)[-#0 +]*\d*(?:\.\d+)?[sdfr]|<[^>]+>")
_LETTER = re.compile(r"[A-Za-z]")


def _pattern(msgid: str) -> re.Pattern | None:
    """The msgid as it would read on a page: placeholders stand for any text, markup for none, any
    run of white space for one. None when its own words hold fewer than two English letters
    ("%(action)s…", the unit of "%(n)s d"): such a string cannot be told from any other text."""
    pieces = _PLACEHOLDER.split(msgid)
    if len(_LETTER.findall("".join(pieces))) < 2:
        return None
    holes = iter(_PLACEHOLDER.findall(msgid))
    parts = []
    for piece in pieces:
        parts.append(r"\s+".join(re.escape(word) for word in piece.split(" ")) if piece else "")
        hole = next(holes, None)
        if hole is not None:
            parts.append("" if hole.startswith("<") else r".+?")
    body = "".join(parts)
    # A word inside an identifier is data, not a label: "running" in the seeker id "skier-running".
    start = r"(?<![\w\-/.:])" if _LETTER.match(msgid[0]) else ""
    end = r"(?![\w\-])" if _LETTER.match(msgid[-1]) else ""
    return re.compile(start + body + end)


@cache
def english_strings() -> dict[str, tuple[list[str], re.Pattern]]:
    """Each English msgid (singular and plural) whose Traditional Chinese differs from it: its
    literal pieces (a cheap first test) and its pattern."""
    found = {}
    for entry in polib.pofile(str(ZH_HANT)):
        translated = entry.msgstr_plural.get(0, "") if entry.msgid_plural else entry.msgstr
        for msgid in filter(None, [entry.msgid, entry.msgid_plural]):
            if translated != msgid and (pattern := _pattern(msgid)) is not None:
                pieces = [" ".join(p.split()) for p in _PLACEHOLDER.split(msgid) if p.strip()]
                found[msgid] = (pieces, pattern)
    return found


def english_left(text: str) -> list[str]:
    """The catalogue's English strings that `text` (a page as its reader sees it) still shows, each
    with the words around it."""
    text = " ".join(text.split())
    left = []
    for msgid, (pieces, pattern) in sorted(english_strings().items()):
        if not all(piece in text for piece in pieces):
            continue  # the pattern's placeholders make it slow on a long page: most strings stop here
        if found := pattern.search(text):
            left.append(f"{msgid!r} in …{text[max(found.start() - 60, 0) : found.end() + 60]}…")
    return left


class _Visible(HTMLParser):
    """Left out: <code> (machine identifiers: ids, ARNs, the API's error codes, never translated) and
    what the page itself marks lang="en" (records stored in English: engine events, service logs)."""

    SKIP = {"script", "style", "template", "noscript", "code"}
    VOID = {"input", "br", "img", "meta", "link", "hr", "col", "source", "wbr", "area", "base", "embed", "track"}

    def __init__(self):
        super().__init__()
        self.parts: list[str] = []
        self.open: list[bool] = []  # per open element: is it (or an ancestor) left out?

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        skipped = bool(self.open and self.open[-1]) or tag in self.SKIP or (tag != "html" and attrs.get("lang") == "en")
        if not skipped:
            if tag == "input" and attrs.get("type") in ("submit", "button") and attrs.get("value"):
                self.parts.append(attrs["value"])
            elif attrs.get("title"):
                self.parts.append(attrs["title"])  # shown on hover
        if tag not in self.VOID:
            self.open.append(skipped)

    def handle_endtag(self, tag):
        if tag not in self.VOID and self.open:
            self.open.pop()

    def handle_data(self, data):
        if not (self.open and self.open[-1]):
            self.parts.append(data)


def visible_text(html: str) -> str:
    """What a page shows as text (its buttons' labels and hover titles included, <code> left out), from its HTML."""
    parser = _Visible()
    parser.feed(html)
    return " ".join(" ".join(parser.parts).split())


# The same in a browser: the text nodes a reader sees, with submit buttons' labels and hover titles.
VISIBLE_TEXT_JS = """() => {
  const parts = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const el = node.parentElement;
    if (!el || el.closest('code, script, style, template, noscript, body [lang="en"]')) continue;
    if (!el.checkVisibility() && !el.closest('svg')) continue;
    parts.push(node.textContent);
  }
  for (const el of document.querySelectorAll('input[type=submit][value], [title]')) {
    if (!el.closest('code, body [lang="en"]')) parts.push(el.value || el.getAttribute('title'));
  }
  return parts.join(' ');
}"""
