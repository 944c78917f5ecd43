"""GATLens engine: an explainable graph-attention recommender (headless).

The engine never imports streamlit, plotly or pyvis; the dashboard talks to it
through :mod:`engine.service`.
"""

__version__ = "0.1.0"
