"""engine.models package."""
