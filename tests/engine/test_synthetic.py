"""The demo world: determinism, shape, and that the planted structure is really there."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from engine.data.schema import CATEGORIES, ITEM, RATING, TEXT, TIMESTAMP, TITLE, USER
from engine.data.synthetic import (
    AGE_BANDS,
    CLUSTER_NAMES,
    GENRES,
    REGIONS,
    DemoWorld,
    generate_demo_world,
)

T0, T1 = 1_672_531_200, 1_735_689_600  # 2023-01-01 .. 2025-01-01 UTC


@pytest.fixture(scope="module")
def world() -> DemoWorld:
    return generate_demo_world(0)


@pytest.fixture(scope="module")
def joined(world: DemoWorld) -> pd.DataFrame:
    """Interactions with the user's group and the item's provider, cluster and categories."""
    d = world.dataset
    users = d.users.set_index(USER)
    items = d.items.set_index(ITEM)
    clusters = world.item_clusters.set_index(ITEM)["cluster"]
    inter = d.interactions
    return inter.assign(
        group=inter[USER].map(users["group"]),
        provider=inter[ITEM].map(items["provider"]),
        cluster=inter[ITEM].map(clusters),
        cats=inter[ITEM].map(items[CATEGORIES]),
    )


def test_same_seed_same_world_other_seed_other_world(world: DemoWorld) -> None:
    assert generate_demo_world(0).dataset.content_hash() == world.dataset.content_hash()
    small_a = generate_demo_world(7, n_users=150, n_items=200)
    small_b = generate_demo_world(7, n_users=150, n_items=200)
    small_c = generate_demo_world(8, n_users=150, n_items=200)
    assert small_a.dataset.content_hash() == small_b.dataset.content_hash()
    pd.testing.assert_frame_equal(small_a.triggers, small_b.triggers)
    assert small_a.dataset.content_hash() != small_c.dataset.content_hash()
    assert small_a.dataset.items[TITLE].tolist() != small_c.dataset.items[TITLE].tolist()


def test_default_counts_and_schema(world: DemoWorld) -> None:
    d = world.dataset
    inter, items, users = d.interactions, d.items, d.users
    assert d.name == "demo"
    assert d.rating_scale == (1.0, 5.0)
    # 1,500 active users plus 15 new sign-ups (1%) who have no interactions yet.
    assert (len(users), len(items)) == (1515, 2000)
    assert inter[USER].nunique() == 1500
    assert 60_000 <= len(inter) <= 90_000
    assert 150 <= len(world.triggers) <= 300
    assert list(inter.columns) == [USER, ITEM, RATING, TIMESTAMP]
    assert list(items.columns) == [ITEM, TITLE, CATEGORIES, TEXT, "provider", "year"]
    assert list(users.columns) == [USER, "age_band", "region", "group"]
    assert inter[RATING].dtype == np.float64
    assert inter[TIMESTAMP].dtype == np.int64
    assert isinstance(inter[USER].iloc[0], str) and isinstance(inter[ITEM].iloc[0], str)
    # Zero-padded ids that sort numerically, unique, first and last as expected.
    assert users[USER].iloc[0] == "u0001" and users[USER].iloc[-1] == "u1515"
    assert items[ITEM].iloc[0] == "i0001" and items[ITEM].iloc[-1] == "i2000"
    assert users[USER].is_unique and items[ITEM].is_unique
    assert users[USER].is_monotonic_increasing and items[ITEM].is_monotonic_increasing
    # Every interaction references a known user and item; each pair at most once.
    assert inter[ITEM].isin(items[ITEM]).all()
    assert inter[USER].isin(users[USER]).all()
    assert not inter.duplicated([USER, ITEM]).any()
    assert inter.groupby(USER).size().min() >= 5
    assert inter[USER].nunique() == 1500
    # Attributes take only their documented values.
    assert set(users["age_band"]) == set(AGE_BANDS)
    assert set(users["region"]) == set(REGIONS)
    active = users[users[USER].isin(inter[USER])]
    assert active["group"].value_counts().to_dict() == {"majority": 1275, "minority": 225}
    assert set(items["provider"]) == {"major", "independent"}
    assert items["year"].between(1950, 2022).all()


def test_categories_are_multi_label_from_a_fixed_vocabulary(world: DemoWorld) -> None:
    cats = world.dataset.items[CATEGORIES]
    assert 12 <= len(GENRES) <= 18
    assert all(isinstance(c, tuple) and 1 <= len(c) <= 3 and len(set(c)) == len(c) for c in cats)
    assert {g for c in cats for g in c} == set(GENRES)
    sizes = cats.map(len).value_counts(normalize=True)
    assert sizes[1] > 0.2 and sizes[2] > 0.3 and sizes[3] > 0.1


def test_titles_are_unique_readable_and_texts_short(world: DemoWorld) -> None:
    items = world.dataset.items
    titles = items[TITLE]
    assert titles.is_unique
    readable = re.compile(r"^[A-Z][A-Za-z0-9 ,.:;'&!?-]*$")
    assert all(readable.match(t) for t in titles), titles[~titles.str.match(readable.pattern)].head()
    assert titles.str.split().map(len).between(2, 8).all()
    texts = items[TEXT]
    assert (texts.str.len() > 20).all()
    sentences = texts.str.count(r"\.")
    assert sentences.between(1, 2).all()


def test_descriptions_carry_the_primary_category(world: DemoWorld) -> None:
    """A bag-of-words nearest-centroid classifier recovers the primary genre from the text."""
    items = world.dataset.items
    primary = items[CATEGORIES].map(lambda c: c[0]).to_numpy()
    tokens = items[TEXT].str.lower().str.findall(r"[a-z][a-z-]+")
    vocab = {w: k for k, w in enumerate(sorted({w for ws in tokens for w in ws}))}
    bow = np.zeros((len(items), len(vocab)))
    for row, ws in enumerate(tokens):
        for w in ws:
            bow[row, vocab[w]] += 1.0
    bow /= np.linalg.norm(bow, axis=1, keepdims=True)
    train = np.arange(len(items)) % 2 == 0
    genres = np.array(GENRES)
    centroids = np.stack([bow[train & (primary == g)].mean(axis=0) for g in genres])
    predicted = genres[np.argmax(bow[~train] @ centroids.T, axis=1)]
    assert (predicted == primary[~train]).mean() > 0.9


def test_popularity_is_long_tailed(world: DemoWorld) -> None:
    per_item = world.dataset.interactions.groupby(ITEM).size().sort_values(ascending=False)
    top_decile_share = per_item.iloc[: len(per_item) // 10].sum() / per_item.sum()
    assert top_decile_share > 0.35
    assert per_item.iloc[0] > 20 * per_item.median()


def test_ratings_mostly_positive_and_higher_in_taste(world: DemoWorld, joined: pd.DataFrame) -> None:
    rating = joined[RATING]
    assert set(rating.unique()) == {1.0, 2.0, 3.0, 4.0, 5.0}
    share_pos = (rating >= 3).mean()
    assert 0.75 <= share_pos <= 0.95
    uc = world.user_clusters
    taste = set(zip(uc[USER], uc["cluster"], strict=True))
    in_taste = np.array([(u, c) in taste for u, c in zip(joined[USER], joined["cluster"], strict=True)])
    assert in_taste.mean() > 0.7
    # +1 star is planted; clipping at 5 and triggered (liked) targets outside the
    # user's clusters shrink the observed gap to about 0.65.
    assert rating[in_taste].mean() > rating[~in_taste].mean() + 0.5


def test_ground_truth_frames(world: DemoWorld) -> None:
    uc, ic, trig = world.user_clusters, world.item_clusters, world.triggers
    assert list(uc.columns) == [USER, "cluster", "weight"]
    assert list(ic.columns) == [ITEM, "cluster"]
    assert list(trig.columns) == ["trigger_item_id", "target_item_id", "strength"]
    assert uc.groupby(USER)["weight"].sum().sub(1.0).abs().max() < 1e-12
    assert uc.groupby(USER).size().isin([1, 2]).all()
    assert set(uc[USER]) == set(world.dataset.interactions[USER])
    assert ic[ITEM].tolist() == world.dataset.items[ITEM].tolist()
    assert set(ic["cluster"]) == set(range(len(CLUSTER_NAMES)))
    assert trig["trigger_item_id"].is_unique and trig["target_item_id"].is_unique
    assert not set(trig["trigger_item_id"]) & set(trig["target_item_id"])
    assert trig["strength"].between(0.6, 0.8).all()


def test_minority_has_fewer_interactions_and_other_tastes(joined: pd.DataFrame) -> None:
    per_user = joined.groupby([USER, "group"]).size().groupby("group").mean()
    assert per_user["minority"] < 0.6 * per_user["majority"]
    dist = joined.explode("cats").groupby("group")["cats"].value_counts(normalize=True).unstack(0)
    total_variation = 0.5 * (dist["majority"] - dist["minority"]).abs().sum()
    assert total_variation > 0.2
    # The minority's favourite genres (true stories, music) are niche for the majority.
    for genre in ("Documentary", "History", "Music"):
        assert dist.loc[genre, "minority"] > 2 * dist.loc[genre, "majority"]


def test_minority_histories_lean_to_the_long_tail(joined: pd.DataFrame) -> None:
    """The planted accuracy disparity: the minority picks items by ``pop ** 0.6``, the majority by ``pop``.

    Seed 0: a minority user's mean item popularity (interactions per item) is
    ~76 against ~132 for a majority user (medians 71 vs 125); 23 % of minority
    interactions fall on the 10 % most popular items against 42 % for the
    majority; minority users have ~24 interactions against ~55.
    """
    per_item = joined.groupby(ITEM).size()
    inter = joined.assign(pop=joined[ITEM].map(per_item))
    users = inter.groupby([USER, "group"]).agg(n=("pop", "size"), pop=("pop", "mean")).reset_index()
    by_group = users.groupby("group")
    assert by_group["pop"].median()["minority"] < 0.65 * by_group["pop"].median()["majority"]
    assert by_group["pop"].mean()["minority"] < 0.65 * by_group["pop"].mean()["majority"]
    assert 20 <= by_group["n"].mean()["minority"] <= 30 and 45 <= by_group["n"].mean()["majority"] <= 65
    head = set(per_item.sort_values(ascending=False).index[: len(per_item) // 10])
    head_share = inter[ITEM].isin(head).groupby(inter["group"]).mean()
    assert head_share["minority"] < 0.3 < 0.35 < head_share["majority"]
    # Not only a matter of which clusters: within every taste cluster the minority
    # picks less popular items (seed 0: ratios 0.63-0.92; 0.66 in their two favourites).
    by_cluster = inter.groupby(["cluster", "group"])["pop"].mean().unstack()
    assert (by_cluster["minority"] < 0.95 * by_cluster["majority"]).all()
    niche = [CLUSTER_NAMES.index("True Stories"), CLUSTER_NAMES.index("Quirky Comedy & Music")]
    favourites = inter[inter["cluster"].isin(niche)]
    fav = favourites.groupby("group")["pop"].mean()
    assert fav["minority"] < 0.75 * fav["majority"]


def test_majors_get_more_exposure_than_their_catalog_share(world: DemoWorld, joined: pd.DataFrame) -> None:
    catalog_share = (world.dataset.items["provider"] == "major").mean()
    interaction_share = (joined["provider"] == "major").mean()
    assert 0.2 < catalog_share < 0.45
    assert interaction_share > catalog_share + 0.08


def test_triggers_raise_the_target_and_come_first(world: DemoWorld) -> None:
    inter = world.dataset.interactions
    n_users = len(world.dataset.users)
    ts = inter.set_index([USER, ITEM])[TIMESTAMP]
    consumers = inter.groupby(ITEM)[USER].agg(set)
    cond, lift = [], []
    for a, b in zip(world.triggers["trigger_item_id"], world.triggers["target_item_id"], strict=True):
        users_a, users_b = consumers.get(a, set()), consumers.get(b, set())
        assert users_a, f"trigger item {a} was never consumed"
        both = users_a & users_b
        p_b_given_a = len(both) / len(users_a)
        cond.append(p_b_given_a)
        lift.append(p_b_given_a / (len(users_b) / n_users))
        assert all(ts[(u, b)] > ts[(u, a)] for u in both), (a, b)
    assert np.mean(cond) > 0.55
    assert np.median(lift) > 5.0
    assert np.min(lift) > 2.0


def test_timestamps_increase_per_user_within_two_years(world: DemoWorld) -> None:
    inter = world.dataset.interactions
    assert inter[TIMESTAMP].min() >= T0
    assert inter[TIMESTAMP].max() <= T1 + 3600
    gaps = inter.groupby(USER)[TIMESTAMP].diff().dropna()
    assert (gaps > 0).all()


def test_scale_grows_users_items_and_interactions_in_proportion(world: DemoWorld) -> None:
    small = generate_demo_world(0, scale=0.2)
    assert (len(small.dataset.users), len(small.dataset.items)) == (300 + 3, 400)
    assert len(small.triggers) == 40
    ratio = len(small.dataset.interactions) / len(world.dataset.interactions)
    assert 0.15 < ratio < 0.25


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seed": -1}, "-1"),
        ({"scale": 0.0}, "0.0"),
        ({"scale": float("nan")}, "nan"),
        ({"n_items": 10}, "10"),
        ({"n_users": 0}, "0"),
    ],
)
def test_bad_arguments_name_the_value(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        generate_demo_world(**kwargs)


# Content hashes of the demo world recorded before the word tables moved to package
# data (engine/data/demo_words.json): the move must not change a single title.
DEMO_HASHES = {
    (0, 1.0): "c3d6f3d536835b59837e9ab9e609d26f9bca9f74e25833d6361f923f99a95cac",
    (1, 0.3): "b9f71646487c5ea7ff0c23706353c3a43777beadf9e0436f74bea1d6aec97340",
}


@pytest.mark.parametrize(("seed", "scale"), list(DEMO_HASHES))
def test_demo_world_is_byte_identical_to_the_recorded_one(seed: int, scale: float) -> None:
    world = generate_demo_world(seed) if scale == 1.0 else generate_demo_world(seed, scale=scale)
    assert world.dataset.content_hash() == DEMO_HASHES[(seed, scale)]


def test_word_tables_are_package_data() -> None:
    from importlib import resources

    words = resources.files("engine.data").joinpath("demo_words.json")
    assert words.is_file()
    from engine.data.synthetic import _words

    tables = _words()
    assert tuple(tables.genres) == GENRES
    assert tables.genres["Thriller"]["label"] == "thriller"
    assert tables.numerals[0] == "II" and len(tables.places) == 24
