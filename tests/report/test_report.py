"""The marketer's report: a self-contained HTML file with five inline SVG charts."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from orchestration.report import ReportError, write_report

CHART_IDS = ["chart-funnel", "chart-transitions", "chart-cohorts", "chart-audience-sizes", "chart-lift"]


def test_report_is_self_contained_and_has_every_chart(report_warehouse, tmp_path):
    out = write_report(report_warehouse, tmp_path / "nested" / "report.html")
    html = out.read_text(encoding="utf-8")
    for chart_id in CHART_IDS:
        assert f'<svg id="{chart_id}"' in html
    # Nothing is fetched: no scripts, stylesheets, images or fonts from anywhere.
    assert not re.search(r"<(script|link|img|iframe)\b", html, re.I)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html, re.I)
    assert "@import" not in html and "url(" not in html


def test_report_shows_the_figures_of_the_marts(report_warehouse, tmp_path):
    html = write_report(report_warehouse, tmp_path / "report.html").read_text(encoding="utf-8")
    # The past test_lift snapshot: 10 members (6 converted), 10 holdout (2 converted).
    assert "test_lift · email (10/10)" in html and "+40.0 pts [" in html
    assert "<td>60.0%</td>" in html and "<td>20.0%</td>" in html
    assert "as of 2026-06-01 00:00:00" in html
    # Two builds -> two audience snapshots on the time axis.
    assert "2026-02-21 00:00" in html and "2026-06-01 00:00" in html
    # The funnel lists churned profiles (ch_in) and their count.
    assert re.search(r"<title>churned: \d+</title>", html)


def test_unbuilt_warehouse_gives_a_clear_error_and_writes_nothing(duck_warehouse, tmp_path):
    out = tmp_path / "report.html"
    with pytest.raises(ReportError, match="run `lifeline build` first"):
        write_report(duck_warehouse, out)
    assert not out.exists() and not list(tmp_path.glob("*.tmp"))


def chromium_paths() -> tuple[str, str]:
    browser = shutil.which("chromium") or "/usr/bin/chromium"
    driver = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not (Path(browser).exists() and Path(driver).exists()):
        pytest.skip("Debian chromium + chromium-driver are not installed (apt-get install -y chromium chromium-driver)")
    return browser, driver


@pytest.mark.browser
def test_report_renders_in_headless_chromium(report_warehouse, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    browser, driver_path = chromium_paths()
    out = write_report(report_warehouse, tmp_path / "report.html")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
                "--window-size=1200,3200"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        driver.get(out.resolve().as_uri())
        artifacts = tmp_path / "artifacts"
        artifacts.mkdir()
        assert driver.save_screenshot(str(artifacts / "report.png"))
        assert (artifacts / "report.png").stat().st_size > 10_000
        for chart_id in CHART_IDS:
            svg = driver.find_element(By.ID, chart_id)
            assert svg.tag_name == "svg" and svg.size["width"] > 100 and svg.size["height"] > 30, chart_id
        assert len(driver.find_elements(By.CSS_SELECTOR, "#chart-transitions path.flow")) > 3
        assert len(driver.find_elements(By.CSS_SELECTOR, "#chart-cohorts rect.cell")) > 3
        assert len(driver.find_elements(By.CSS_SELECTOR, "#chart-lift circle.lift")) >= 1
        errors = [entry for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "ERROR")]
        assert errors == []
    finally:
        driver.quit()
