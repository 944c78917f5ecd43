"""GATLens dashboard: a Streamlit UI over :mod:`engine.service` (never imports torch itself)."""
