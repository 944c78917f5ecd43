"""engine.artifacts package."""
