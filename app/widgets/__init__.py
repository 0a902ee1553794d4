"""Reusable Qt pieces: the config form editors, live plots, timeline views."""
