"""engine.training package."""
