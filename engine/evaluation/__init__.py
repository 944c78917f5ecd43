"""engine.evaluation package."""
