"""Recommendations page under AppTest: the list equals the engine's, filters, presets, errors, escaping."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import parse_qsl, urlsplit

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


# ----------------------------------------------------------------------------- shareable list state
def _why_links(at) -> list[str]:
    return [unescape(h) for h in re.findall(r'<a href="(why\?[^"]+)"', html_of(at))]


def test_every_list_control_is_in_the_url_and_a_link_reproduces_the_view(open_app, tiny_world) -> None:
    rec = tiny_world.gat
    user = rec.user_ids[7]
    link = {"categories": "Drama|Comedy", "hide_popular": "1", "rerank": "pop", "rerank_strength": "1.5"}
    at = open_app(page="recommendations", user=user, k=6, **link)
    assert at.multiselect(key="w_categories").value == ["Drama", "Comedy"]
    assert at.toggle(key="w_hide_popular").value is True
    assert at.selectbox(key="w_reranker").value == "pop"
    assert at.slider(key="w_rerank_strength").value == 1.5
    filters = {"categories": ["Drama", "Comedy"], "hide_popular": 0.05}
    expected = rec.recommend_reranked(user, "pop:1.5", 6, **filters)
    assert [c[0] for c in _cards(at)] == expected["item_id"].tolist()
    assert at.query_params == {
        "page": "recommendations",
        "dataset": "tiny-demo",
        "model": tiny_world.gat_key,
        "user": user,
        "k": "6",
        **link,
    }


def test_changing_a_control_updates_the_url(open_app, tiny_world) -> None:
    at = open_app(page="recommendations", user=tiny_world.gat.user_ids[5])
    at.multiselect(key="w_categories").select("Drama").run()
    at.toggle(key="w_hide_popular").set_value(True).run()
    at.selectbox(key="w_reranker").select("mmr").run()
    at.slider(key="w_rerank_strength").set_value(0.5).run()
    params = dict(at.query_params)
    assert {k: params.get(k) for k in ("categories", "hide_popular", "rerank", "rerank_strength")} == {
        "categories": "Drama",
        "hide_popular": "1",
        "rerank": "mmr",
        "rerank_strength": "0.5",
    }
    at.selectbox(key="w_reranker").select("none").run()
    at.multiselect(key="w_categories").unselect("Drama").run()
    assert "rerank" not in at.query_params and "rerank_strength" not in at.query_params
    assert "categories" not in at.query_params


def test_bad_list_values_in_a_link_are_dropped_with_a_notice(open_app, tiny_world) -> None:
    at = open_app(
        page="recommendations",
        user=tiny_world.gat.user_ids[5],
        categories="Drama|Nope",
        rerank="shuffle",
        hide_popular="maybe",
    )
    warnings = " ".join(w.value for w in at.warning).replace("\u2060", "").replace("\\", "")
    assert "categories Nope are not in this catalog" in warnings and "re-ranker 'shuffle' is unknown" in warnings
    assert at.multiselect(key="w_categories").value == ["Drama"]
    assert at.query_params.get("categories") == "Drama" and "rerank" not in at.query_params


def test_why_link_carries_the_list_and_the_why_page_shows_the_rank_seen(open_app, tiny_world) -> None:
    rec = tiny_world.gat
    link = {"categories": "Drama", "rerank": "pop", "rerank_strength": "2"}
    filters = {"categories": ["Drama"]}

    # A user whose filtered, re-ranked #1 is not the model's #1 over all unseen items.
    def shown_first(u: str) -> str:
        return str(rec.recommend_reranked(u, "pop:2", 10, **filters)["item_id"].iloc[0])

    user = next(u for u in rec.user_ids[:40] if shown_first(u) != rec.recommend(u, 1).items["item_id"].iloc[0])
    at = open_app(page="recommendations", user=user, **link)
    first = _cards(at)[0][0]
    why = _why_links(at)[0]
    query = dict(parse_qsl(urlsplit(why).query))
    assert query == {
        "dataset": "tiny-demo",
        "model": tiny_world.gat_key,
        "user": user,
        "k": "10",
        **link,
        "page": "why",
        "item": first,
    }
    # The filtered, re-ranked #1 is not the model's #1 overall: the Why page says both.
    overall = rec.recommend(user, 200).items.set_index("item_id").loc[first, "rank"]
    assert overall > 1
    at = open_app(**query)
    tiles = html_of(at)
    assert re.search(r'gl-tile-label">rank</div><div class="gl-tile-value">#1<', tiles), tiles[:2000]
    assert f"in the list shown (Drama only · long-tail boost 2); #{overall} among all unseen items" in tiles
    assert {k: at.query_params.get(k) for k in link} == link  # the Why page's own URL keeps the list
