"""Kubernetes helpers (katib-config registration, TuningSchedule operator)."""
