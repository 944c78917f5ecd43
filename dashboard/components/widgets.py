"""Widgets shared by pages: selectors bound to the session's selection, the user picker, the sidebar.

A bound widget reads its value from the selection dict (so a deep link or another
page can set it) and writes changes back through ``on_change`` (so the selection
is current before the page body runs).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import context, state, training
from dashboard.components.leaderboard import loadable
from dashboard.components.text import md, md_code

PRESETS = ("heavy", "light", "history-less", "minority group", "random")


def bound_selectbox(
    label: str,
    options: Sequence[Any],
    name: str,
    *,
    format_func: Callable[[Any], str] = str,
    key: str | None = None,
    **kwargs: Any,
) -> Any:
    """A selectbox whose value is ``selection()[name]`` (falls back to the first option)."""
    sel = context.selection()
    wkey = key or f"w_{name}"
    options = list(options)
    if not options:
        return None
    current = sel.get(name)
    if current not in options:
        current = options[0]
    if st.session_state.get(wkey) != current:
        st.session_state[wkey] = current

    def changed() -> None:
        sel[name] = st.session_state[wkey]

    value = st.selectbox(label, options, key=wkey, format_func=format_func, on_change=changed, **kwargs)
    sel[name] = value
    return value


def bound_k(label: str = "How many items (K)", key: str = "w_k") -> int:
    """The list length slider bound to ``selection()["k"]``."""
    sel = context.selection()
    k = int(sel.get("k") or context.DEFAULT_K)
    if st.session_state.get(key) != k:
        st.session_state[key] = k

    def changed() -> None:
        sel["k"] = int(st.session_state[key])

    value = st.slider(label, 1, context.MAX_K, key=key, on_change=changed)
    sel["k"] = int(value)
    return int(value)


def preset_users(users: pd.DataFrame, name: str, limit: int = 8) -> list[str]:
    """Example users for a preset (``users`` as built by :func:`dashboard.state.user_table`).

    heavy / light: most / fewest training interactions; history-less: listed but
    nothing to learn from; minority group: the demo world's ``group == "minority"``;
    random: a fixed pseudo-random sample (stable across reruns).
    """
    known = users[users["status"] == "known"]
    if name == "heavy":
        pick = known.sort_values(["n_train", "user_id"], ascending=[False, True])
    elif name == "light":
        pick = known.sort_values(["n_train", "user_id"], ascending=[True, True])
    elif name == "history-less":
        pick = users[users["status"] == "no_history"]
    elif name == "minority group":
        pick = known[known["group"] == "minority"] if "group" in known else known.iloc[:0]
    elif name == "random":
        pick = known.sample(n=min(limit, len(known)), random_state=0) if len(known) else known
    else:
        raise ValueError(f"unknown preset {name!r}; expected one of {PRESETS}")
    return [str(u) for u in pick["user_id"].head(limit)]


def user_picker(cur: context.Current, *, key_prefix: str = "") -> str | None:
    """Search by id (type to filter) plus presets; an unknown id shows a friendly message.

    Returns the selected known user id, or None when the selection is unusable.
    """
    sel = context.selection()
    users = state.user_table(cur.rec, cur.key)
    ids = users["user_id"].tolist()
    wanted = sel.get("user")
    if wanted is not None and str(wanted) not in set(ids):
        example = ids[0] if ids else "?"
        st.warning(
            f"There is no user **{md(wanted)}** in *{md(cur.rec.dataset_name)}* "
            f"(user ids look like {md_code(example)}). Pick one below.",
            icon=":material/person_off:",
        )
        sel["user"] = None
    if sel.get("user") is None and ids:
        heavy = preset_users(users, "heavy", 1)
        sel["user"] = heavy[0] if heavy else ids[0]

    counts = dict(zip(users["user_id"], users["n_train"], strict=True))
    col_pick, col_preset = st.columns([3, 2], vertical_alignment="bottom")
    with col_pick:
        bound_selectbox(
            "User (type to search by id)",
            ids,
            "user",
            key=f"{key_prefix}w_user",
            format_func=lambda u: f"{u} · {counts.get(u, 0)} interactions" if counts.get(u, 0) else f"{u} · no history",
            accept_new_options=False,
        )
    preset_key = f"{key_prefix}w_preset"

    def jump() -> None:
        preset = st.session_state[preset_key]
        st.session_state[preset_key] = "—"
        candidates = preset_users(users, preset) if preset in PRESETS else []
        if candidates:
            sel["user"] = candidates[0]
        elif preset in PRESETS:
            context.notice(f"No {preset} users in this dataset.")

    with col_preset:
        st.selectbox(
            "Presets",
            ("—", *PRESETS),
            key=preset_key,
            on_change=jump,
            help="Jump to a typical user of a kind: most or fewest interactions, no history, "
            "the demo world's minority group.",
        )
    return sel.get("user")


def render_sidebar() -> None:
    """Dataset and model pickers (the selection's ``dataset`` and ``model``)."""
    cfg = context.settings()
    sel = context.selection()
    rows = state.list_models(str(cfg.cache_dir))
    # The model to open when the link names none: GATLENS_MODEL, else the one the background job stored.
    preferred_key = cfg.model or training.finished_model(training.read_job(cfg.job_file))
    link_model = sel.get("model")
    if link_model and not any(r["key"] == link_model for r in rows):
        context.notice(f"The model {link_model!r} from the link is not in the cache; showing another one.")
        sel["model"] = None
    if link_model and not sel.get("dataset"):
        sel["dataset"] = next((r["dataset"] for r in rows if r["key"] == link_model), None)
    datasets = sorted({r["dataset"] for r in rows})
    if not datasets:
        datasets = [cfg.dataset]
    if sel.get("dataset") not in datasets:
        if sel.get("dataset"):
            context.notice(f"No trained model for the dataset {sel['dataset']!r}; showing {datasets[0]!r}.")
        preferred = next((r["dataset"] for r in rows if r["key"] == preferred_key), None)
        # a csv dataset is stored under its folder's name, not "csv"
        wanted = cfg.dataset_name or cfg.dataset
        sel["dataset"] = preferred or (wanted if wanted in datasets else datasets[0])
    with st.sidebar:
        bound_selectbox("Dataset", datasets, "dataset")
        ds_rows = [r for r in rows if r["dataset"] == sel["dataset"]]
        if not ds_rows:
            st.caption("No trained model yet.")
            sel["model"] = None
            return
        keys = [r["key"] for r in ds_rows]
        if sel.get("model") not in keys:
            default = preferred_key if preferred_key in keys else None
            usable = [r for r in ds_rows if loadable(r)] or ds_rows  # an outdated model opens only if asked
            gat = [r["key"] for r in usable if r.get("model") == "gat"]
            sel["model"] = default or (gat[0] if gat else usable[0]["key"])
        labels = {r["key"]: _model_label(r) for r in ds_rows}
        bound_selectbox(
            "Model",
            keys,
            "model",
            format_func=lambda key: labels[key],
            help="Every trained model in the cache for this dataset, newest first.",
        )
        row = next(r for r in ds_rows if r["key"] == sel["model"])
        ndcg = row["metrics"].get("test_ndcg@10")
        st.caption(
            f"{'Imported' if row.get('imported') else 'Trained'} {md(str(row['created'])[:16].replace('T', ' '))} UTC"
            + (f" · test NDCG@10 **{ndcg:.3f}**" if isinstance(ndcg, float) else "")
        )
        st.caption("The address bar is a deep link to the view on screen: copy it to share.")


def _model_label(row: dict[str, Any]) -> str:
    ndcg = row["metrics"].get("test_ndcg@10")
    score = f" · NDCG@10 {ndcg:.3f}" if isinstance(ndcg, float) else ""
    where = "imported lists" if row.get("imported") else row["fingerprint"][:8]
    outdated = "" if loadable(row) else " · outdated: retrain"
    return f"{row.get('model') or '?'} · {where} v{row['version']}{score}{outdated}"
