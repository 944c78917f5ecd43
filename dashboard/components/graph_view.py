"""The explanation subgraph as a self-contained, offline pyvis network (an HTML string).

Input is two tidy frames (see :func:`network_html`); output is one HTML document with
vis-network inlined (``cdn_resources="in_line"``), so it renders without a network
connection inside ``st.iframe``.

Safety: labels are drawn on a canvas (never parsed as HTML), and pyvis serialises
node data with Jinja's ``tojson`` (which escapes ``<``, ``>``, ``&``). Tooltips are
HTML: every data string in them is ``html.escape``-d here, and only then turned into
DOM elements by a tiny script, so an item titled ``<img src=x onerror=...>`` shows
as text.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

# Colours per node kind and their legend labels, in legend order: four clearly different hues
# (Okabe-Ito, safe for colour-blind readers, readable on light and dark pages) plus grey for
# the full subgraph's other items. Shapes differ too (diamond, box/dot, star, triangle).
NODE_COLORS: dict[str, str] = {
    "user": "#0072B2",
    "history": "#009E73",
    "target": "#E69F00",
    "other_user": "#CC79A7",
    "item": "#94a3b8",
}
NODE_LABELS: dict[str, str] = {
    "user": "the user",
    "history": "their past items",
    "target": "recommended item",
    "other_user": "other users",
    "item": "other items",
}
NEGATIVE_EDGE = "#ef4444"
MAX_NODES = 150
LABELLED = 14  # besides the user and the item, only the most important nodes carry a visible label
_ANCHOR = "network = new vis.Network(container, data, options);"
# Turns escaped-HTML tooltip strings into elements (vis-network shows strings as plain text).
_TOOLTIP_JS = """
                  [nodes, edges].forEach(function (set) {
                    set.forEach(function (entry) {
                      if (typeof entry.title === "string") {
                        var box = document.createElement("div");
                        box.className = "gl-tip";
                        box.innerHTML = entry.title;
                        set.update({id: entry.id, title: box});
                      }
                    });
                  });
                  """
# Once the layout has settled (stabilisation done, or fixed positions drawn) physics stops, so
# nothing drifts; then the view is fitted with a margin, so no node or label touches the frame.
_SETTLE_JS = """
                  function glSettle() {
                    network.setOptions({physics: false});
                    network.fit({animation: false});
                    network.moveTo({scale: network.getScale() * 0.92, animation: false});
                  }
                  if (options.physics && options.physics.enabled !== false) {
                    network.once("stabilizationIterationsDone", glSettle);
                  } else {
                    network.once("afterDrawing", glSettle);
                  }
                  """
_EXTRA_CSS = """
<style>
  html, body { margin: 0; padding: 0; background: transparent; font-family: sans-serif; }
  #mynetwork { border: none !important; }
  .card { border: none !important; background: transparent !important; }
  .gl-tip { font: 13px/1.45 sans-serif; max-width: 340px; white-space: normal; }
  .gl-legend { font: 13px sans-serif; color: %(fg)s; padding: 4px 2px 6px; height: 20px; }
  .gl-legend span.dot { display: inline-block; width: 12px; height: 12px; border-radius: 50%%;
                        margin: 0 5px 0 12px; vertical-align: -2px; }
  .gl-legend span.dot:first-child { margin-left: 2px; }
