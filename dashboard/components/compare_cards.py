"""Two models' top-K lists as cards that compare ranks, never raw scores.

A model's score is on its own scale (a GAT's logit, a popularity count, an EASE weight), so
putting two models' scores side by side invites a comparison that means nothing. Each card
says instead where the *other* model ranks the item ("#3 in pop's list" or "not in pop's
top 10"). Same markup as :func:`dashboard.components.html.rec_cards` (``gl-card``,
``gl-mark`` for items only this model recommends, ``data-item``), every data string escaped.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from dashboard.components.html import chips, esc
from dashboard.components.words import audience_words


def rank_cards(
    items: pd.DataFrame, *, other_ranks: Mapping[str, int], other_name: str, k: int, color: str, verb: str = "watched"
) -> str:
    """The list as cards; the right column says where the other model ranks each item.

    Args:
        items: ``Recommendations.items`` (``rank``, ``item_id``, ``title``, ``categories``, ``popularity``).
        other_ranks: item id -> rank in the other model's list (items it does not list are absent).
        other_name: the other model's name.
        k: the lists' length.
        color: this model's colour (the rank number), as on every chart.
        verb: the dataset's interaction verb, for "watched by 455" (default: ``"watched"``).
    """
    rows = []
    for row in items.itertuples(index=False):
        item_id = str(row.item_id)
        other = other_ranks.get(item_id)
        cls = "gl-card" if other is not None else "gl-card gl-mark"
        where = f"#{other} in {other_name}" if other is not None else f"not in {other_name}'s top {k}"
        rows.append(
            f'<div class="{cls}" data-item="{esc(item_id)}">'
            f'<div class="gl-rank" style="color:{esc(color)}">{int(row.rank)}</div>'
            f'<div class="gl-body"><div class="gl-title">{esc(row.title)}</div>'
            f'<div class="gl-chips">{chips(row.categories)}</div></div>'
            f'<div class="gl-score"><b>{esc(where)}</b>'
            f"<span>{esc(audience_words(int(row.popularity), verb))}</span></div></div>"
        )
    return f'<div class="gl-list">{"".join(rows)}</div>'
