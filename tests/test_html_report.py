"""llmkit.html_report: one self-contained HTML per report.md, checked as text and in headless Chromium.

The browser tests need Chromium (tests/chromium.py finds it or installs Debian's package as root);
without one they skip with the reason. About 10 s once Chromium is there.
"""

import base64
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from chromium import ChromiumUnavailable, dump_dom, ensure_chromium, screenshot

from llmkit.html_report import write_combined, write_html

ROOT = Path(__file__).resolve().parents[1]
MAGENTA = "#ff00ff"  # a colour nothing else on the page uses, to find the plot in a screenshot

REPORT = """# Toy run: lora on tiny-model

Quoted prompt <s><|user|> stays text, and [the config](config.yaml) is a local file.

| metric | before | after |
|---|---|---|
| held-out loss | 2.4183 | 1.3123 |
| exact match | 0.005 | 0.25 |

## Loss curve

![{alt}]({image})

## Config

```yaml
method: lora
rank: 8
```

- one item with **bold** text
"""


def _png(path: Path, color: str = MAGENTA) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 3), dpi=100)  # 400 x 300 px
    ax.fill_between([0, 1, 2, 3], [3, 2, 1.5, 1], color=color)
    ax.set_title("loss")
    fig.savefig(path)
    plt.close(fig)
    return path


def _png_size(path: Path) -> tuple[int, int]:
    # PNG: 8-byte signature, then the IHDR chunk whose data starts with width and height.
    return struct.unpack(">II", path.read_bytes()[16:24])


def _report(d: Path, image: str = "loss.png", alt: str = "training loss", color: str = MAGENTA) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    if image == "loss.png":
        _png(d / image, color)
    md = d / "report.md"
    md.write_text(REPORT.format(image=image, alt=alt), encoding="utf-8")
    return md


def _urls(html: str) -> list[str]:
    return re.findall(r"""\b(?:src|href)\s*=\s*["']([^"']*)["']""", html)


def _texts(dom: str, tags: str) -> list[str]:
    """Text of every <tag> in `tags` (e.g. "h1|h2|td"), inner markup stripped."""
    return [re.sub(r"<[^>]+>", "", m[1]).strip()
            for m in re.findall(rf"<({tags})\b[^>]*>(.*?)</\1>", dom, re.S)]


def _image_probe(html: Path) -> Path:
    """A copy of `html` with a script that writes every <img>'s decoded size into the DOM.

    The report itself has no JavaScript; the probe adds some so that --dump-dom shows whether the
    browser took each embedded image for one (naturalWidth is 0 when the data is not an image; a
    truncated PNG still reports its header's size, which is why the screenshot is checked too).
    """
    script = """<script>
window.addEventListener("load", () => {
  const sizes = [...document.images].map(i => `${i.complete}:${i.naturalWidth}x${i.naturalHeight}`);
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = sizes.join(",");
  document.body.append(out);
});
</script>"""
    probe = html.with_name(html.stem + ".probe.html")
    probe.write_text(html.read_text(encoding="utf-8").replace("</body>", script + "</body>"), encoding="utf-8")
    return probe


def _decoded_sizes(html: Path) -> list[str]:
    dom = dump_dom(_image_probe(html))
    m = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert m, "the probe script did not run"
    return m[1].split(",") if m[1] else []


@pytest.fixture(scope="module")
def browser():
    try:
        return ensure_chromium()
    except ChromiumUnavailable as e:
        pytest.skip(f"no headless Chromium: {e}")


# ---------------------------------------------------------------- the HTML as text


def test_html_is_self_contained(tmp_path):
    md = _report(tmp_path / "run")
    out = write_html(md)
    assert out == tmp_path / "run" / "report.html"
    html = out.read_text(encoding="utf-8")

    urls = _urls(html)
    assert urls, "expected the image src and heading anchors at least"
    assert all(u.startswith(("data:", "#")) for u in urls), urls
    assert "http://" not in html and "https://" not in html
    assert "<script" not in html.lower() and "<link" not in html.lower()

    # The embedded image is byte-for-byte the PNG on disk.
    (src,) = [u for u in urls if u.startswith("data:")]
    assert src.startswith("data:image/png;base64,")
    assert base64.b64decode(src.split(",", 1)[1]) == (tmp_path / "run" / "loss.png").read_bytes()

    assert "<table>" in html and '<td class="num">1.3123</td>' in html and "<td>held-out loss</td>" in html
    assert '<th class="num">after</th>' in html  # numeric columns are right-aligned, header too
    assert '<code class="language-yaml">method: lora' in html
    assert "<strong>bold</strong>" in html
    # Raw HTML in the report is text, not markup; a local link keeps its text but loses its href.
    assert "&lt;s&gt;&lt;|user|&gt;" in html and "<s>" not in html
    assert '<span class="file" title="config.yaml">the config</span>' in html
    assert "<title>Toy run: lora on tiny-model</title>" in html


