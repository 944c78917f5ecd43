"""The real app in a real browser: Playwright drives Debian's Chromium against ``streamlit run``.

Visits every page of the app on the tiny trained world, asserts the key content rendered
(the pyvis canvas included), that a hostile item title shows as text and runs nothing,
that downloads work, measures render times (printed; run with ``-s`` to see them), and
saves screenshots to the gitignored ``screenshots/`` folder.

Needs ``/usr/bin/chromium`` (``apt-get install chromium``) and ``pip install playwright``;
never ``playwright install`` (it downloads a browser). Skipped with a reason otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from dashboard_support import APP, XSS_TITLE, app_recommender
from server_support import free_port, running_server

from dashboard.components.why_focus import focused_frames
from dashboard.settings import CHROMIUM_ARGS
from engine.cli import build_parser
from engine.commands.common import config_from_args
from engine.commands.dashboard import streamlit_command

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "screenshots"
CHROMIUM = os.environ.get("GATLENS_CHROMIUM", "/usr/bin/chromium")
VIEWPORT = {"width": 1366, "height": 768}
WARM_BUDGET_S = 1.5
WHY_COLD_BUDGET_S = 3.0
TIMINGS: dict[str, float] = {}


def _requirements() -> None:
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright; never `playwright install`)")


@pytest.fixture(scope="module")
def server(tiny_world, tmp_path_factory) -> Iterator[str]:
    _requirements()
    port = free_port()
    log = tmp_path_factory.mktemp("streamlit") / "server.log"
    env = {**os.environ, **tiny_world.env, "GATLENS_LIST_REASONS": "1"}
    cmd = streamlit_command(APP, "127.0.0.1", port)  # what `gatlens dashboard` runs
    with running_server(cmd, port=port, cwd=ROOT, env=env, log=log) as (url, _):
        try:
            yield url
        finally:
            if TIMINGS:
                print("\nrender times (s): " + ", ".join(f"{k} {v:.2f}" for k, v in TIMINGS.items()))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _requirements()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
        yield b
        b.close()


@pytest.fixture
def page(browser) -> Iterator[Any]:
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    pg = context.new_page()
    pg.dialogs = []  # every alert/confirm/prompt from any frame lands here
    pg.on("dialog", lambda d: (pg.dialogs.append(d.message), d.dismiss()))
    yield pg
    context.close()


def _settled(pg: Any, timeout_s: float = 90) -> None:
    """Wait until Streamlit finished the script run triggered by the last navigation."""
    pg.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=timeout_s * 1000)
    pg.wait_for_function("() => !document.querySelector('[data-testid=\"stSpinner\"]')", timeout=timeout_s * 1000)


def _visit(pg: Any, url: str, ready: str, name: str, *, budget: float | None = None) -> float:
    """Open ``url`` and wait for ``ready`` (a selector) with the run finished; record the time."""
    t0 = time.perf_counter()
    pg.goto(url)
    pg.wait_for_selector(ready, timeout=120_000)
    _settled(pg)
    seconds = time.perf_counter() - t0
    TIMINGS[name] = seconds
    if budget is not None and seconds > budget:
        print(f"\nNOTE: {name} took {seconds:.2f}s (budget {budget:.1f}s)")
    return seconds


def _graph_frame(pg: Any) -> Any:
    """The pyvis iframe's frame (for evaluating vis-network state)."""
    return pg.locator("iframe").first.element_handle().content_frame()


