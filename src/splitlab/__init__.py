"""Splitlab."""
