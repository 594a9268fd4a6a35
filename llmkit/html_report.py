"""One self-contained HTML file from a run's report.md, to open in a browser or mail around.

Every llmkit run writes `report.md` with PNG plots beside it. That pair reads well on GitHub but
falls apart as an attachment: the images are separate files. `write_html` renders the Markdown
(Python-Markdown with the `tables`, `fenced_code` and `toc` extensions) into a single HTML file in
which every local image is embedded as a base64 `data:` URI and all styling is inline CSS. The page
loads nothing from anywhere: no scripts, no fonts, no stylesheets, no remote images. A missing
image is not an error; its alt text stays, with a visible note naming the file.

Raw HTML in the Markdown is escaped rather than passed through, because reports quote model
prompts and outputs verbatim (`<s><|user|>` would otherwise become a strike-through tag).
Links to local files (which would be dead in a mailed copy) become plain text; http(s) links the
report itself writes are kept as links.

`write_combined` puts several reports on one page: one h1, a table of contents, and one section per
report with its headings demoted one level.

    python -m llmkit.html_report runs/sft-lora/report.md             # -> runs/sft-lora/report.html
    python -m llmkit.html_report runs/*/report.md -o all.html --title "All runs"
"""

from __future__ import annotations

import argparse
import base64
import html
import mimetypes
import re
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote, urlparse

import markdown
from markdown.extensions.toc import slugify_unicode
from markdown.treeprocessors import Treeprocessor

CSS = """
:root { color-scheme: light; }
body { max-width: 980px; margin: 0 auto; padding: 0 1.25rem 3rem; color: #1f2328; background: #fff;
       font: 15px/1.55 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; }
header.page { display: flex; justify-content: space-between; align-items: baseline; gap: 1rem;
              border-bottom: 1px solid #d0d7de; padding: .6rem 0; margin-bottom: 1.2rem;
              font-size: 13px; color: #57606a; }
header.page .title { font-weight: 600; color: #1f2328; }
h1, h2, h3, h4 { line-height: 1.25; margin: 1.6em 0 .6em; }
h1 { font-size: 1.8em; border-bottom: 1px solid #d0d7de; padding-bottom: .3em; }
h2 { font-size: 1.4em; } h3 { font-size: 1.15em; } h4 { font-size: 1em; }
a { color: #0969da; }
table { border-collapse: collapse; margin: 1em 0; display: block; max-width: 100%; overflow-x: auto; }
th, td { border: 1px solid #d0d7de; padding: .3em .65em; vertical-align: top; overflow-wrap: break-word; }
th { background: #f0f3f6; text-align: left; }
tbody tr:nth-child(even) { background: #f6f8fa; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
img { max-width: 100%; height: auto; display: block; margin: .5em 0; }
code { font: 13px/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
       background: #eff1f3; padding: .1em .3em; border-radius: 4px; }
pre { background: #f6f8fa; border: 1px solid #d0d7de; border-radius: 6px; padding: .8em 1em; overflow-x: auto; }
pre code { background: none; padding: 0; }
.missing { display: inline-block; border: 1px dashed #cf222e; color: #cf222e; background: #fff5f5;
           padding: .4em .7em; margin: .5em 0; border-radius: 4px; }
span.file { font-family: ui-monospace, Menlo, Consolas, monospace; }
nav.toc { background: #f6f8fa; border: 1px solid #d0d7de; border-radius: 6px; padding: .4em 1.2em; }
nav.toc ul { margin: .3em 0; padding-left: 1.2em; }
section.report { border-top: 3px solid #d0d7de; margin-top: 2.5em; }
section.report > .source { color: #57606a; font-size: 13px; margin: .6em 0 0; }
@media print { img, table, pre { break-inside: avoid; } section.report { break-before: page; } }
"""

# A table cell that is just a number: 1,234.5 / -0.0683 / 6.9% / 3e-05.
_NUMBER = re.compile(r"[-+\u2212]?(\d{1,3}(,\d{3})+|\d+)?(\.\d+)?([eE][-+]?\d+)?%?")


class _Fixups(Treeprocessor):
    """Embed images, flatten local links, mark numeric cells, demote headings by `shift` levels."""

    def __init__(self, md, base: Path, shift: int):
        super().__init__(md)
        self.base, self.shift = base, shift

    def run(self, root: ET.Element) -> None:
        for el in list(root.iter()):
            if el.tag == "img":
                self._embed(el)
            elif el.tag == "a":
                self._link(el)
            elif el.tag == "table":
                _mark_numeric(el)
            elif self.shift and re.fullmatch(r"h[1-6]", el.tag):
                el.tag = f"h{min(6, int(el.tag[1]) + self.shift)}"

    def _local_path(self, url: str) -> Path | None:
        u = urlparse(url)
        if u.scheme not in ("", "file"):
            return None
        p = Path(unquote(u.path))
        return p if p.is_absolute() else self.base / p

    def _embed(self, img: ET.Element) -> None:
        src = img.get("src", "")
        if src.startswith("data:"):
            return
        path = self._local_path(src)
        if path is not None and path.is_file():
            mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            img.set("src", f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}")
            return
        # Keep the alt text and say which file is missing; turn the <img> into a <span> in place
        # (the element keeps its tail text, so nothing around it moves).
        alt = img.get("alt", "")
        why = "image not embedded (remote)" if path is None else "image not found"
        img.tag = "span"
        img.attrib.clear()
        img.set("class", "missing")
        img.text = f"{alt} [{why}: {src}]" if alt else f"[{why}: {src}]"

    def _link(self, a: ET.Element) -> None:
        href = a.get("href", "")
        if href.startswith("#") or urlparse(href).scheme in ("http", "https", "mailto"):
            return
        # A relative link would be dead once the file is mailed: keep the text, show the path.
        a.tag = "span"
        a.attrib.clear()
        a.set("class", "file")
        a.set("title", href)


