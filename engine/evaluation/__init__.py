"""Judging trained models: metrics, stored reports, evaluation after each run and on demand."""

from .report import (
    METRIC_KEYS,
    SPLITS,
    EvaluationError,
    headline,
    load_report,
    load_thumbnails,
    report_path,
)

__all__ = ["METRIC_KEYS", "SPLITS", "EvaluationError", "headline", "load_report",
           "load_thumbnails", "report_path"]
