"""Hooks: each owns one connection type and hands out its client."""
