"""One colour per model, the same on every page and chart.

A model is coloured by its registered name (``gat``, ``lightgcn``, ``pop``, …) so the GAT is
the same indigo on the Overview's bars, the Compare page's overlap chart and the Fairness
page's comparison; a model name not listed here gets a stable colour from the spare palette
(a hash of the name, not the order models happen to be listed in).
"""

from __future__ import annotations

import zlib

# Distinct hues that read on white and on the dark theme; the product's own model is the accent.
MODEL_COLORS: dict[str, str] = {
    "gat": "#5b5bd6",
    "uigat": "#8b5cf6",
    "lightgcn": "#0d9488",
    "ease": "#d97706",
    "bprmf": "#db2777",
    "itemknn": "#0284c7",
    "pop": "#64748b",
}
SPARE = ("#65a30d", "#c2410c", "#7c3aed", "#0891b2", "#be123c", "#4d7c0f", "#a16207")


def model_color(name: str) -> str:
    """The colour of a model, by registered name or artifact key (``gat-02a36f00-v1`` is ``gat``'s colour).

    Args:
        name: a model name, an artifact key, or any label starting with the model name.
    """
    text = str(name).strip().lower()
    if text in MODEL_COLORS:
        return MODEL_COLORS[text]
    for sep in ("-", " ", "·"):
        head = text.split(sep, 1)[0]
        if head in MODEL_COLORS:
            return MODEL_COLORS[head]
    return SPARE[zlib.crc32(text.encode("utf-8")) % len(SPARE)]


def model_colors(names: list[str]) -> dict[str, str]:
    """``{name: colour}`` for several models; two models that would share a colour (two versions
    of one model) get the second one a spare colour, so the lines and bars stay apart."""
    out: dict[str, str] = {}
    for name in names:
        color = model_color(name)
        spare = iter(c for c in SPARE if c not in out.values())
        while color in out.values():
            color = next(spare, color)
            if color not in out.values():
                break
        out[name] = color
    return out
