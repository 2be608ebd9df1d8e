"""The HTML drift report is self-contained and opens in headless Chromium without a console
error (a screenshot is taken); the console check itself is shown to catch a broken page."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.monitoring_service.conftest import reference_frame

from lockgate.monitoring import DriftConfig, compute_profile, detect_drift
from lockgate.monitoring.report_html import render_html

CHROMIUM = next(
    (p for p in (shutil.which("chromium"), shutil.which("chromium-browser"), "/usr/bin/chromium")
     if p and Path(p).exists()),
    None,
)  # fmt: skip
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless Chromium is not installed (apt-get install -y chromium); "
    "the HTML report cannot be opened in a browser here",
)


def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(3)
    ref = reference_frame(3000, 4)
    ref["amount"] = rng.lognormal(3, 1, 3000)
    ref["<b>odd & name</b>"] = rng.integers(0, 5, 3000)
    ref["score"] = rng.random(3000)
    cur = reference_frame(1500, 5)
    cur["x1"] += 1.0
    cur["color"] = rng.choice(np.array(["red", "purple"], dtype=object), 1500)
    cur["amount"] = np.where(rng.random(1500) < 0.3, np.nan, rng.lognormal(3, 1, 1500))
    cur["<b>odd & name</b>"] = rng.integers(0, 5, 1500)
    cur["score"] = rng.random(1500) ** 2
    return ref, cur


def report_page(tmp_path: Path) -> Path:
    ref, cur = frames()
    profile = compute_profile(ref)
    report = detect_drift(profile, cur, DriftConfig(output_columns=("score",)))
    page = render_html(
        report, profile, cur, title="Drift <report>", reference_label="train.parquet",
        current_label="last hour",
    )  # fmt: skip
    path = tmp_path / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


def test_the_page_is_self_contained_and_escaped(tmp_path: Path) -> None:
    text = report_page(tmp_path).read_text()
    assert "<script" not in text.lower()
    # nothing is loaded from anywhere: no src attributes, links only to data: URLs, and
    # the only URL is the SVG namespace (an identifier, never fetched)
    assert not re.search(r"\bsrc\s*=", text)
    assert re.findall(r'href="([^"]*)"', text) == ["data:,"]
    assert set(re.findall(r"https?://[^\"'\s<>]+", text)) == {"http://www.w3.org/2000/svg"}
    assert "default-src 'none'" in text
    assert text.count("<svg") == 6  # one plot per column
    assert "&lt;b&gt;odd &amp; name&lt;/b&gt;" in text and "<b>odd" not in text
    assert "Drift &lt;report&gt;" in text


def open_in_chromium(page: Path, tmp_path: Path, name: str) -> tuple[Path, list[str]]:
    """Open ``page`` in headless Chromium: the screenshot and the console messages."""
    assert CHROMIUM is not None
    png = tmp_path / f"{name}.png"
    proc = subprocess.run(
        [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", f"--user-data-dir={tmp_path / ('profile-' + name)}",
            "--enable-logging=stderr", "--v=0", "--window-size=1280,2400",
            f"--screenshot={png}", page.as_uri(),
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    return png, console


@needs_chromium
def test_the_report_opens_in_chromium_without_console_errors(tmp_path: Path) -> None:
    png, console = open_in_chromium(report_page(tmp_path), tmp_path, "report")
    assert console == []
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body></body></html>")
    blank_png, _ = open_in_chromium(blank, tmp_path, "blank")
    # charts and tables compress far worse than an empty page
    assert png.stat().st_size > 10 * blank_png.stat().st_size


@needs_chromium
def test_the_console_check_catches_a_broken_page(tmp_path: Path) -> None:
    broken = tmp_path / "broken.html"
    broken.write_text("<!DOCTYPE html><html><body><script>notDefined();</script></body></html>")
    _, console = open_in_chromium(broken, tmp_path, "broken")
    assert any("Uncaught ReferenceError" in line for line in console), console