def _shot(pg: Any, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    pg.screenshot(path=str(SHOTS / f"{name}.png"))


def test_every_page_renders_its_key_content(server, page, tiny_world) -> None:
    rec = app_recommender(tiny_world)
    user = rec.user_ids[2]
    first = rec.recommend(user, 10).items.iloc[0]
    base = f"model={tiny_world.gat_key}"

    _visit(page, f"{server}/?{base}", "text=Dataset · tiny-demo", "overview cold")
    page.locator(".js-plotly-plot").nth(2).wait_for(timeout=30_000)  # long tail, curve, metrics
    _shot(page, "overview")

    _visit(page, f"{server}/recommendations?{base}&user={user}", ".gl-card", "recommendations cold")
    assert page.locator(".gl-card").count() == 10
    assert page.locator(".gl-card .gl-title").first.inner_text().strip() == first["title"]
    assert page.locator(".gl-reason").count() == 1  # GATLENS_LIST_REASONS=1
    _shot(page, "recommendations")

    _visit(page, f"{server}/why?{base}&user={user}&item={first['item_id']}", "iframe", "why (list-warmed)")
    frame = page.frame_locator("iframe").first
    frame.locator("#mynetwork canvas").wait_for(state="visible", timeout=60_000)
    n_nodes = _graph_frame(page).evaluate("() => nodes.length")
    exp = rec.explain(user, str(first["item_id"]), k=10)
    focused, _ = focused_frames(exp)  # the default view: the user, <= 15 past items, the item, co-consumers
    assert n_nodes == len(focused) <= 2 + 15 + 5
    _shot(page, "why")

    _visit(page, f"{server}/fairness?{base}", ".gl-tiles", "fairness cold")
    assert page.locator(".gl-tile-label", has_text="exposure Gini").count() == 1
    page.locator(".js-plotly-plot").first.wait_for(timeout=30_000)
    _shot(page, "fairness")

    _visit(page, f"{server}/compare?{base}&user={user}", ".gl-list", "compare cold")
    assert page.locator(".gl-list").count() == 2
    _shot(page, "compare")
    assert page.dialogs == []


def test_every_page_is_reachable_by_sidebar_and_deep_link(server, page, tiny_world) -> None:
    rec = app_recommender(tiny_world)
    user = rec.user_ids[2]
    item = str(rec.recommend(user, 10).items["item_id"].iloc[0])
    base = f"model={tiny_world.gat_key}"
    # url, marker that only this page shows, sidebar link text
    pages = {
        "overview": (f"{server}/?{base}", "text=Guided tour", "Overview"),
        "recommendations": (f"{server}/recommendations?{base}&user={user}", ".gl-reason", "Recommendations"),
        "why": (f"{server}/why?{base}&user={user}&item={item}", "iframe", "Why this item?"),
        "fairness": (f"{server}/fairness?{base}", "text=Re-ranker to study", "Fairness & diversity"),
        "compare": (f"{server}/compare?{base}&user={user}", "text=Compare with", "Compare models"),
    }
    for name, (url, ready, _) in pages.items():
        _visit(page, url, ready, f"{name} warm-up")
    slow = {}
    # 1. In-app navigation (the usual way to move between pages): click the sidebar link.
    # Start on the user's list (a deep link sets the session's user), then move by the sidebar.
    page.goto(pages["recommendations"][0])
    _settled(page)
    for name in ("why", "fairness", "compare", "overview", "recommendations"):
        _, ready, link = pages[name]
        t0 = time.perf_counter()
        page.locator('[data-testid="stSidebarNav"]').get_by_text(link, exact=True).click()
        page.wait_for_selector(ready, timeout=60_000)
        _settled(page)
        TIMINGS[f"{name} warm (nav)"] = seconds = time.perf_counter() - t0
        if seconds > WARM_BUDGET_S:
            slow[f"{name} (nav)"] = round(seconds, 2)
    # 2. A full reload of a deep link (new session; the model and explanations are cached).
    for name, (url, ready, _) in pages.items():
        seconds = _visit(page, url, ready, f"{name} warm (reload)", budget=WARM_BUDGET_S)
        if seconds > WARM_BUDGET_S:
            slow[f"{name} (reload)"] = round(seconds, 2)
    # Render times are measured and printed (run with -s), never asserted: the project's rule is that
    # speed targets are reported figures, not timed tests. What is asserted is that every page
    # rendered its own marker, both by sidebar navigation and by a fresh deep link.
    if slow:
        print(f"\nNOTE: over the {WARM_BUDGET_S}s warm budget: {slow}")
    assert set(TIMINGS) >= {f"{name} warm (nav)" for name in pages} | {f"{name} warm (reload)" for name in pages}


def test_why_cold_and_the_canvas(server, page, tiny_world) -> None:
    rec = app_recommender(tiny_world)
    user = rec.user_ids[20]
    item = str(rec.recommend(user, 10).items["item_id"].iloc[1])  # never explained before
    t0 = time.perf_counter()
    page.goto(f"{server}/why?model={tiny_world.gat_key}&user={user}&item={item}")
    page.frame_locator("iframe").first.locator("#mynetwork canvas").wait_for(state="visible", timeout=120_000)
    _settled(page)
    # A fresh browser profile: every static asset (Streamlit's and plotly's JS) is downloaded and
    # compiled too; the server's part (script run, explanation included) is ~0.2 s of it.
    TIMINGS["why cold (fresh browser)"] = time.perf_counter() - t0
    assert _graph_frame(page).evaluate("() => nodes.length") >= 2
    assert page.locator(".gl-tile").count() >= 3  # rank, against the K-th item, what it rests on
    legend = _graph_frame(page).locator(".gl-legend").inner_text()
    assert all(word in legend for word in ("the user", "their past items", "recommended item", "other users"))
    # The focused layout is fixed: nothing moves after the first drawing.
    assert _graph_frame(page).evaluate("() => network.physics.physicsEnabled") is False
    # The product's case: a user of the dashboard opens "why?" for a pair nobody explained yet.
    other = rec.user_ids[21]
    item = str(rec.recommend(other, 10).items["item_id"].iloc[2])
    t0 = time.perf_counter()
    page.goto(f"{server}/why?model={tiny_world.gat_key}&user={other}&item={item}")
    page.frame_locator("iframe").first.locator("#mynetwork canvas").wait_for(state="visible", timeout=120_000)
    _settled(page)
    TIMINGS["why cold"] = time.perf_counter() - t0
    if TIMINGS["why cold"] > WHY_COLD_BUDGET_S:
        print(f"\nNOTE: why cold took {TIMINGS['why cold']:.2f}s (budget {WHY_COLD_BUDGET_S}s)")
    assert page.locator(".gl-subject").first.inner_text() == rec.items.set_index("item_id").loc[item, "title"]


def test_hostile_title_is_text_and_runs_nothing(server, page, tiny_world) -> None:
    rec = app_recommender(tiny_world)
    user = next(u for u in rec.user_ids if tiny_world.xss_item in set(rec.recommend(u, 10).items["item_id"]))
    page.add_init_script("window.__xss = undefined;")
    _visit(page, f"{server}/recommendations?model={tiny_world.gat_key}&user={user}", ".gl-card", "xss list")
    card = page.locator(f'.gl-card[data-item="{tiny_world.xss_item}"] .gl-title')
    assert card.inner_text().strip() == XSS_TITLE  # the literal text is visible
    assert page.locator("img[src='x']").count() == 0
    _visit(page, f"{server}/why?model={tiny_world.gat_key}&user={user}&item={tiny_world.xss_item}", "iframe", "xss why")
    page.frame_locator("iframe").first.locator("#mynetwork canvas").wait_for(state="visible", timeout=60_000)
    assert page.locator(".gl-subject").first.inner_text() == XSS_TITLE
    graph = _graph_frame(page)
    graph.wait_for_function("() => typeof network !== 'undefined'")
    node = "item"  # the focused graph's recommended item
    # The tooltip was built from the escaped title: an element whose text is the literal title.
    tip = graph.evaluate(
        "(id) => { const t = nodes.get(id).title; return [t.tagName, t.innerText, "
        "t.querySelectorAll('img,script').length]; }",
        node,
    )
    assert tip[0] == "DIV" and tip[1].startswith(XSS_TITLE) and tip[2] == 0
    assert graph.locator("img[src='x']").count() == 0
    for frame in page.frames:
        assert frame.evaluate("() => window.__xss") is None
    assert page.dialogs == []


def test_downloads_and_dark_mode(server, browser, tiny_world) -> None:
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True, color_scheme="dark")
    pg = context.new_page()
    try:
        _visit(pg, f"{server}/fairness?model={tiny_world.gat_key}", ".gl-tiles", "fairness (dark)")
        with pg.expect_download() as info:
            pg.get_by_text("Download group table (CSV)").click()
        csv = Path(info.value.path()).read_text()
        assert csv.splitlines()[0] == "feature,group,metric,value,ci_low,ci_high,size,too_small"
        with pg.expect_download(timeout=120_000) as info:
            pg.get_by_text("Download full report (HTML)").click()
        report = Path(info.value.path()).read_text()
        assert report.startswith("<!doctype html>") and "* plotly.js v" in report
        background = pg.evaluate(
            "() => getComputedStyle(document.querySelector('[data-testid=\"stApp\"]')).backgroundColor"
        )
        assert background == "rgb(17, 19, 32)"  # the dark theme of .streamlit/config.toml
        _shot(pg, "fairness-dark")
    finally:
        context.close()


