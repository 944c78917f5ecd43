"""Data layer: schema and validation, loaders, the demo world, splits, graphs."""
