"""Feature ablation on the attention graph: the score drop when one input is removed (Captum)."""

from __future__ import annotations

from typing import ClassVar

from engine.explain.algorithms.gradient import CaptumAttribution


class FeatureAblation(CaptumAttribution):
    """Each interaction touching the user or the item removed on its own (the model's removal
    mask), and each feature group set to zero on its own."""

    name: ClassVar[str] = "ablation"
    description: ClassVar[str] = "feature ablation: the score drop when one interaction or feature group is removed"
