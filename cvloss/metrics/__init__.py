"""Evaluation metrics, one module per task family (segmentation, ...)."""
from cvloss.metrics.segmentation import (
    SegMetricAccumulator,
    betti_numbers,
    betti_numbers_batch,
    cldice_score,
    confusion_matrix,
    segmentation_metrics,
)

__all__ = [
    "SegMetricAccumulator",
    "betti_numbers",
    "betti_numbers_batch",
    "cldice_score",
    "confusion_matrix",
    "segmentation_metrics",
]
