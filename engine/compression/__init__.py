"""Compression: pruning, int8 quantization and distillation, each measured before and after."""

from .errors import CompressionError
from .measure import Candidate, format_table
from .pipeline import (
    CompressionResult,
    CompressOptions,
    compress,
    finetune_config,
    save_candidate,
)
from .sweep import pareto_front

__all__ = ["Candidate", "CompressOptions", "CompressionError", "CompressionResult", "compress",
           "finetune_config", "format_table", "pareto_front", "save_candidate"]
