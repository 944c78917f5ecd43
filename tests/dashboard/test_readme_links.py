"""The README's showcase links (``http://127.0.0.1:8501/...``) open real views of the demo world.

Every link's keys are ones the app reads, its user and item exist in the demo world at the default
seed, the item is one the user has never interacted with (not "seen"), and its list controls
(categories, re-ranker) are valid. Whether the item is among the user's top-K needs the trained demo
model, which is too slow to train in a test: that part runs when ``make demo`` has stored the model
for this code version in ``data/cache`` (or ``$GATLENS_CACHE_DIR``), and is skipped otherwise.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

from dashboard import adapters, context, listview

ROOT = Path(__file__).resolve().parents[2]
LINK = re.compile(r"http://127\.0\.0\.1:8501/[^\s`)\]>\"']*")


def readme_links() -> list[str]:
    return LINK.findall((ROOT / "README.md").read_text(encoding="utf-8"))


def _query(link: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(link)
    return parts.path.strip("/"), dict(parse_qsl(parts.query))


@functools.lru_cache(maxsize=1)
def demo_world():
    from engine.assembly import load_data
    from engine.config import RunConfig

    return load_data(RunConfig())  # the demo world at the default seed and scale, as `make demo` loads it


def test_readme_has_showcase_links_with_a_user_and_an_item() -> None:
    links = readme_links()
    assert any({"user", "item"} <= set(_query(link)[1]) for link in links), links


@pytest.mark.parametrize("link", readme_links())
def test_readme_link_opens_a_real_view(link: str) -> None:
    page, query = _query(link)
    assert page in ("", *context.PAGES), f"{link}: unknown page {page!r}"
    assert set(query) <= {*context.URL_KEYS, "page"}, f"{link}: keys the app does not read"
    ds = demo_world()
    users = set(ds.interactions["user_id"].astype(str))
    items = set(ds.items["item_id"].astype(str))
    if "user" in query:
        assert query["user"] in users, f"{link}: no user {query['user']} in the demo world"
    if "item" in query:
        assert query["item"] in items, f"{link}: no item {query['item']} in the demo world"
    if {"user", "item"} <= set(query):
        history = ds.interactions.loc[ds.interactions["user_id"].astype(str) == query["user"], "item_id"]
        assert query["item"] not in set(history.astype(str)), f"{link}: the user has already seen that item"
    categories = {c for cs in ds.items["categories"] for c in cs}
    notices: list[str] = []
    view = listview.from_selection(query, categories, notices.append)
    assert not notices, f"{link}: {notices}"
    assert view.rerank in adapters.RERANKERS
    if "k" in query:
        assert 1 <= int(query["k"]) <= context.MAX_K


@pytest.mark.parametrize("link", [link for link in readme_links() if {"user", "item"} <= set(_query(link)[1])])
def test_readme_link_item_is_among_the_users_top_k(link: str) -> None:
    from engine import service

    cache = Path(os.environ.get("GATLENS_CACHE_DIR") or ROOT / "data" / "cache")
    if not (cache / "models" / "demo").is_dir():
        pytest.skip(f"no trained demo model in {cache} (make demo stores one; training it here is too slow)")
    rec = service.load_latest(service.RunConfig(), cache_dir=cache)  # never trains
    if rec is None:
        pytest.skip(f"the demo model in {cache} is not this code version's (make demo retrains it)")
    _, query = _query(link)
    k = int(query.get("k") or context.DEFAULT_K)
    names = {c for cs in rec.items["categories"] for c in cs}
    view = listview.from_selection(query, names, lambda text: pytest.fail(f"{link}: {text}"))
    items, _ = listview.top_list(rec, query["user"], k, view)
    assert query["item"] in set(items["item_id"].astype(str)), f"{link}: not in the user's top {k}"
