"""The HTML report instructors read: one row per notebook, sticky header, incomplete-only filter, each
verdict's evidence one click away, everything escaped. Rendered in headless Chromium when it is installed."""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from grading.handin.report import to_html
from grading.handin.results import FAIL, PASS, WARN, NotebookReport, Verdict
from grading.handin.rubric import CRITERIA


def class_of(n: int) -> list[NotebookReport]:
    reports = []
    for i in range(n):
        report = NotebookReport(f"hand-ins/Team_{i:03d}.ipynb", f"Team_{i:03d}", required=frozenset(CRITERIA))
        report.criteria = [Verdict(cid, (PASS, WARN, FAIL)[(i + k) % 3] if i % 4 else PASS,
                                   f'cell {k} "print(\'<b>{cid}</b>\')"') for k, cid in enumerate(CRITERIA)]
        reports.append(report)
    odd = NotebookReport("hand-ins/<img src=x onerror=alert(1)>.ipynb", "<script>x</script>")
    odd.unreadable = "cannot read it: <svg onload=alert(2)>"
    odd.criteria = [Verdict(cid, FAIL, odd.unreadable) for cid in CRITERIA]
    return reports + [odd]


def test_report_structure_for_a_class_of_150():
    reports = class_of(150)
    page = to_html(reports)
    rows = re.findall(r'<tr class="(complete|incomplete|unreadable)" id="notebook-\d+">', page)
    assert len(rows) == 151 and rows.count("unreadable") == 1
    assert rows.count("complete") == sum(r.complete for r in reports) > 0
    # one click to each verdict's evidence
    assert page.count('<div class="evidence">') == 151 * len(CRITERIA) + 1
    assert "position: sticky" in page and 'id="only-incomplete"' in page
    assert "body:has(#only-incomplete:checked) tr.complete { display: none; }" in page
    # in hand-ins/: paths shown relative to the common folder
    assert "151 notebooks in hand-ins" in page and ">Team_007.ipynb<" in page


def test_report_escapes_everything():
    page = to_html(class_of(3))
    assert "<script" not in page and "<img" not in page and "<svg" not in page
    assert "print(&#x27;&lt;b&gt;filename&lt;/b&gt;&#x27;)" in page and "print('<b>" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;.ipynb" in page and "&lt;svg onload=alert(2)&gt;" in page


@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")),
                    reason="headless Chromium is not installed")
def test_report_renders_in_headless_chromium():
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    with tempfile.TemporaryDirectory() as tmp:
        page, shot = Path(tmp) / "report.html", Path(tmp) / "report.png"
        page.write_text(to_html(class_of(150)), encoding="utf-8")
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={tmp}/profile", f"--screenshot={shot}", "--window-size=1400,900",
                        page.as_uri()], capture_output=True, timeout=90, check=False)
        assert shot.exists() and shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 20_000
