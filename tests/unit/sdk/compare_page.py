"""Reading a compare report back: its tables' cells and images, its URLs, `<body>`'s attributes."""

from __future__ import annotations

import base64
import io
from html.parser import HTMLParser

from PIL import Image


class Page(HTMLParser):
    """The parts of the page the tests read: tables' rows and cells, every URL attribute."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tables: dict[str, list[list[list[str]]]] = {}
        self.texts: dict[str, list[list[str]]] = {}
        self.urls: list[str] = []
        self.body_attrs: dict[str, str | None] = {}
        self._table: str | None = None
        self.curves: list[str] = []
        self._in_curves = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.urls += [v or "" for k, v in attrs if k in ("src", "href", "srcset", "action")]
        if tag == "body":
            self.body_attrs = found
        if tag == "table":
            self._table = found.get("id")
            assert self._table is not None
            self.tables[self._table] = []
            self.texts[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
            self.texts[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self.tables[self._table][-1].append([])
            self.texts[self._table][-1].append("")
        elif tag == "img" and self._table:
            self.tables[self._table][-1][-1].append(found["src"] or "")
        elif tag == "div" and found.get("id") == "curves":
            self._in_curves = True
        if tag == "img" and self._in_curves:
            self.curves.append(found["src"] or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = None
        if tag == "div":
            self._in_curves = False

    def handle_data(self, data: str) -> None:
        if self._table and self.texts[self._table] and self.texts[self._table][-1]:
            self.texts[self._table][-1][-1] += data


def decode_png(uri: str, mime: str = "image/png") -> Image.Image:
    """The image a `data:image/png;base64,` (or other `mime`) URI holds, as RGB."""
    assert uri.startswith(f"data:{mime};base64,"), uri[:40]
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB")
