"""The app in a real browser: `medsynth app` started on 127.0.0.1 over a tiny results folder, Debian's chromium driven
through chromium-driver (Selenium), one prompt generated through the Generate page, the image present, a screenshot
saved. Chromium is apt-get installed by the test where it is missing and apt is available (root); the test is skipped,
with the reason, only where no browser can be installed. MEDSYNTH_APP_SCREENSHOT=path keeps the screenshot."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from _app_fixtures import make_results

PACKAGES = ("chromium", "chromium-driver")
PROMPT = "Small left pleural effusion."


def _browser() -> tuple[str | None, str | None]:
    from medsynth.report.screenshot import find_browser
    return find_browser(), shutil.which("chromedriver")


def _install_or_skip() -> tuple[str, str]:
    browser, driver = _browser()
    if browser and driver:
        return browser, driver
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        pytest.skip("no chromium + chromedriver, and no apt-get as root to install them "
                    f"(apt-get install {' '.join(PACKAGES)})")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "-o", "DPkg::Lock::Timeout=300", "update", "-qq"],
                ["apt-get", "-o", "DPkg::Lock::Timeout=300", "install", "-y", "-qq", "--no-install-recommends",
                 *PACKAGES]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            pytest.skip(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()[-300:]}")
    browser, driver = _browser()
    if not (browser and driver):
        pytest.skip(f"apt-get installed {' '.join(PACKAGES)} but no chromium / chromedriver is on PATH")
    return browser, driver


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def app_server(tmp_path):
    """`medsynth app` (the CLI) on a free port of 127.0.0.1; yields its URL, stops it afterwards."""
    results = make_results(tmp_path / "results")
    port = _free_port()
    log = open(tmp_path / "app.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "medsynth.cli", "app", "--results", str(results), "--port",
                             str(port), "--configfile"], stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise AssertionError(f"the app did not start: {(tmp_path / 'app.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_generate_in_a_real_browser(app_server, tmp_path):
    browser, driver_path = _install_or_skip()
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install '.[dev]')")
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--window-size=1280,1000"):
        options.add_argument(flag)
    chrome = webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver_path), options=options)
    try:
        chrome.get(app_server)
        wait = WebDriverWait(chrome, 60)
        prompt = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "textarea[aria-label='Report / prompt']")))
        prompt.send_keys(PROMPT)
        retry = WebDriverWait(chrome, 30, ignored_exceptions=[StaleElementReferenceException])
        # 50 -> 8 steps; Enter commits the number input (retried if a rerun replaced the element meanwhile)
        retry.until(lambda d: d.find_element(By.CSS_SELECTOR, "input[aria-label='Steps']").send_keys("\b\b8\n")
                    or True)
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "input[aria-label='Steps']").get_attribute("value") == "8")
        retry.until(lambda d: next(b for b in d.find_elements(By.TAG_NAME, "button")
                                   if b.text.strip() == "Generate").click() or True)
        # query the DOM afresh on each poll: Streamlit re-renders elements while the script reruns
        width = wait.until(lambda d: d.execute_script(
            "const img = document.querySelector(\"[data-testid='stMain'] [data-testid='stImage'] img\");"
            "return img && img.complete && img.naturalWidth ? img.naturalWidth : null;"))
        assert width == 32  # the tiny model's 32x32 image, decoded by the browser
        # the settings block follows the image in the same rerun: Streamlit may paint the image first
        settings = wait.until(lambda d: next((e.text for e in d.find_elements(
            By.CSS_SELECTOR, "[data-testid='stMain'] [data-testid='stCode']") if '"prompt"' in e.text), None))
        assert f'"prompt": "{PROMPT}"' in settings and '"steps": 8' in settings
        assert any(b.text.strip() == "Download PNG" for b in chrome.find_elements(By.TAG_NAME, "button"))
        chrome.execute_script("document.querySelector(\"[data-testid='stMain'] [data-testid='stImage'] img\")"
                              ".scrollIntoView({block: 'center'})")
        shot = Path(os.environ.get("MEDSYNTH_APP_SCREENSHOT") or tmp_path / "app_generate.png")
        shot.parent.mkdir(parents=True, exist_ok=True)
        assert chrome.save_screenshot(str(shot))
        from PIL import Image
        with Image.open(shot) as png:
            grey = np.asarray(png.convert("L"))
            assert png.size[0] >= 1000 and len(np.unique(grey)) > 10  # a rendered page, not a blank one
        # every page answers at its own URL and renders without an exception in a real browser
        for name in ("enhance", "explore", "compare", "counterfactual"):
            chrome.get(f"{app_server}/{name}")
            heading = wait.until(lambda d: d.execute_script(
                "const h = document.querySelector(\"[data-testid='stMain'] h1\"); return h && h.innerText.trim();"))
            assert heading == name.capitalize(), heading
            assert not chrome.find_elements(By.CSS_SELECTOR, "[data-testid='stException']"), name
    finally:
        chrome.quit()
