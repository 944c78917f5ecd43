"""GATLens dashboard entry point: page setup, sidebar, and the ``st.navigation`` router.

Start it with ``gatlens dashboard`` (or ``streamlit run dashboard/app.py``). Pages live
in ``views/``, one file each; this file only wires them together. (Not ``pages/``: a folder
of that name beside the main script puts Streamlit in its legacy multipage mode, where a
fresh deep link such as ``/why`` runs that file alone, without this router and sidebar.)
"""

from __future__ import annotations

import streamlit as st

from dashboard import context
from dashboard.components.widgets import render_sidebar
from dashboard.settings import asset

st.set_page_config(
    page_title="GATLens", page_icon=str(asset("icon.svg")), layout="wide", initial_sidebar_state="expanded"
)
st.logo(str(asset("logo.svg")), size="large", icon_image=str(asset("icon.svg")))
_css = asset("style.css")
if _css.is_file():
    st.html(f"<style>{_css.read_text(encoding='utf-8')}</style>")

pages = {
    name: st.Page(path, title=title, icon=icon, url_path=name, default=(name == "overview"))
    for name, (path, title, icon) in context.PAGES.items()
}
current = st.navigation(list(pages.values()))

sel = context.selection()
wanted = sel.pop("page", None)  # ?page=why on any URL opens that page, once per session
if wanted and wanted in pages and pages[wanted].url_path != current.url_path:
    st.switch_page(pages[wanted], query_params={k: str(v) for k, v in sel.items() if v not in (None, "")})
elif wanted and wanted not in pages:
    context.notice(f"The link names an unknown page {wanted!r}; showing {current.title}.")

render_sidebar()
current.run()