# Deep links whose values are Markdown: a link, an image (fetched by the browser if rendered) and a
# bare URL (GitHub-flavoured Markdown links those by itself). Each lands in a warning on its page.
HOSTILE_LINKS = [
    ("recommendations", "user", "[CLICK HERE TO LOG IN](http://evil)", "There is no user"),
    ("", "k", "![x](http://evil/p.png)", "is not a number"),
    ("why", "item", "![x](http://evil.example/i.png) http://evil.example/go", "There is no item"),
    ("", "model", "[model](http://evil/m) www.evil.example", "from the link is not in the cache"),
    ("", "dataset", "<img src=http://evil/d.png> me@evil.example", "No trained model for the dataset"),
    ("", "page", "![p](http://evil/p.png)", "unknown page"),
]


def test_hostile_url_values_show_as_text_and_fetch_nothing(server, page) -> None:
    hosts: list[str] = []
    page.on("request", lambda request: hosts.append(urlsplit(request.url).hostname or request.url))
    for path, key, value, marker in HOSTILE_LINKS:
        _visit(page, f"{server}/{path}?{urlencode({key: value})}", f"text={marker}", f"hostile {key}")
        alert = page.locator('[data-testid="stAlert"]', has_text=marker).first
        # The literal value is on screen (the word joiners that stop autolinks are invisible).
        assert value in alert.inner_text().replace("\u2060", "")
        anchors = page.evaluate("() => [...document.querySelectorAll('a[href]')].map(a => a.href)")
        images = page.evaluate("() => [...document.querySelectorAll('img')].map(i => i.src)")
        assert [a for a in anchors if "evil" in a] == [], (key, anchors)
        assert [i for i in images if "evil" in i] == [], (key, images)
        assert alert.locator("a, img").count() == 0
    assert hosts and set(hosts) == {"127.0.0.1"}  # nothing left this machine (no image, no link prefetch)
    assert page.dialogs == []


