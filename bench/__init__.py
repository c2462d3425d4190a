"""Benchmarks of the answer path, with the baselines they are judged against (see RESULTS.md)."""
