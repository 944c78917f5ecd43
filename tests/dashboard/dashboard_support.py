"""The dashboard tests' tiny world and helpers (the fixtures that use them are in conftest.py).

The world: the demo generator at 150 users x 200 items, written as a csv dataset so the
app loads it by name exactly like a user's own data, with two hostile strings planted: the
most popular item's title is an HTML payload and another item has a script as a category.
One extra user is listed without any interaction (a history-less user). A small GAT
(3 epochs, 32-d, no language model) and a most-popular baseline are stored in a temporary
artifact cache that the app is pointed at through ``GATLENS_CACHE_DIR``. Training takes
seconds, once per session.

A distinct module name (not ``conftest``) keeps ``from dashboard_support import ...``
unambiguous however many conftest files the suite grows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

XSS_TITLE = "<img src=x onerror=alert(1)>"
XSS_CATEGORY = "<script>window.__xss=1</script>"
HISTORYLESS_USER = "u9000"
APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"


@dataclass
class TinyWorld:
    cache_dir: Path
    data_dir: Path
    gat: Any  # engine.service.Recommender: the default model, exactly decomposable
    pop: Any
    gat_key: str
    pop_key: str
    uigat: Any  # the user-item attention model (attention graph, layers and heads)
    uigat_key: str
    xss_item: str
    env: dict[str, str]


def _write_csv_world(folder: Path) -> str:
    import pandas as pd

    from engine.data.synthetic import generate_demo_world

    world = generate_demo_world(seed=0, n_users=150, n_items=200)
    ds = world.dataset
    folder.mkdir(parents=True)
    inter = ds.interactions
    popular = inter["item_id"].value_counts().index[0]
    items = ds.items.copy()
    items.loc[items["item_id"] == popular, "title"] = XSS_TITLE
    second = inter["item_id"].value_counts().index[1]
    items["categories"] = [
        "|".join((*cats, XSS_CATEGORY) if iid == second else cats)
        for iid, cats in zip(items["item_id"], items["categories"], strict=True)
    ]
    users = ds.users.copy()
    extra = users.iloc[[0]].assign(user_id=HISTORYLESS_USER, group="minority")
    inter.to_csv(folder / "interactions.csv", index=False)
    items.drop(columns=["text"]).to_csv(folder / "items.csv", index=False)
    pd.concat([users, extra], ignore_index=True).to_csv(folder / "users.csv", index=False)
    return str(popular)


def build_tiny_world(root: Path) -> TinyWorld:
    from dashboard.settings import model_key
    from engine import service
    from engine.config import RunConfig

    data_dir = root / "tiny-demo"
    xss_item = _write_csv_world(data_dir)
    cache = root / "cache"
    cfg = RunConfig().with_overrides(
        data={"dataset": "csv", "data_dir": str(data_dir)},
        features={"text": False},
        model={"embedding_dim": 32, "heads": 2},
        train={"epochs": 3, "device": "cpu"},
    )
    gat = service.train(cfg, cache_dir=cache)
    pop = service.train(cfg.with_overrides(model={"name": "pop"}), cache_dir=cache)
    uigat = service.train(cfg.with_overrides(model={"name": "uigat"}), cache_dir=cache)
    env = {
        "GATLENS_CACHE_DIR": str(cache),
        "GATLENS_DATASET": "csv",
        "GATLENS_DATA_DIR": str(data_dir),
        "GATLENS_EPOCHS": "2",
        "GATLENS_TEXT": "0",
        "GATLENS_LIST_REASONS": "0",
    }
    return TinyWorld(
        cache_dir=cache,
        data_dir=data_dir,
        gat=gat,
        pop=pop,
        gat_key=model_key("gat", gat.fingerprint, gat.version),
        pop_key=model_key("pop", pop.fingerprint, pop.version),
        uigat=uigat,
        uigat_key=model_key("uigat", uigat.fingerprint, uigat.version),
        xss_item=xss_item,
        env=env,
    )


def html_of(at: Any) -> str:
    """Every ``st.html`` body on the page, joined (cards, tiles, headlines)."""
    return "\n".join(h.value for h in at.html)


def charts_of(at: Any) -> list[dict]:
    """Plotly figures on the page, as dicts (AppTest shows them as unknown elements)."""
    import json

    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def app_recommender(tiny_world: TinyWorld, key: str | None = None) -> Any:
    """The Recommender instance the app itself uses (``st.cache_resource``), so memoised
    explanations are shared between the test and the page instead of computed twice."""
    import warnings

    from dashboard import state

    by_key = {tiny_world.pop_key: tiny_world.pop, tiny_world.uigat_key: tiny_world.uigat}
    rec = tiny_world.gat if key in (None, tiny_world.gat_key) else by_key[key]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return state.load_recommender(str(tiny_world.cache_dir), str(rec.artifact_path))
