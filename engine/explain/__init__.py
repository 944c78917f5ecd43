"""engine.explain package."""
