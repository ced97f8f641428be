"""Concrete strategies."""
