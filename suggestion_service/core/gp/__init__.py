"""Gaussian-process surrogate split by concern: model, acquisition, acquisition optimizer."""
