"""The catalogue: features, prices, runners and packages are data, not code paths."""
