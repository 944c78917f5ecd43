"""Capture the README screenshots from a running dashboard (1366x768, light theme, PNG < 300 kB).

Usage (after ``gatlens dashboard --dataset demo`` has trained and started the demo app):

    python docs/screenshots/capture.py http://127.0.0.1:8501 --user u0083 --item i1702

Needs Debian's ``chromium`` and ``pip install playwright`` (never ``playwright install``).
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

from dashboard.settings import CHROMIUM_ARGS

OUT = Path(__file__).resolve().parent
MAX_BYTES = 300_000


def settle(page, ready: str) -> None:
    page.wait_for_selector(ready, timeout=600_000)
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=600_000)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stSpinner\"]')", timeout=600_000)
    page.wait_for_timeout(1500)  # plotly transitions, vis-network stabilisation


def save(page, name: str) -> None:
    png = page.screenshot()
    image = Image.open(io.BytesIO(png))
    data = png
    if len(data) > MAX_BYTES:  # UI screenshots quantise well: 256 colours keep text crisp
        buf = io.BytesIO()
        image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(buf, "PNG", optimize=True)
        data = buf.getvalue()
    (OUT / f"{name}.png").write_bytes(data)
    print(f"{name}.png {len(data) / 1000:.0f} kB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the running app, e.g. http://127.0.0.1:8501")
    parser.add_argument("--user", default="u0083")
    parser.add_argument("--item", default="i1702")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    shots = [
        ("overview", "/", "text=Guided tour"),
        ("recommendations", f"/recommendations?user={args.user}", ".gl-reason"),
        ("why", f"/why?user={args.user}&item={args.item}", "iframe"),
        ("fairness", "/fairness", "text=Re-ranker to study"),
        ("compare", f"/compare?user={args.user}", "text=Compare with"),
    ]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=list(CHROMIUM_ARGS))
        for scheme in ("light", "dark"):
            page = browser.new_context(viewport={"width": 1366, "height": 768}, color_scheme=scheme).new_page()
            for name, path, ready in shots if scheme == "light" else shots[2:3]:
                page.goto(args.url.rstrip("/") + path)
                settle(page, ready)
                if name == "why":
                    page.frame_locator("iframe").first.locator("#mynetwork canvas").wait_for(timeout=600_000)
                    page.wait_for_timeout(2500)
                save(page, name if scheme == "light" else f"{name}-dark")
        browser.close()


if __name__ == "__main__":
    main()
