"""engine.fairness package."""