</style>
"""


def _escape(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _short(text: str, limit: int = 28) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


_REMOTE = re.compile(r"<link\b[^>]*\bhref=\"https?://[^>]*>|<script\b[^>]*\bsrc=\"https?://[^>]*>\s*</script>", re.S)


def network_html(
    nodes: pd.DataFrame,
    edges: pd.DataFrame,
    *,
    dark: bool = False,
    height: int = 560,
    options_file: Path | None = None,
    max_nodes: int = MAX_NODES,
) -> str:
    """Render an explanation graph as a standalone HTML page, with a colour legend above it.

    Args:
        nodes: columns ``id`` (unique; never shown), ``kind`` (a key of :data:`NODE_COLORS`),
            ``label`` (full text), optional ``detail`` (the tooltip's sentence, plain text),
            ``importance`` (>= 0, scales the node size) and ``x``/``y`` (fixed positions: the
            graph is drawn there, physics off, past items as labelled boxes).
        edges: columns ``src``, ``dst`` (node ids), ``weight`` (signed; width is its
            magnitude, negative edges are red) and optional ``detail`` (tooltip text).
        dark: colours for a dark page (default: False).
        height: canvas height in pixels, legend excluded (default: 560).
        options_file: vis-network options as JSON for a physics layout (default: built-in
            settings); ignored for fixed positions.
        max_nodes: refuse larger graphs, which are unreadable and slow (default: 150).

    Returns:
        The HTML document (about 700 kB: vis-network is inlined for offline use). The layout
        settles, then stays: physics is switched off once it has stabilised.

    Raises:
        ValueError: more than ``max_nodes`` nodes, an unknown kind, or an edge to a missing node.
    """
    from pyvis.network import Network

    if len(nodes) > max_nodes:
        raise ValueError(f"the graph view shows at most {max_nodes} nodes (got {len(nodes)})")
    unknown = set(nodes["kind"]) - set(NODE_COLORS)
    if unknown:
        raise ValueError(f"unknown node kind(s) {sorted(unknown)!r}; expected {sorted(NODE_COLORS)}")
    ids = set(nodes["id"])
    missing = (set(edges["src"]) | set(edges["dst"])) - ids
    if missing:
        raise ValueError(f"edges refer to nodes not in the node table (got {sorted(map(str, missing))[:5]!r})")

    fg = "#e5e7eb" if dark else "#1f2937"
    fixed = "x" in nodes and "y" in nodes
    # No network-wide font_color: pyvis would overwrite each node's font dict with it.
    net = Network(height=f"{height}px", width="100%", bgcolor="rgba(0,0,0,0)", cdn_resources="in_line", directed=False)
    importance = nodes["importance"].astype(float) if "importance" in nodes else pd.Series(1.0, nodes.index)
    top = float(importance.max()) if len(importance) and importance.max() > 0 else 1.0
    labelled = set(importance.sort_values(ascending=False, kind="stable").index[:LABELLED])
    for (index, row), imp in zip(nodes.iterrows(), importance, strict=True):
        kind = str(row["kind"])
        big = kind in ("user", "target")
        tip = f"<b>{_escape(row['label'])}</b><br><i>{_escape(NODE_LABELS[kind])}</i>"
        detail = row.get("detail")
        if detail:
            tip += f"<br>{_escape(detail)}"
        boxed = fixed and kind == "history"
        extra: dict = {"x": float(row["x"]), "y": float(row["y"]), "physics": False} if fixed else {}
        if boxed:  # a labelled box: the title is readable inside it, beside its edges
            extra["margin"] = 6
        net.add_node(
            str(row["id"]),
            # Canvas text, never parsed as HTML; unlabelled nodes show their title on hover.
            label=_short(str(row["label"])) if big or fixed or index in labelled else " ",
            title=tip,
            color=NODE_COLORS[kind],
            size=(26 if big else 10 + 14 * float(imp) / top),
            shape=_SHAPES.get(kind, "dot") if not boxed else "box",
            borderWidth=3 if big else 1,
            font={
                "size": 22 if big else (18 if fixed else 16),
                "color": "#ffffff" if boxed else fg,
                "strokeWidth": 0 if boxed else 3,
                "strokeColor": "#111320" if dark else "#ffffff",
            },
            **extra,
        )
    weights = edges["weight"].astype(float).to_numpy() if len(edges) else np.zeros(0)
    scale = float(np.abs(weights).max()) if len(weights) and np.abs(weights).max() > 0 else 1.0
    for row, w in zip(edges.itertuples(index=False), weights, strict=True):
        detail = getattr(row, "detail", None)
        tip = _escape(detail) if detail else f"weight {w:.4f}"
        strength = abs(w) / scale
        net.add_edge(
            str(row.src),
            str(row.dst),
            width=0.5 + 7.5 * strength,
            title=tip,
            # Weak edges fade so the few that matter stand out of the hairball.
            color={
                "color": NEGATIVE_EDGE if w < 0 else ("#94a3b8" if dark else "#64748b"),
                "opacity": round(0.12 + 0.88 * strength, 3),
            },
        )
    net.set_options(json.dumps(FIXED_OPTIONS) if fixed else _options(options_file))
    page = net.generate_html(notebook=False)
    if _ANCHOR not in page:  # pyvis changed its template: refuse rather than ship raw tooltips
        raise RuntimeError("pyvis template has no network constructor anchor; cannot install tooltips")
    page = page.replace(_ANCHOR, _TOOLTIP_JS + _ANCHOR + _SETTLE_JS, 1)
    # pyvis's template links Bootstrap from a CDN even with in-line resources (for menus we do
    # not use): offline that is a failed request, and a script in the page waits for it.
    page = _REMOTE.sub("", page)
    panel = "rgba(17,24,39,0.75)" if dark else "rgba(255,255,255,0.85)"
    page = page.replace("</head>", _EXTRA_CSS % {"fg": fg, "panel": panel} + "</head>", 1)
    return page.replace("<body>", "<body>" + _legend_html(nodes["kind"].unique()), 1)


_SHAPES = {"user": "diamond", "target": "star", "other_user": "triangle", "history": "dot", "item": "dot"}


def _legend_html(kinds: Sequence[str]) -> str:
    """One entry per node kind present, in :data:`NODE_COLORS` order."""
    order = [k for k in NODE_COLORS if k in set(kinds)]
    items = "".join(
        f'<span class="dot" style="background:{NODE_COLORS[k]}"></span>{_escape(NODE_LABELS[k])}' for k in order
    )
    return f'<div class="gl-legend">{items}</div>'


def _options(options_file: Path | None) -> str:
    if options_file is not None and options_file.is_file():
        return options_file.read_text(encoding="utf-8")
    return json.dumps(DEFAULT_OPTIONS)


DEFAULT_OPTIONS: dict = {
    "physics": {
        "solver": "forceAtlas2Based",
        "forceAtlas2Based": {"gravitationalConstant": -90, "springLength": 110, "avoidOverlap": 0.6},
        "stabilization": {"enabled": True, "iterations": 120, "fit": True},
        "minVelocity": 1.5,
    },
    "interaction": {"hover": True, "tooltipDelay": 80, "navigationButtons": False},
    "edges": {"smooth": False},
}
# Fixed positions: no physics at all, so the first drawing is the layout.
FIXED_OPTIONS: dict = {
    "physics": {"enabled": False},
    "interaction": {"hover": True, "tooltipDelay": 80, "navigationButtons": False, "zoomView": True},
    "edges": {"smooth": False},
    "layout": {"randomSeed": 7},
}


def node_count(page: str) -> int:
    """Number of nodes in a page made by :func:`network_html` (for tests and sanity checks)."""
    start = page.index("nodes = new vis.DataSet(") + len("nodes = new vis.DataSet(")
    end = page.index(");", start)
    return len(json.loads(page[start:end]))