def test_missing_image_is_noted_not_fatal(tmp_path):
    md = _report(tmp_path / "run", image="plots/gone.png", alt="reward curve")
    out = write_html(md, tmp_path / "elsewhere.html", title="Custom title")
    html = out.read_text(encoding="utf-8")
    assert "<img" not in html
    assert re.search(r'<span class="missing"[^>]*>reward curve \[image not found: plots/gone.png\]</span>', html)
    assert "<title>Custom title</title>" in html
    assert all(u.startswith("#") for u in _urls(html))


def test_cli_writes_report_html(tmp_path):
    md = _report(tmp_path / "run")
    r = subprocess.run([sys.executable, "-m", "llmkit.html_report", str(md)], capture_output=True, text=True,
                       timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()) == md.with_suffix(".html") and md.with_suffix(".html").is_file()


# ---------------------------------------------------------------- in headless Chromium


def test_browser_sees_headings_table_and_decoded_image(browser, tmp_path):
    md = _report(tmp_path / "run")
    out = write_html(md)
    dom = dump_dom(out)
    assert _texts(dom, "h1|h2") == ["Toy run: lora on tiny-model", "Loss curve", "Config"]
    cells = _texts(dom, "td")
    assert cells == ["held-out loss", "2.4183", "1.3123", "exact match", "0.005", "0.25"]
    assert "<s>" not in dom and "&lt;s&gt;&lt;|user|&gt;" in dom

    # The browser decoded the data URI to an image of the PNG's own size.
    w, h = _png_size(tmp_path / "run" / "loss.png")
    assert _decoded_sizes(out) == [f"true:{w}x{h}"]

    # And it is painted: the screenshot has a block of the plot's magenta fill, on a non-blank page.
    import matplotlib.image

    shot = matplotlib.image.imread(screenshot(out, tmp_path / "shot.png", width=1000, height=1200))[..., :3]
    magenta = (shot[..., 0] > 0.9) & (shot[..., 1] < 0.1) & (shot[..., 2] > 0.9)
    assert magenta.sum() > 5_000, magenta.sum()
    assert shot.std() > 0.05


def test_browser_shows_missing_image_note(browser, tmp_path):
    md = _report(tmp_path / "run", image="gone.png", alt="reward curve")
    out = write_html(md)
    dom = dump_dom(out)
    assert "reward curve [image not found: gone.png]" in dom
    assert _decoded_sizes(out) == []


def test_combined_page(browser, tmp_path):
    a = _report(tmp_path / "sft", color=MAGENTA)
    b = _report(tmp_path / "ppo", color="#00c000")
    b.write_text(b.read_text().replace("# Toy run: lora on tiny-model", "# PPO run"))
    out = write_combined([("SFT", a), ("PPO", b)], tmp_path / "all.html", title="Two runs")
    html = out.read_text(encoding="utf-8")

    assert all(u.startswith(("data:", "#")) for u in _urls(html))
    assert len([u for u in _urls(html) if u.startswith("data:image/png")]) == 2
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids)), "both reports have '## Loss curve'; their ids must differ"
    links = [u[1:] for u in _urls(html) if u.startswith("#")]
    assert links and set(links) <= set(ids), set(links) - set(ids)

    dom = dump_dom(out)
    assert _texts(dom, "h1") == ["Two runs"]  # one h1; each report's headings one level down
    assert _texts(dom, "h2") == ["Toy run: lora on tiny-model", "PPO run"]
    assert _texts(dom, "h3") == ["Loss curve", "Config"] * 2
    toc = re.search(r'<nav class="toc">(.*?)</nav>', dom, re.S)[1]
    assert _texts(toc, "a") == ["SFT", "Loss curve", "Config", "PPO", "Loss curve", "Config"]
    assert _decoded_sizes(out) == ["true:400x300"] * 2


def test_combined_page_rejects_missing_report(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        write_combined([("x", tmp_path / "nope" / "report.md")], tmp_path / "all.html", title="t")
    assert not (tmp_path / "all.html").exists()
