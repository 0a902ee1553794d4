"""Experiments over runs: search, LR range test, batch-size finder, memory forecast."""
