"""Why this item? (being written)."""

from __future__ import annotations

import streamlit as st

from dashboard import context


def render() -> None:
    context.show_notices()
    context.require_model()
    st.header("Why this item?", anchor=False)


render()
