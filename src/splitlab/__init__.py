"""Splitlab: an open-source experimentation platform, from hypothesis to ship/kill decision."""

__version__ = "0.1.0"

__all__ = ["__version__"]
