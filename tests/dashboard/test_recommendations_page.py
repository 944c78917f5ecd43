"""Recommendations page under AppTest: the list equals the engine's, filters, presets, errors, escaping."""

from __future__ import annotations

import re

from dashboard_support import HISTORYLESS_USER, XSS_TITLE, app_recommender, html_of

from dashboard import adapters
from dashboard.components.html import esc
from dashboard.components.text import md


def _cards(at) -> list[tuple[str, str]]:
    """(item id, title html) of each recommendation card, in order."""
    page = html_of(at)
    pattern = r'data-item="([^"]+)">.*?<div class="gl-title">(?:<a [^>]*>)?(.*?)(?:</a>)?(?: <span|</div>)'
    return re.findall(pattern, page)


def _user_with_item(rec, item: str) -> str:
    for user in rec.user_ids:
        if item in set(rec.recommend(user, 10).items["item_id"]):
            return user
    raise AssertionError(f"no user gets {item}")


def test_list_is_the_engines_top_k(open_app, tiny_world) -> None:
    rec = tiny_world.gat
    user = rec.user_ids[3]
    at = open_app(page="recommendations", user=user, k=7)
    expected = rec.recommend(user, 7).items
    cards = _cards(at)
    assert [c[0] for c in cards] == expected["item_id"].tolist()
    assert cards[0][1] == esc(expected["title"][0])
    assert at.selectbox(key="w_user").value == user
    assert at.slider(key="w_k").value == 7
    assert at.query_params == {
        "page": "recommendations",
        "dataset": "tiny-demo",
        "model": tiny_world.gat_key,
        "user": user,
        "k": "7",
    }
    # History table: every logged interaction of the user, newest first.
    history = at.dataframe[0].value
    assert history["title"].tolist() == rec.history(user)["title"].tolist()


def test_hostile_title_is_escaped_text(open_app, tiny_world) -> None:
    user = _user_with_item(tiny_world.gat, tiny_world.xss_item)
    at = open_app(page="recommendations", user=user)
    page = html_of(at)
    assert esc(XSS_TITLE) in page
    assert "<img" not in page and "<script" not in page


def test_category_filter_and_hide_popular(open_app, tiny_world) -> None:
    rec = tiny_world.gat
    user = rec.user_ids[5]
    at = open_app(page="recommendations", user=user)
    at.multiselect(key="w_categories").select("Drama").run()
    expected = rec.recommend(user, 10, categories=["Drama"]).items
    assert [c[0] for c in _cards(at)] == expected["item_id"].tolist()
    assert all("Drama" in cats for cats in expected["categories"])
    at.toggle(key="w_hide_popular").set_value(True).run()
    expected = rec.recommend(user, 10, categories=["Drama"], hide_popular=0.05).items
    assert [c[0] for c in _cards(at)] == expected["item_id"].tolist()


def test_reranker_marks_rank_changes(open_app, tiny_world) -> None:
    rec = tiny_world.gat
    user = rec.user_ids[7]
    at = open_app(page="recommendations", user=user)
    at.selectbox(key="w_reranker").select("pop").run()
    at.slider(key="w_rerank_strength").set_value(2.0).run()
    assert not at.exception
    ids = [c[0] for c in _cards(at)]
    assert len(ids) == 10 and len(set(ids)) == 10
    assert ids != rec.recommend(user, 10).items["item_id"].tolist()  # a strong long-tail boost reorders
    assert re.search(r'class="gl-delta">[▲▼]\d+<', html_of(at))
    popularity = dict(zip(rec.items["item_id"], rec.item_popularity, strict=True))
    plain = rec.recommend(user, 10).items["item_id"]
    assert sum(popularity[i] for i in ids) < sum(popularity[i] for i in plain)


def test_unknown_user_in_the_url_is_a_friendly_message(open_app) -> None:
    at = open_app(page="recommendations", user="nobody-42")
    assert f"There is no user **{md('nobody-42')}**" in at.warning[0].value
    assert at.selectbox(key="w_user").value is not None  # a real user is shown instead


def test_presets_pick_matching_users(open_app, tiny_world) -> None:
    at = open_app(page="recommendations")
    at.selectbox(key="w_preset").select("history-less").run()
    chosen = at.selectbox(key="w_user").value
    assert tiny_world.gat.user_status(chosen) == "no_history"
    assert f"{HISTORYLESS_USER} · no history" in at.selectbox(key="w_user").options  # only in users.csv
    assert "Not personalised: most popular" in html_of(at)
    pop_top = tiny_world.gat.recommend(chosen, 10).items["item_id"].tolist()
    assert [c[0] for c in _cards(at)] == pop_top
    at.selectbox(key="w_preset").select("minority group").run()
    users = tiny_world.gat.recommender.dataset.users.set_index("user_id")
    assert users.loc[at.selectbox(key="w_user").value, "group"] == "minority"
    at.selectbox(key="w_preset").select("light").run()
    counts = tiny_world.gat.recommender.prep.split.matrix("train").getnnz(axis=1)
    chosen = at.selectbox(key="w_user").value
    assert counts[tiny_world.gat.recommender.idmap.user_index(chosen)] == counts.min()


def test_reasons_are_the_explanations_first_sentence(open_app, tiny_world, monkeypatch) -> None:
    monkeypatch.setenv("GATLENS_LIST_REASONS", "1")
    rec = app_recommender(tiny_world)
    user = rec.user_ids[2]
    at = open_app(page="recommendations", user=user)
    first = str(rec.recommend(user, 10).items["item_id"].iloc[0])
    reasons = re.findall(r'<div class="gl-reason"[^>]*>(.*?)</div>', html_of(at))
    assert reasons == [esc(adapters.first_sentence(rec.explain(user, first, k=10).reason))]
    assert at.button(key="w_all_reasons").label == "Reasons for all 10"
