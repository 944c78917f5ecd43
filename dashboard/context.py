"""The current view: which dataset, model, user, item and K are selected, and the URL that reproduces it.

One dict in ``st.session_state`` holds the selection. It is seeded once per session
from the URL's query parameters (a deep link), updated by the widgets, and written
back to the URL by every page, so the address bar is always a link to the view on
screen: ``/why?model=gat-02a36f00-v1&user=u0042&item=i0007&k=10``.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

import streamlit as st

from dashboard import state
from dashboard.components.text import md, md_code
from dashboard.settings import Settings, load_settings, model_key

URL_KEYS = (
    "dataset",
    "model",
    "user",
    "item",
    "k",
    "grouping",
    "metric",
    "reranker",
    "strength",
    "vs",
    "categories",
    "hide_popular",
    "rerank",
    "rerank_strength",
)
"""Query parameters a deep link may set; each page writes back the ones it uses (see :func:`write_url`).
``grouping``, ``metric``, ``reranker`` and ``strength`` are the Fairness page's; ``vs`` the model Compare
puts beside the selected one; ``categories``, ``hide_popular``, ``rerank`` and ``rerank_strength`` the
Recommendations list's (the Why link carries them too: see :mod:`dashboard.listview`)."""
# url_path -> (file, title, icon); the order is the navigation order.
PAGES: dict[str, tuple[str, str, str]] = {
    "overview": ("views/overview.py", "Overview", ":material/dashboard:"),
    "recommendations": ("views/recommendations.py", "Recommendations", ":material/recommend:"),
    "why": ("views/why.py", "Why this item?", ":material/hub:"),
    "fairness": ("views/fairness.py", "Fairness & diversity", ":material/balance:"),
    "compare": ("views/compare.py", "Compare models", ":material/compare_arrows:"),
}
DEFAULT_K = 10
MAX_K = 50
_SEL = "gl_selection"
_NOTICES = "gl_notices"


def selection() -> dict[str, Any]:
    """The session's selection, seeded from the URL on the first run of a session."""
    if _SEL not in st.session_state:
        params = st.query_params
        sel: dict[str, Any] = {key: params.get(key) or None for key in (*URL_KEYS, "page")}
        sel["k"] = _parse_k(sel.get("k"))
        st.session_state[_SEL] = sel
    return st.session_state[_SEL]


def _parse_k(raw: Any) -> int:
    if raw in (None, ""):
        return DEFAULT_K
    try:
        k = int(raw)
    except (TypeError, ValueError):
        notice(f"The link's k={raw!r} is not a number; showing the top {DEFAULT_K}.")
        return DEFAULT_K
    if not 1 <= k <= MAX_K:
        notice(f"The link's k={k} is outside 1–{MAX_K}; showing the top {min(max(k, 1), MAX_K)}.")
    return min(max(k, 1), MAX_K)


def notice(text: str) -> None:
    """Queue a one-time friendly message (e.g. about a bad deep link) for the page to show.

    Args:
        text: plain text, never Markdown: it usually quotes a value from the URL, so
            :func:`show_notices` escapes all of it (a ``[link](...)`` shows as typed).
    """
    st.session_state.setdefault(_NOTICES, []).append(text)


def show_notices() -> None:
    """Show the queued notices as warnings, each escaped whole (see :func:`notice`)."""
    for text in st.session_state.pop(_NOTICES, []):
        st.warning(md(text), icon=":material/link_off:")


def write_url(page: str, *keys: str) -> None:
    """Make the address bar a deep link to this view (only the keys the page uses)."""
    sel = selection()
    params = {"page": page}
    params.update({key: str(sel[key]) for key in ("dataset", "model", *keys) if sel.get(key) not in (None, "")})
    if dict(st.query_params) != params:
        st.query_params.from_dict(params)


def settings() -> Settings:
    """Data locations from the environment (cheap: read on every run, so tests can repoint them)."""
    return load_settings()


@dataclass
class Current:
    """What a page works with: the settings, the selected model's row and its Recommender."""

    settings: Settings
    row: dict[str, Any]
    rec: Any
    rows: list[dict[str, Any]]

    @property
    def key(self) -> str:
        return str(self.row["key"])

    @property
    def imported(self) -> bool:
        """Whether the selection is another system's imported lists (no model: nothing to explain)."""
        return bool(self.row.get("imported"))

    @property
    def is_gat(self) -> bool:
        """Whether the Why page's graph explanation (Integrated Gradients) supports this model (registry)."""
        return "ig" in state.explain_methods(str(self.row.get("model")))


def models_for(dataset: str | None) -> list[dict[str, Any]]:
    return [r for r in state.list_models(str(settings().cache_dir)) if dataset is None or r["dataset"] == dataset]


def require_model() -> Current:
    """The selected model, loaded; otherwise explain what to do (Train button) and stop the page."""
    cfg = settings()
    sel = selection()
    rows = models_for(sel.get("dataset"))
    row = next((r for r in rows if r["key"] == sel.get("model")), None)
    if row is None:
        _no_model(cfg, sel.get("dataset") or cfg.dataset)
        st.stop()
    try:
        rec = state.load_recommender(str(cfg.cache_dir), row["path"])
    except state.ModelNotReadyError as exc:
        st.error(md(exc), icon=":material/build:")
        _train_button(cfg)
        st.stop()
    except Exception as exc:  # a damaged cache or missing data folder must not show a traceback
        st.error(
            f"The model {md(row['key'])} could not be loaded: {md(exc)}. Check that its data is still where it was "
            "trained from, or retrain it with the button below.",
            icon=":material/error:",
        )
        _train_button(cfg)
        st.stop()
    return Current(cfg, row, rec, rows)


def _no_model(cfg: Settings, dataset: str) -> None:
    st.info(
        f"No trained model for the dataset **{md(dataset)}** is in the cache ({md(cfg.cache_dir)}). "
        "Train one here (a few minutes on a laptop CPU for the demo world), or from a terminal: "
        f"{md_code(f'gatlens train --dataset {shlex.quote(cfg.dataset)}')}.",
        icon=":material/model_training:",
    )
    _train_button(cfg)


def _train_button(cfg: Settings) -> None:
    if not st.button(f"Train the {md(cfg.dataset)} model", type="primary", icon=":material/play_arrow:"):
        return
    bar = st.progress(0.0, text="Preparing data and text features…")

    def on_epoch(epoch: int, max_epochs: int, logs: dict[str, Any]) -> None:
        ndcg = logs.get("valid_ndcg@10")
        text = f"Epoch {epoch}/{max_epochs} · loss {logs.get('loss', float('nan')):.4f}"
        if ndcg is not None:
            text += f" · valid NDCG@10 {ndcg:.4f} (stops early when it stops improving)"
        bar.progress(min(epoch / max(max_epochs, 1), 1.0), text=text)

    rec = state.train_model(cfg.train_config(), str(cfg.cache_dir), on_epoch)
    bar.progress(1.0, text="Done")
    sel = selection()
    sel["dataset"] = rec.dataset_name
    sel["model"] = model_key(rec.model_name, rec.fingerprint, rec.version) if rec.fingerprint else None
    st.rerun()
