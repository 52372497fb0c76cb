"""Benchmarks for `breast-engine bench NAME --json` (one module per benchmark)."""