def _cell_text(el: ET.Element) -> str:
    return "".join(el.itertext()).strip()


def _mark_numeric(table: ET.Element) -> None:
    """Right-align the columns whose every non-empty body cell is a number."""
    rows = [[c for c in tr if c.tag in ("th", "td")] for tr in table.iter("tr")]
    numeric: dict[int, bool] = {}
    for row in rows:
        for i, c in enumerate(row):
            text = _cell_text(c)
            if c.tag == "td" and text:
                is_num = re.search(r"\d", text) is not None and _NUMBER.fullmatch(text) is not None
                numeric[i] = numeric.get(i, True) and is_num
    for row in rows:
        for i, c in enumerate(row):
            if numeric.get(i) and "style" not in c.attrib:  # an explicit :--: alignment wins
                c.set("class", "num")


def _render(md_text: str, base: Path, shift: int = 0, id_prefix: str = "") -> tuple[str, list[dict]]:
    """Markdown -> (HTML fragment, toc tokens)."""
    md = markdown.Markdown(
        extensions=["tables", "fenced_code", "toc"],
        extension_configs={"toc": {"marker": "",  # no [TOC] substitution inside reports
                                   "slugify": lambda v, sep: id_prefix + slugify_unicode(v, sep)}},
        output_format="html",
    )
    # Escape raw HTML instead of passing it through: reports quote prompts like "<s><|user|>".
    md.preprocessors.deregister("html_block")
    md.inlinePatterns.deregister("html")
    # After 'inline' (priority 20) has made the <img>/<a> elements, before 'toc' (5) reads headings.
    md.treeprocessors.register(_Fixups(md, base, shift), "llmkit_fixups", 15)
    body = md.convert(md_text)
    return body, md.toc_tokens


def _first_h1(body: str) -> str | None:
    m = re.search(r"<h1[^>]*>(.*?)</h1>", body, re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", m.group(1))).strip() if m else None


def _page(title: str, main: str, source: str) -> str:
    now = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    t = html.escape(title)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="llmkit.html_report">
<title>{t}</title>
<style>{CSS}</style>
</head>
<body>
<header class="page"><span class="title">{t}</span><span class="meta">{html.escape(source)} &middot; generated {now}</span></header>
<main>
{main}
</main>
</body>
</html>
"""


def write_html(report_md: Path, out_html: Path | None = None, title: str | None = None) -> Path:
    """Render `report_md` to one self-contained HTML file (default: report.html beside it)."""
    report_md = Path(report_md)
    out_html = Path(out_html) if out_html else report_md.with_suffix(".html")
    body, _ = _render(report_md.read_text(encoding="utf-8"), report_md.parent)
    title = title or _first_h1(body) or report_md.parent.name or report_md.stem
    out_html.write_text(_page(title, body, str(report_md)), encoding="utf-8")
    return out_html


def _toc_list(tokens: list[dict]) -> str:
    if not tokens:
        return ""
    items = "".join(f'<li><a href="#{t["id"]}">{t["name"]}</a>{_toc_list(t["children"])}</li>' for t in tokens)
    return f"<ul>{items}</ul>"


def write_combined(sections: list[tuple[str, Path]], out_html: Path, title: str) -> Path:
    """One page for several reports: an h1, a table of contents, one section per (label, report.md).

    Each report's headings move down one level (its h1 becomes an h2), and its ids get a per-section
    prefix so that two reports with the same "## Training loss" do not collide.
    """
    missing = [str(p) for _, p in sections if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(f"report(s) not found: {', '.join(missing)}")
    toc, parts = [], []
    for i, (label, report_md) in enumerate(sections, 1):
        report_md = Path(report_md)
        sid = f"s{i}-{slugify_unicode(label, '-')}"
        body, tokens = _render(report_md.read_text(encoding="utf-8"), report_md.parent, shift=1,
                                  id_prefix=f"s{i}-")
        # The section's own headings under its entry; a single top heading (the report title) is skipped.
        sub = tokens[0]["children"] if len(tokens) == 1 else tokens
        toc.append(f'<li><a href="#{sid}">{html.escape(label)}</a>{_toc_list(sub)}</li>')
        parts.append(f'<section class="report" id="{sid}">\n'
                     f'<p class="source">{html.escape(label)} &middot; <span class="file">{html.escape(str(report_md))}</span></p>\n'
                     f"{body}\n</section>")
    main = (f"<h1>{html.escape(title)}</h1>\n"
            f'<nav class="toc"><strong>Contents</strong><ul>{"".join(toc)}</ul></nav>\n' + "\n".join(parts))
    out_html = Path(out_html)
    out_html.write_text(_page(title, main, f"{len(sections)} reports"), encoding="utf-8")
    return out_html


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m llmkit.html_report", description=__doc__.split("\n")[0])
    ap.add_argument("reports", nargs="+", type=Path, help="report.md file(s); several make one combined page")
    ap.add_argument("-o", "--out", type=Path, help="output HTML (default: report.html beside a single report)")
    ap.add_argument("--title", help="page title (default: the report's first heading)")
    args = ap.parse_args(argv)
    if len(args.reports) == 1:
        out = write_html(args.reports[0], args.out, args.title)
    else:
        if not args.out:
            ap.error("several reports need -o/--out for the combined page")
        sections = [(p.parent.name or str(p), p) for p in args.reports]
        out = write_combined(sections, args.out, args.title or "llmkit reports")
    print(out)


if __name__ == "__main__":
    main()
