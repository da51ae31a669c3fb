"""The report as a person sees it: rendered by headless Chromium (Debian's ``chromium``).

A copy of the report gets a script that, once the page has loaded, records in the DOM
what the browser made of it: every image's natural size, the rendered height and
content of every section, and every resource fetched other than data URIs; Chromium's
``--dump-dom`` returns that DOM. One screenshot of the report itself is kept as an
artifact (its path is printed and recorded as the test's ``screenshot`` property).
Skipped where Chromium is absent.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from report_products import make_products

from seiscluster.report import html_page, image, report_stage, section, write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")

CHECK = """<script>
window.addEventListener('load', () => {
  const images = [...document.images].map(i => ({alt: i.alt, loaded: i.complete,
                                                 width: i.naturalWidth}));
  const sections = [...document.querySelectorAll('section')].map(s => ({
    id: s.id,
    shown: [...s.children].filter(c => c.tagName !== 'H2'
        && c.getBoundingClientRect().height > 0
        && (c.textContent.trim() !== '' || c.tagName === 'IMG' || c.querySelector('img')))
        .length}));
  const fetched = performance.getEntriesByType('resource').map(r => r.name)
      .filter(n => !n.startsWith('data:'));
  const out = document.createElement('pre');
  out.id = 'browser-check';
  out.textContent = JSON.stringify({images, sections, fetched});
  document.body.appendChild(out);
});
</script>"""


def chromium(*args: str, profile: Path) -> str:
    """Run headless Chromium; return its stdout."""
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--user-data-dir={profile}", "--virtual-time-budget=10000", *args],
        capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def browser_check(report: Path, tmp: Path) -> dict:
    """What Chromium rendered of ``report``: images, sections, fetched resources."""
    probe = tmp / f"{report.stem}_probe.html"
    probe.write_text(report.read_text().replace("</body>", CHECK + "</body>"))
    dom = chromium("--dump-dom", probe.as_uri(), profile=tmp / "chromium")
    found = re.search(r'<pre id="browser-check">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def problems(result: dict) -> list[str]:
    """Images that did not load, sections with nothing shown, resources fetched."""
    return ([f"image {i['alt']!r} did not load" for i in result["images"]
             if not (i["loaded"] and i["width"] > 0)]
            + [f"section {s['id']!r} is empty" for s in result["sections"] if not s["shown"]]
            + [f"fetched {url}" for url in result["fetched"]])


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("browser")
    products = make_products(folder)
    (folder / "provenance.json").write_text(json.dumps(
        {"seed": 0, "host": "test", "versions": {"numpy": "2"},
         "inputs": [{"path": "model.nc", "sha256": "0" * 64, "bytes": 1}]}))
    report_stage(report=str(folder / "report.html"), methods=["kmeans", "som"],
                 provenance=str(folder / "provenance.json"), **products)
    return folder / "report.html"


def test_every_image_loads_and_no_section_is_empty(report, tmp_path, record_property):
    result = browser_check(report, tmp_path)
    assert len(result["images"]) == 8
    assert len(result["sections"]) == 15
    assert "tremor-features" in {s["id"] for s in result["sections"]}
    assert not problems(result)
    shot = tmp_path / "report.png"
    chromium(f"--screenshot={shot}", "--window-size=1200,2400", report.as_uri(),
             profile=tmp_path / "chromium")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
    record_property("screenshot", str(shot))
    print(f"report screenshot: {shot}")


def test_the_check_sees_a_broken_image_and_an_empty_section(report, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnot an image")
    page = tmp_path / "bad.html"
    page.write_text(html_page("bad", [
        section("good", "Good", [image(report.parent / "velocity/elbow/elbow.png", "elbow")]),
        section("broken", "Broken", [image(broken, "broken figure")]),
        section("blank", "Blank", ["<p> </p>"]),
    ]))
    assert problems(browser_check(page, tmp_path)) == [
        "image 'broken figure' did not load", "section 'blank' is empty"]


def test_external_resource_would_be_reported(tmp_path):
    page = tmp_path / "external.html"
    write_report(page, "external", [section("remote", "Remote", [
        "<img src='http://127.0.0.1:9/x.png' alt='remote'>"])], "run: x\n")
    result = browser_check(page, tmp_path)
    assert "fetched http://127.0.0.1:9/x.png" in problems(result)


@pytest.mark.slow
def test_report_of_a_workflow_run_of_both_branches(tmp_path_factory, tmp_path):
    from workflow_runs import FAST, TREMOR_FAST, completed_run

    overrides = [o for o in FAST + TREMOR_FAST if not o.startswith("branches=")]
    run = completed_run(tmp_path_factory, [*overrides, "branches=[velocity,tremor]"])
    result = browser_check(run / "report.html", tmp_path)
    assert len(result["images"]) == 6 + 9  # velocity, tremor and feature figures, embedded
    assert [s["id"] for s in result["sections"]][-1] == "config"
    assert not problems(result)
