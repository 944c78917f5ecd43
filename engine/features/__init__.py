"""engine.features package."""
