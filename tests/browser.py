"""Open a report in a real headless Chromium (Debian's /usr/bin/chromium via Playwright).

Collects what a report test needs: every request the page made, console errors, uncaught page
errors, JavaScript dialogs (alert/confirm/prompt: an injection that ran), images that did not
load, and a full-page screenshot. Playwright's own browser download is never used.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["CHROMIUM", "FLAGS", "PageReport", "browser_problem", "open_page"]

CHROMIUM = os.environ.get("GRADLAB_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
    "--disable-dev-shm-usage",
]


@dataclass
class PageReport:
    """What happened while the page loaded."""

    url: str
    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    broken_images: list[str] = field(default_factory=list)
    n_images: int = 0
    screenshot: Path | None = None
    title: str = ""
    body_text: str = ""
    probe: Any = None

    def foreign_requests(self) -> list[str]:
        """Requests other than the page itself and inline ``data:`` URIs."""
        return [u for u in self.requests if u != self.url and not u.startswith("data:")]


def browser_problem() -> str | None:
    """Why the browser test cannot run here, or None when it can."""
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        return f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing (pip install playwright; never " \
               "'playwright install': it drives /usr/bin/chromium)"
    return None


def open_page(html: Path, screenshot: Path, width: int = 1400, timeout_ms: int = 30000,
              probe: Callable[[Any], Any] | None = None) -> PageReport:
    """Load ``html`` from a file:// URL, wait for it to settle, and record everything.

    ``probe(page)``, if given, runs after loading (to click, evaluate, ...); its return value
    is kept in ``PageReport.probe``.
    """
    from playwright.sync_api import sync_playwright

    url = Path(html).resolve().as_uri()
    rep = PageReport(url=url)
    profile = tempfile.mkdtemp(prefix="gradlab-chromium-")
    try:
        with sync_playwright() as p:
            # a fresh profile directory (Playwright passes it as --user-data-dir)
            browser = p.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=FLAGS,
                viewport={"width": width, "height": 900})
            try:
                page = browser.new_page()
                page.on("request", lambda r: rep.requests.append(r.url))
                page.on("console", lambda m: rep.console_errors.append(m.text)
                        if m.type == "error" else None)
                page.on("pageerror", lambda e: rep.page_errors.append(str(e)))

                def on_dialog(d) -> None:
                    rep.dialogs.append(f"{d.type}: {d.message}")
                    d.dismiss()

                page.on("dialog", on_dialog)
                page.goto(url, wait_until="load", timeout=timeout_ms)
                page.wait_for_load_state("networkidle", timeout=timeout_ms)
                images = page.evaluate(
                    "() => Array.from(document.images).map(i => [i.currentSrc.slice(0, 60), "
                    "i.complete && i.naturalWidth > 0])")
                rep.n_images = len(images)
                rep.broken_images = [src for src, ok in images if not ok]
                rep.title = page.title()
                rep.body_text = page.inner_text("body")
                if probe is not None:
                    rep.probe = probe(page)
                page.screenshot(path=str(screenshot), full_page=True)
                rep.screenshot = Path(screenshot)
            finally:
                browser.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    return rep
