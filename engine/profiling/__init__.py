"""Profiling: torch.profiler capture, reading traces with torch-tb-profiler, timeline data."""
