"""Open an HTML file in the system's headless Chromium (Selenium 4) and report what it shows.

The browser and its driver are Debian's ``chromium`` and ``chromium-driver``
(``make browser`` installs them); the driver's path is given explicitly, so
Selenium Manager never downloads anything. :func:`browser_missing` says why a
test must skip; :func:`render_in_browser` loads a page and returns its facts.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
INSTALL = "run `make browser` (Debian packages chromium, chromium-driver)"
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
)
LOAD_TIMEOUT_S = 30
NETWORK_SCHEMES = ("http", "https", "ws", "wss", "ftp")


def browser_missing() -> str | None:
    """Why the browser test cannot run here, or None when it can."""
    if not CHROMIUM.exists():
        return f"Chromium not installed ({CHROMIUM} missing): {INSTALL}"
    if not CHROMEDRIVER.exists():
        return f"ChromeDriver not installed ({CHROMEDRIVER} missing): {INSTALL}"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium not installed: pip install -e '.[test]'"
    return None


def render_in_browser(html_path: Path, screenshot: Path, width: int = 1280) -> dict[str, Any]:
    """Load ``html_path`` at ``width`` CSS pixels and save a full-page screenshot.

    Returns a dict: ``title``; ``images`` (count of <img>); ``broken`` (src heads of
    images not loaded: ``!img.complete || img.naturalWidth === 0``); ``errors``
    (SEVERE console messages, None when the driver cannot give them); ``requests``
    (network URLs fetched: http, https, ws, wss, ftp; None when unknown); ``height``
    (document height, px); ``h1`` and ``headings`` (visible text of h1 and h2);
    ``screenshot`` (its path).
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    profile = tempfile.mkdtemp(prefix="onepair-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},900"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = None
    try:
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        driver.set_page_load_timeout(LOAD_TIMEOUT_S)
        driver.get(Path(html_path).resolve().as_uri())
        WebDriverWait(driver, LOAD_TIMEOUT_S).until(
            lambda d: d.execute_script("return document.readyState") == "complete"
        )
        facts = driver.execute_script(
            """
            const imgs = Array.from(document.images);
            return {
              title: document.title,
              images: imgs.length,
              broken: imgs.filter(i => !i.complete || i.naturalWidth === 0)
                          .map(i => (i.getAttribute('src') || '').slice(0, 60)),
              height: Math.max(document.body.scrollHeight, document.documentElement.scrollHeight),
            };"""
        )
        facts["h1"] = [e.text for e in driver.find_elements("css selector", "h1")]
        facts["headings"] = [e.text for e in driver.find_elements("css selector", "h2")]
        facts["errors"] = _console_errors(driver)
        facts["requests"] = _external_requests(driver)
        _fit_window(driver, width, int(facts["height"]))
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        if not driver.save_screenshot(str(screenshot)):
            raise RuntimeError(f"Chromium could not write the screenshot {screenshot}")
        facts["screenshot"] = screenshot
        return facts
    finally:
        if driver is not None:
            driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _fit_window(driver: Any, width: int, height: int) -> None:
    """Size the window so that its viewport is ``width`` x ``height`` CSS pixels (the window
    is a little larger than its viewport, by an amount only the browser knows)."""
    driver.set_window_size(width, height)
    inner = driver.execute_script("return [window.innerWidth, window.innerHeight]")
    driver.set_window_size(2 * width - int(inner[0]), 2 * height - int(inner[1]))


def _console_errors(driver: Any) -> list[str] | None:
    try:
        entries = driver.get_log("browser")
    except Exception:  # a driver without the log endpoint: unknown, not "no errors"
        return None
    return [e.get("message", "") for e in entries if e.get("level") == "SEVERE"]


def _external_requests(driver: Any) -> list[str] | None:
    """URLs asked of the network (performance log: http, https, ws, wss, ftp); the
    browser's own chrome:// pages and the page's file: and data: URLs are not counted."""
    try:
        entries = driver.get_log("performance")
    except Exception:
        return None
    urls = []
    for entry in entries:
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            url = message["params"]["request"]["url"]
            if url.split(":", 1)[0].lower() in NETWORK_SCHEMES:
                urls.append(url)
    return urls
