"""Experiments over runs: search, LR range test, batch-size finder, memory forecast.

Hyperparameter search with Optuna: the [search] space (space.py), the study's storage
(storage.py), the pruning handler on the Trainer's events (pruning.py) and the trial
workers (search.py). Optuna samples and prunes; each trial is an ordinary workspace run.
Reading a config imports space.py alone, never Optuna.
"""
