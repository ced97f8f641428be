"""Benchmarks: they drive the suggestion servers over gRPC, as Katib would, and write their
numbers to ``benchmarks/results/``. They are not tests."""
