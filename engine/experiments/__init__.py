"""Experiments over runs: hyperparameter search, LR range test, batch-size finder, memory forecast."""
