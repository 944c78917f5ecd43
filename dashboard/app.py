"""GATLens dashboard entry point: page setup, sidebar, and the ``st.navigation`` router.

Start it with ``gatlens dashboard`` (or ``streamlit run dashboard/app.py`` from any directory: the
settings beside it in ``.streamlit/`` bind 127.0.0.1 and turn usage statistics off). Pages live
in ``views/``, one file each; this file only wires them together. (Not ``pages/``: a folder
of that name beside the main script puts Streamlit in its legacy multipage mode, where a
fresh deep link such as ``/why`` runs that file alone, without this router and sidebar.)
"""

from __future__ import annotations

import logging

import streamlit as st

from dashboard import context, settings, state, training
from dashboard.components.widgets import render_sidebar
from dashboard.settings import asset

st.set_page_config(
    page_title="GATLens", page_icon=str(asset("icon.svg")), layout="wide", initial_sidebar_state="expanded"
)
# The server binds before any script runs, so the app cannot choose its own address: its config
# (dashboard/.streamlit/config.toml, read from any working directory) does. This is the backstop
# for a server that bound every interface anyway: it shows no data there unless asked to.
_problem = settings.exposure_problem(settings.listening_addresses(), st.get_option("server.address"))
if _problem:
    logging.getLogger("gatlens.dashboard").warning(_problem.replace("`", "").replace("**", ""))
    st.error(_problem, icon=":material/lock:")
    st.stop()
st.logo(str(asset("logo.svg")), size="large", icon_image=str(asset("icon.svg")))
_css = asset("style.css")
if _css.is_file():
    st.html(f"<style>{_css.read_text(encoding='utf-8')}</style>")

pages = {
    name: st.Page(path, title=title, icon=icon, url_path=name, default=(name == "overview"))
    for name, (path, title, icon) in context.PAGES.items()
}
current = st.navigation(list(pages.values()))

# A model still being prepared by `gatlens dashboard`'s background job: every page shows its
# progress (read from a small JSON file, before anything imports the engine) until it is stored.
_cfg = context.settings()
_job = training.read_job(_cfg.job_file)
if training.is_active(_job):
    training.render_progress(_cfg, _job)
    st.stop()
if training.just_finished():
    state.list_models.clear()  # the model the job just stored is not in the 5-second cached list yet
if _job and _job.get("state") == "failed":
    training.show_failure(_job)

sel = context.selection()
wanted = sel.pop("page", None)  # ?page=why on any URL opens that page, once per session
if wanted and wanted in pages and pages[wanted].url_path != current.url_path:
    st.switch_page(pages[wanted], query_params={k: str(v) for k, v in sel.items() if v not in (None, "")})
elif wanted and wanted not in pages:
    context.notice(f"The link names an unknown page {wanted!r}; showing {current.title}.")

render_sidebar()
current.run()
