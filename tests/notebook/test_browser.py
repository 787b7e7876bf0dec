"""A real front end: JupyterLab on loopback, driven by headless Chromium (Debian's, via selenium).

Opens notebooks/03_prompt_lab.ipynb, runs it, clicks Generate and waits for the image to appear
in the widget. A screenshot is kept in test-artifacts/ as evidence.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = ROOT / "test-artifacts"

pytestmark = pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
    reason="Debian's chromium and chromium-driver are not installed (make test installs them when run as root)",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def jupyterlab(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(ROOT / "notebooks" / "03_prompt_lab.ipynb", work)
    settings = tmp_path / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false", "checkForUpdates": false}')
    port = _free_port()
    token = "browsertest"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
    }
    log = open(tmp_path / "jupyterlab.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--allow-root",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--IdentityProvider.token={token}",
            "--expose-app-in-browser",
            f"--ServerApp.root_dir={work}",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError((tmp_path / "jupyterlab.log").read_text()[-3000:]) from None
                time.sleep(0.5)
        yield f"{url}/lab/tree/03_prompt_lab.ipynb?token={token}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
        f"--user-data-dir={tmp_path / 'chromium'}",
        "--window-size=1400,1000",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_prompt_lab_generates_an_image_in_jupyterlab(jupyterlab, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    ARTIFACTS.mkdir(exist_ok=True)
    wait = WebDriverWait(browser, 120, poll_frequency=0.5)
    browser.get(jupyterlab)
    wait.until(
        lambda d: d.execute_script(
            "return !!(window.jupyterapp && document.querySelector('.jp-NotebookPanel .jp-Cell'))"
        )
    )
    # wait until the kernel is idle, then run every cell
    wait.until(
        lambda d: d.execute_script(
            "const w = window.jupyterapp.shell.currentWidget;"
            "return !!(w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel"
            " && w.sessionContext.session.kernel.status === 'idle');"
        )
    )
    browser.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    button = wait.until(
        ec.element_to_be_clickable(
            (By.XPATH, "//button[contains(@class, 'widget-button') and contains(., 'Generate')]")
        )
    )
    # the notebook's own scripted run must have finished before we click (its output shows the code)
    wait.until(lambda d: "backend.generate(params)" in d.find_element(By.CSS_SELECTOR, ".jp-NotebookPanel").text)
    # ... and every cell after it: while the kernel is busy the front end holds typed text back, and a click
    # sent meanwhile would reach the kernel before the prompt it goes with
    wait.until(
        lambda d: d.execute_script(
            "const w = window.jupyterapp.shell.currentWidget;"
            "const busy = [...document.querySelectorAll('.jp-InputPrompt')].some(p => p.textContent.includes('*'));"
            "return !busy && w.sessionContext.session.kernel.status === 'idle';"
        )
    )
    images = browser.find_elements(By.CSS_SELECTOR, ".widget-image")
    before = [img.get_attribute("src") for img in images]
    browser.find_element(By.XPATH, "//textarea[ancestor::*[contains(@class,'widget-textarea')]]").clear()
    browser.find_element(By.XPATH, "//textarea[ancestor::*[contains(@class,'widget-textarea')]]").send_keys(
        "a yellow triangle on a green background"
    )
    button.click()

    def new_image_loaded(d):
        for img in d.find_elements(By.CSS_SELECTOR, ".widget-image"):
            src = img.get_attribute("src") or ""
            if (
                src
                and src not in before
                and d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", img)
            ):
                return img
        return False

    image = wait.until(new_image_loaded)
    status = browser.find_element(By.XPATH, "//*[contains(@class,'widget-html')][contains(., 'seed')]").text
    browser.execute_script("arguments[0].scrollIntoView()", image)
    browser.save_screenshot(str(ARTIFACTS / "prompt_lab.png"))
    assert browser.execute_script("return arguments[0].naturalWidth", image) == 64
    assert "seed" in status