# ----------------------------------------------------------------------------- `gatlens dashboard` on an empty cache
# The real command on the tiny world's csv folder with an empty cache. While the test holds the model's
# writers' lock (as a concurrent `gatlens train` would), the background job trains and then waits to store
# the model, so the progress page stays on screen as long as the test needs; once the lock is released the
# job stores the model and the page turns into the dashboard by itself.
START_BOUND_S = 180  # generous: a loaded 2-core machine imports torch in ~15 s


def _argv(tiny_world, cache: Path, port: int) -> list[str]:
    return [
        "dashboard",
        "--dataset",
        "csv",
        "--data-dir",
        str(tiny_world.data_dir),
        "--cache-dir",
        str(cache),
        "--no-text",
        "--epochs",
        "3",
        "--port",
        str(port),
    ]


def _store_lock(argv: list[str], cache: Path):
    """The writers' lock of the model ``argv`` trains (what a concurrent writer would hold)."""
    from engine.artifacts.store import ArtifactStore
    from engine.assembly import config_fingerprint, prepare

    prep = prepare(config_from_args(build_parser().parse_args(argv)), cache_dir=cache)
    store = ArtifactStore(cache / "models", lock_timeout=START_BOUND_S)
    return store.writing(prep.dataset.name, config_fingerprint(prep))


def _job_status(cache: Path) -> dict:
    files = list((cache / "jobs").glob("*-gat-*.json"))
    files = [f for f in files if not f.name.endswith(".config.json")]
    return json.loads(files[0].read_text(encoding="utf-8")) if files else {}


def _wait(predicate, what: str, log: Path, timeout: float = START_BOUND_S) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout}s; server log: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.5)


def test_empty_cache_shows_progress_then_the_dashboard(browser, tiny_world, tmp_path) -> None:
    cache, port, log = tmp_path / "cache", free_port(), tmp_path / "server.log"
    argv = _argv(tiny_world, cache, port)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATLENS_", "STREAMLIT_"))}
    env["OMP_NUM_THREADS"] = "1"
    lock = _store_lock(argv, cache)
    lock.__enter__()
    try:
        cmd = [sys.executable, "-m", "engine", *argv]
        context = browser.new_context(viewport=VIEWPORT)
        with running_server(cmd, port=port, cwd=ROOT, env=env, log=log, timeout_s=START_BOUND_S) as (url, _):
            page = context.new_page()
            page.goto(f"{url}/recommendations")
            page.wait_for_selector("text=Preparing the dashboard", timeout=START_BOUND_S * 1000)
            page.wait_for_selector('[data-testid="stProgress"]', timeout=60_000)
            # Trained, now waiting for the lock to store the model: the page says how the run ended.
            _wait(lambda: _job_status(cache).get("stage") == "saving", "training did not finish", log)
            page.wait_for_selector("text=ran all 3 epochs", timeout=60_000)
            assert "Evaluating on the test split and storing the model" in page.inner_text("body")
            _shot(page, "training-progress")
            lock.__exit__(None, None, None)
            lock = None
            _wait(lambda: _job_status(cache).get("state") == "done", "the job did not store the model", log)
            # The same page turns into the dashboard by itself (no reload), on the model just stored.
            page.wait_for_selector(".gl-card", timeout=START_BOUND_S * 1000)
            assert page.locator("text=Preparing the dashboard").count() == 0
            key = _job_status(cache)["model_key"]
            page.wait_for_function("(key) => window.location.href.includes(key)", arg=key, timeout=60_000)
            _shot(page, "started-dashboard")
        context.close()
    finally:
        if lock is not None:
            lock.__exit__(None, None, None)
    assert list((cache / "models" / "tiny-demo").glob("*/v1/manifest.json"))
