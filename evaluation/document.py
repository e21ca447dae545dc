"""A report as blocks (headings, paragraphs, tables, images) written twice: Markdown with the
images as relative PNG paths, and a self-contained HTML page with the same images inline
(base64), so it can be mailed or attached as it is."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path


class Doc:
    """Blocks written as Markdown or as self-contained HTML."""

    def __init__(self, root: Path):
        self.root = root
        self.blocks: list[tuple] = []

    def h(self, level: int, text: str):
        self.blocks.append(("h", level, text))

    def p(self, text: str):
        self.blocks.append(("p", _line(text)))

    def bullets(self, items: list[str]):
        if items:
            self.blocks.append(("ul", [_line(x) for x in items]))

    def table(self, header: list[str], rows: list[list[str]]):
        self.blocks.append(("table", [_line(h) for h in header], [[_line(c) for c in r] for r in rows]))

    def img(self, rel: str | None, alt: str):
        if rel:
            self.blocks.append(("img", rel, alt))

    def markdown(self) -> str:
        out = []
        for b in self.blocks:
            if b[0] == "h":
                out.append("#" * b[1] + " " + b[2])
            elif b[0] == "p":
                out.append(b[1])
            elif b[0] == "ul":
                out.append("\n".join(f"- {x}" for x in b[1]))
            elif b[0] == "table":
                cells = lambda r: "| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |"  # noqa: E731
                out.append("\n".join([cells(b[1]), "|" + "---|" * len(b[1])] + [cells(r) for r in b[2]]))
            elif b[0] == "img":
                out.append(f"![{b[2]}]({b[1]})")
        return "\n\n".join(out) + "\n"

    def html(self, title: str) -> str:
        def inline(text: str) -> str:  # **bold** and `code`, the only Markdown the blocks use
            t = html.escape(text)
            parts = t.split("**")
            t = "".join(f"<b>{x}</b>" if k % 2 else x for k, x in enumerate(parts))
            parts = t.split("`")
            return "".join(f"<code>{x}</code>" if k % 2 else x for k, x in enumerate(parts))

        body = []
        for b in self.blocks:
            if b[0] == "h":
                body.append(f"<h{b[1]}>{inline(b[2])}</h{b[1]}>")
            elif b[0] == "p":
                body.append(f"<p>{inline(b[1])}</p>")
            elif b[0] == "ul":
                body.append("<ul>" + "".join(f"<li>{inline(x)}</li>" for x in b[1]) + "</ul>")
            elif b[0] == "table":
                head = "".join(f"<th>{inline(str(c))}</th>" for c in b[1])
                rows = "".join("<tr>" + "".join(_td(inline(str(c)), str(c)) for c in r) + "</tr>" for r in b[2])
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
            elif b[0] == "img":
                data = base64.b64encode((self.root / b[1]).read_bytes()).decode()
                body.append(f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(b[2])}">'
                            f"<figcaption>{inline(b[2])}</figcaption></figure>")  # fmt: skip
        style = (
            "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
            "table{border-collapse:collapse;margin:1em 0;font-size:14px}td,th{border:1px solid #ccc;padding:4px 8px;"
            "text-align:right}td.t,th:first-child{text-align:left}th{background:#f3f3f3}"
            "img{max-width:100%;border:1px solid #ddd}figcaption{color:#555;font-size:13px}code{background:#f3f3f3}"
        )
        return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
                f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")  # fmt: skip

    def write(self, stem: str, title: str) -> dict[str, Path]:
        md, page = self.root / f"{stem}.md", self.root / f"{stem}.html"
        _atomic_text(md, self.markdown())
        _atomic_text(page, self.html(title))
        return {"md": md, "html": page}


_NUMBER = re.compile(r"^[-+−]?[\d.,]+( ± [\d.,]+)?%?$|^[\d]+/[\d]+$|^—$")


def _td(html_text: str, raw: str) -> str:
    """Numbers right-aligned (they line up), text left-aligned."""
    return f"<td>{html_text}</td>" if _NUMBER.match(raw.strip()) else f'<td class="t">{html_text}</td>'


def _line(text) -> str:
    """One line: error messages may hold newlines, which would break a table row or a bullet."""
    return " ".join(str(text).split())


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
