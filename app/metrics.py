"""Prometheus metrics beyond Litestar's per-route request metrics (served at /metrics)."""

from prometheus_client import Counter, Gauge, Histogram

OPERATIONS = Counter(
    "trialzone_operations_total", "Operations finished, by feature, model and outcome",
    ["feature", "model", "status"],
)
OPERATION_SECONDS = Histogram(
    "trialzone_operation_seconds", "Operation latency from request to result, by feature and model",
    ["feature", "model"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64),
)
INFERENCE_SECONDS = Histogram(
    "trialzone_inference_seconds", "Time inside session.run, by model",
    ["model"], buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8),
)
QUEUE_DEPTH = Gauge("trialzone_inference_queue_depth", "Requests waiting for or in a model", ["model"])
REJECTED_BUSY = Counter("trialzone_busy_rejections_total", "Requests refused with 503 busy", ["model"])
