"""`lifeline ui` in a real browser: materialise the demo through Dagster into a project-local
instance, start the webserver, open the global asset lineage in headless Chromium (Debian's
chromium + chromedriver), assert the groups read raw -> ... -> syncs from left to right, and
save a screenshot."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from orchestration.load import load

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
MINI = ROOT / "tests" / "fixtures" / "mini"
LINEAGE_ORDER = ["raw", "staging", "identity", "profiles", "audiences", "syncs"]


def chromium_paths() -> tuple[str, str]:
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (browser and driver):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("chromium and chromedriver are required in CI (.ci/run installs them)")
        pytest.skip("Debian's chromium and chromium-driver are not installed")
    return browser, driver


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ui_env(duck_warehouse, tmp_path):
    load(duck_warehouse, MINI, replace=True)
    home = tmp_path / ".lifeline"
    env = dict(os.environ, LIFELINE_DUCKDB_PATH=str(duck_warehouse.duckdb_path), LIFELINE_HOME=str(home),
               LIFELINE_WAREHOUSE="duckdb", DAGSTER_HOME=str(home / "dagster"))
    (home / "dagster").mkdir(parents=True)
    (home / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return env


def materialise_through_dagster(env: dict, sandbox_url: str) -> None:
    script = (
        "import dagster as dg\n"
        "from orchestration.definitions import defs\n"
        "job = defs.resolve_job_def('lifeline_everything')\n"
        "result = job.execute_in_process(instance=dg.DagsterInstance.get(), tags={'lifeline/as_of': '2026-11-01T00:00:00'}, partition_key='2026-11-01')\n"
        "assert result.success\n"
    )
    run_env = dict(env, KLAVIYO_API_KEY=os.environ.get("LIFELINE_SANDBOX_TOKEN", "sandbox-token"),
                   LIFELINE_KLAVIYO_BASE_URL=f"{sandbox_url}/klaviyo")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=run_env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def test_asset_lineage_in_the_browser(ui_env, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    from syncs.sandbox.server import run_in_thread

    browser, driver_path = chromium_paths()
    with run_in_thread(tmp_path / "sandbox", port=0) as sandbox:
        materialise_through_dagster(ui_env, sandbox.base_url)

    port = free_port()
    ui = subprocess.Popen([str(Path(sys.executable).parent / "lifeline"), "ui", "--port", str(port)], cwd=tmp_path,
                          env=ui_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    driver = None
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/server_info", timeout=2).ok:
                    break
            except requests.ConnectionError:
                time.sleep(1)
        else:
            pytest.fail("the Dagster UI did not start within 120 s")

        options = webdriver.ChromeOptions()
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--no-first-run", "--disable-sync", "--window-size=1800,1000",
                    f"--user-data-dir={tmp_path / 'chromium-profile'}"):
            options.add_argument(arg)
        options.binary_location = browser
        driver = webdriver.Chrome(service=Service(driver_path), options=options)
        driver.get(f"http://127.0.0.1:{port}/asset-groups")
        deadline = time.time() + 60
        positions: dict[str, float] = {}
        while time.time() < deadline and len(positions) < len(LINEAGE_ORDER):
            time.sleep(2)
            for skip in driver.find_elements(By.XPATH, "//button[normalize-space()='Skip']"):
                skip.click()
            for group in LINEAGE_ORDER:
                nodes = [e for e in driver.find_elements(By.XPATH, f"//*[normalize-space(text())='{group}']")
                         if e.is_displayed() and e.location["x"] > 500]  # graph canvas, not the sidebar
                if nodes:
                    positions[group] = nodes[0].location["x"]
        driver.save_screenshot(str(tmp_path / "asset_lineage.png"))
        shutil.copy(tmp_path / "asset_lineage.png", ROOT / "tests" / "e2e" / "asset_lineage.png")
        assert set(positions) == set(LINEAGE_ORDER), f"groups seen in the graph: {positions}"
        xs = [positions[g] for g in LINEAGE_ORDER]
        assert xs == sorted(xs), f"lineage does not read raw -> destinations: {positions}"
        # The run materialised through Dagster is visible in the UI.
        driver.get(f"http://127.0.0.1:{port}/runs")
        deadline = time.time() + 30
        while "lifeline_everything" not in driver.find_element(By.TAG_NAME, "body").text and time.time() < deadline:
            time.sleep(0.5)
        assert "lifeline_everything" in driver.find_element(By.TAG_NAME, "body").text
    finally:
        if driver is not None:
            driver.quit()
        os.killpg(ui.pid, 15)
        ui.wait(timeout=30)
