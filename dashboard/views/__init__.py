"""The dashboard pages, one file each; Streamlit runs them as scripts through ``st.navigation``.

Importing one renders it, so only the router (``dashboard/app.py``) should refer to them, by path.
"""
