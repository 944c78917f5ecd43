"""Pure builders (DataFrame -> plotly Figure, explanation -> pyvis HTML) and small widgets."""
