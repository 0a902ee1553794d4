"""Subcommands of `torchwork` beyond run/resume/runs/options, one module each (see engine.cli)."""
