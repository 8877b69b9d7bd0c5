"""Serving models over HTTP (target ``local``)."""
