"""report.html in a real browser: Debian's chromium (headless) opens the report of a smoke
comparison; every image must decode (naturalWidth > 0) and a screenshot is saved.

Skips, saying why, when chromium is not installed (`.ci/run` installs it when apt works).
Set CVLOSS_SCREENSHOT=/some/path.png to keep the screenshot for a look."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cvloss.cli import app

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]
# Injected into a copy of the page (the report itself has no script): after load, write
# "decoded/total" images into the DOM for --dump-dom to carry out.
PROBE = ('<script>window.addEventListener("load", () => { const im = Array.from(document.images); '
         'const ok = im.filter(i => i.complete && i.naturalWidth > 0).length; '
         'document.body.setAttribute("data-images", ok + "/" + im.length); });</script>')


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


def _run(browser: str, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([browser, *FLAGS, f"--user-data-dir={tmp / 'profile'}", *args],
                          capture_output=True, text=True, timeout=90)


@pytest.fixture(scope="module")
def smoke_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke")
    runner = CliRunner()
    result = runner.invoke(app, ["compare", "--task", "seg", "--losses", "ce,dice", "--budget", "smoke", "--seeds", "2",
                                 "--set", "n_train=16", "--set", "n_val=8", "--set", "epochs=2", "--out", str(out),
                                 "--quiet"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["report", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_smoke_report_files(smoke_report):
    md = (smoke_report / "REPORT.md").read_text()
    html = (smoke_report / "report.html").read_text()
    assert "## seg · synth-pets" in md and "`ce`" in md and "Reproduce: `cvloss compare --task seg" in md
    assert html.count('<img src="data:image/png;base64,') == 4 and "http" not in re.sub(r"<pre>.*?</pre>", "", html)


def test_every_image_decodes_in_chromium(smoke_report, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium not found (install Debian's chromium: apt-get install -y chromium); browser check skipped")
    page = (smoke_report / "report.html").read_text()
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", PROBE + "</body>"))
    done = _run(browser, tmp_path, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri())
    if done.returncode != 0 and "data-images" not in done.stdout:
        pytest.skip(f"chromium at {browser} did not run here (exit {done.returncode}): {done.stderr.strip()[-300:]}")
    m = re.search(r'data-images="(\d+)/(\d+)"', done.stdout)
    assert m, done.stdout[-500:]
    ok, total = int(m.group(1)), int(m.group(2))
    assert total == 4 and ok == total, f"{ok} of {total} images decoded"

    shot = tmp_path / "report.png"
    done = _run(browser, tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", (smoke_report / "report.html").as_uri())
    assert shot.exists() and shot.stat().st_size > 20_000, done.stderr[-300:]
    with open(shot, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    keep = os.environ.get("CVLOSS_SCREENSHOT")
    if keep:
        shutil.copyfile(shot, keep)


# Injected into a test copy: the widest table's right edge against the page's width.
WIDTH_PROBE = ('<script>window.addEventListener("load", () => { const page = document.documentElement.clientWidth; '
               'const widest = Math.max(0, ...Array.from(document.querySelectorAll("table")).map('
               't => Math.ceil(t.getBoundingClientRect().right))); '
               'document.body.setAttribute("data-widths", widest + "/" + page); });</script>')
A4_CONTENT_PX = 703  # 210 mm - 2 x 12 mm margins (the report's @page) at 96 px per inch


@pytest.mark.parametrize("width, media", [(1280, "screen"), (A4_CONTENT_PX, "print")])
def test_no_table_is_wider_than_the_page(smoke_report, tmp_path, width, media):
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium not found (install Debian's chromium: apt-get install -y chromium); browser check skipped")
    page = (smoke_report / "report.html").read_text()
    if media == "print":  # apply the print stylesheet on screen, at the width of an A4 page's text
        page = page.replace("@media print {", "@media all {")
    probe = tmp_path / "widths.html"
    probe.write_text(page.replace("</body>", WIDTH_PROBE + "</body>"))
    done = _run(browser, tmp_path, "--virtual-time-budget=5000", f"--window-size={width},1200", "--dump-dom",
                probe.as_uri())
    m = re.search(r'data-widths="(\d+)/(\d+)"', done.stdout)
    if m is None and done.returncode != 0:
        pytest.skip(f"chromium at {browser} did not run here (exit {done.returncode}): {done.stderr.strip()[-300:]}")
    assert m, done.stdout[-500:]
    widest, client = int(m.group(1)), int(m.group(2))
    assert 0 < widest <= client, f"a table reaches {widest} px on a {client} px page ({media})"


def test_the_report_prints_to_pdf(smoke_report, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium not found (install Debian's chromium: apt-get install -y chromium); browser check skipped")
    pdf = tmp_path / "report.pdf"
    done = _run(browser, tmp_path, f"--print-to-pdf={pdf}", "--no-pdf-header-footer",
                (smoke_report / "report.html").as_uri())
    assert pdf.exists() and pdf.stat().st_size > 20_000, done.stderr[-300:]
    assert pdf.read_bytes()[:5] == b"%PDF-"
