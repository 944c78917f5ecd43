"""Render times of the dashboard on the demo world, in a real browser (issue targets in brackets).

Starts ``streamlit run dashboard/app.py`` on 127.0.0.1 against the demo world (the cached
default model; ``gatlens train --dataset demo`` first if there is none), drives Debian's
Chromium with Playwright, and prints:

* warm renders: moving between pages with the sidebar, and reloading each page's deep link
  (a new Streamlit session), after a first visit; medians of ``--repeat`` [<= 1.5 s];
* "Why this item?" cold: users whose explanation was never computed, in a browser that has
  visited the app before [<= 3 s]; and once in a fresh browser profile (no HTTP cache), for
  reference.

A render is timed from navigation until the page's marker is visible and Streamlit's script
run has finished (no spinner). Needs ``/usr/bin/chromium`` and the ``playwright`` package
(never ``playwright install``).

Usage::

    .venv/bin/python scripts/bench_dashboard.py [--repeat 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from dashboard.settings import APP_PATH, CHROMIUM_ARGS
from engine.commands.dashboard import streamlit_command

ROOT = Path(__file__).resolve().parents[1]
PAGES = {  # name -> (deep link, a selector that only the rendered page has, sidebar link text)
    "overview": ("", "text=Dataset ·", "Overview"),
    "recommendations": ("recommendations?user=u0042", ".gl-card", "Recommendations"),
    "why": ("why?user=u0042", ".gl-subject", "Why this item?"),
    "fairness": ("fairness", ".gl-tiles", "Fairness & diversity"),
    "compare": ("compare?user=u0042", ".gl-list", "Compare models"),
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(port: int, log: Path) -> subprocess.Popen:
    cmd = streamlit_command(APP_PATH, "127.0.0.1", port)  # what `gatlens dashboard` runs
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=os.environ.copy(), stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                if r.read() == b"ok":
                    return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit(f"streamlit did not start; see {log}")


def _render(page, url: str, marker: str, *, canvas: bool = False, link: str | None = None) -> float:
    """Seconds to render: a full load of ``url``, or a click on the sidebar ``link`` when given."""
    t0 = time.perf_counter()
    if link is None:
        page.goto(url)
    else:
        page.locator('[data-testid="stSidebarNav"]').get_by_text(link, exact=True).click()
    page.wait_for_selector(marker, timeout=120_000)
    if canvas:
        page.frame_locator("iframe").first.locator("#mynetwork canvas").wait_for(state="visible", timeout=120_000)
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=120_000)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stSpinner\"]')", timeout=120_000)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=3, help="warm renders per page (default: 3)")
    p.add_argument("--chromium", default="/usr/bin/chromium", help="Chromium binary (default: /usr/bin/chromium)")
    p.add_argument("--json", default=None, help="also write the figures here")
    args = p.parse_args(argv)
    from playwright.sync_api import sync_playwright

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _start(port, Path("/tmp") / f"gatlens-bench-dashboard-{port}.log")
    out: dict = {"load_average": [round(x, 2) for x in os.getloadavg()], "first_visit": {}, "warm_reload": {}}
    out["warm_nav"] = {}
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, args=list(CHROMIUM_ARGS))
            fresh = browser.new_context(viewport={"width": 1366, "height": 768}).new_page()
            first = _render(fresh, f"{base}/why?user=u0301", ".gl-subject", canvas=True)
            out["why_cold_fresh_browser"] = round(first, 2)
            page = browser.new_context(viewport={"width": 1366, "height": 768}).new_page()
            for name, (path, marker, _) in PAGES.items():
                out["first_visit"][name] = round(_render(page, f"{base}/{path}", marker, canvas=name == "why"), 2)
            # Warm, the usual way: moving between pages with the sidebar (one session, model cached).
            nav: dict[str, list[float]] = {name: [] for name in PAGES}
            _render(page, f"{base}/{PAGES['recommendations'][0]}", PAGES["recommendations"][1])
            for _ in range(args.repeat):
                for name in ("why", "fairness", "compare", "overview", "recommendations"):
                    _, marker, link = PAGES[name]
                    nav[name].append(_render(page, "", marker, canvas=name == "why", link=link))
            out["warm_nav"] = {name: round(statistics.median(t), 2) for name, t in nav.items()}
            # Warm, by reloading a deep link (a new Streamlit session; model and explanations cached).
            for name, (path, marker, _) in PAGES.items():
                times = [_render(page, f"{base}/{path}", marker, canvas=name == "why") for _ in range(args.repeat)]
                out["warm_reload"][name] = round(statistics.median(times), 2)
            cold = [
                _render(page, f"{base}/why?user={u}", ".gl-subject", canvas=True) for u in ("u0302", "u0303", "u0304")
            ]
            out["why_cold"] = [round(t, 2) for t in cold]
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    out["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
