"""The benchmark's pieces, one module per concept, stage and peer; `scripts/benchmark.py` is the entry point."""
