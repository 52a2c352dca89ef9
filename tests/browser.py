"""Open HTML pages in headless Chromium, offline, and report what a reader would see go wrong.

The ``browser`` fixture starts one Chromium (Debian's ``chromium`` and ``chromium-driver`` packages, driven by
Selenium) per test session; ``check_page(browser, html_path, screenshot_path)`` loads a page from ``file://``
with every ``http``/``https``/``ws``/``wss`` request blocked (and host names unresolvable), waits for its images
to decode, saves a full-page screenshot and returns a ``PageCheck``: console errors, images that did not decode
to a non-zero size, the page's text and every request that left the machine's files (attempted, then blocked).

Where Chromium, its driver or Selenium is missing, the fixture skips with the command that installs it;
``.ci/run`` installs the Debian packages on a fresh machine and ``make test`` installs Selenium (dev extras).
"""

from __future__ import annotations

import base64
import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
INSTALL_HINT = "apt-get install chromium chromium-driver"

# Flags for a root user on a machine without a network or a display: no sandbox (root), no GPU, and none of the
# background services (updates, sync, safe browsing) that would otherwise try to reach the network on their own.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1024",
    # Belt and braces beside Network.setBlockedURLs: no host name resolves, so nothing could be fetched even if a
    # request slipped past the block list (the driver reaches Chromium by IP address, not by name).
    "--host-resolver-rules=MAP * ~NOTFOUND",
)
BLOCKED_URLS = ["http://*", "https://*", "ws://*", "wss://*", "ftp://*"]
# Schemes that stay on this machine: the page itself, inline data, blob URLs a script makes, and about:blank.
LOCAL_SCHEMES = {"file", "data", "blob", "about"}

# Force lazy images to load, then wait until every image has decoded or failed (decode() rejects on failure).
_WAIT_FOR_IMAGES = """
const done = arguments[arguments.length - 1];
const images = Array.from(document.images);
for (const img of images) img.loading = "eager";
Promise.all(images.map((img) => img.decode().catch(() => null))).then(() => done(null));
"""
_BROKEN_IMAGES = """
return Array.from(document.images)
  .filter((img) => !img.complete || img.naturalWidth === 0 || img.naturalHeight === 0)
  .map((img) => img.getAttribute("src") || "");
"""
SRC_PREFIX = 60  # characters of a broken image's src kept in PageCheck (a data: URI can be megabytes)


@dataclass
class PageCheck:
    """What Chromium saw when it opened one page.

    Attributes:
        console_errors: console messages at level SEVERE (``console.error``, uncaught exceptions, failed loads).
        broken_images: the first characters of the ``src`` of each ``<img>`` not complete or of zero natural size.
        image_count: how many ``<img>`` elements the page has.
        text: ``document.body.innerText``, the text a reader sees.
        network_requests: URLs of requests the page attempted outside ``file:``, ``data:``, ``blob:``, ``about:``
            (each was blocked; a self-contained page makes none).
        screenshot: where the full-page PNG screenshot was written.
    """

    console_errors: list[str] = field(default_factory=list)
    broken_images: list[str] = field(default_factory=list)
    image_count: int = 0
    text: str = ""
    network_requests: list[str] = field(default_factory=list)
    screenshot: Path | None = None

    def problems(self) -> list[str]:
        """One line per thing that went wrong: console errors, broken images, requests off the machine."""
        return (
            [f"console error: {message}" for message in self.console_errors]
            + [f"broken image: {src}" for src in self.broken_images]
            + [f"network request: {url}" for url in self.network_requests]
        )


def _missing() -> str | None:
    """Why the browser cannot be had here, or None when it can."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not Path(path).is_file():
            return f"{path} not found: install Debian's {package} (`{INSTALL_HINT}`; .ci/run does this)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium not importable: install the dev extras (`pip install -e '.[dev]'`; make test does this)"
    return None


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the test session, with http(s) blocked; skips naming the package if missing."""
    reason = _missing()
    if reason is not None:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="regopt-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM  # with the driver's path below, Selenium Manager (which downloads) never runs
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        driver.set_page_load_timeout(30)
        driver.set_script_timeout(15)
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": BLOCKED_URLS})
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _requests_off_machine(performance_log: list[dict[str, Any]]) -> list[str]:
    """URLs of Network.requestWillBeSent events whose scheme is not local, in order."""
    urls = []
    for entry in performance_log:
        message = json.loads(entry["message"])["message"]
        if message.get("method") != "Network.requestWillBeSent":
            continue
        url = message["params"]["request"]["url"]
        if urlsplit(url).scheme not in LOCAL_SCHEMES:
            urls.append(url)
    return urls


def check_page(browser: Any, html_path: str | Path, screenshot_path: str | Path) -> PageCheck:
    """Open ``html_path`` from ``file://`` offline, wait for its images, screenshot it, report what went wrong.

    Args:
        browser: the ``browser`` fixture's driver.
        html_path: the page to open.
        screenshot_path: where to write the full-page PNG screenshot (parent folders are created).

    Returns:
        A ``PageCheck``; ``check.problems()`` is empty for a clean, self-contained page.
    """
    html_path = Path(html_path).resolve()
    if not html_path.is_file():
        raise FileNotFoundError(f"no page to check at {html_path}")
    browser.get("about:blank")
    browser.get_log("browser")  # reading a log empties it: what the previous page left is dropped
    browser.get_log("performance")
    browser.get(html_path.as_uri())
    browser.execute_async_script(_WAIT_FOR_IMAGES)
    broken = [src[:SRC_PREFIX] for src in browser.execute_script(_BROKEN_IMAGES)]
    check = PageCheck(
        broken_images=broken,
        image_count=int(browser.execute_script("return document.images.length;")),
        text=str(browser.execute_script("return document.body ? document.body.innerText : '';")),
    )
    screenshot = Path(screenshot_path)
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    shot = browser.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    screenshot.write_bytes(base64.b64decode(shot["data"]))
    check.screenshot = screenshot
    check.console_errors = [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    check.network_requests = _requests_off_machine(browser.get_log("performance"))
    return check
