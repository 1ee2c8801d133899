"""Decode, validate, orient and encode photos."""
