"""Trial zone backend: photo features paid for with tokens."""
