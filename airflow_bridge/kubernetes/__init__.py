"""Kubernetes training: compute tiers turned into pod parts, and resource quantities.

Light at import: the ``kubernetes`` client is imported inside the functions that build objects.
"""
