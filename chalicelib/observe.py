"""Structured logs and metrics, with Powertools for AWS Lambda: one JSON log line per request
(request id, workspace, operation, outcome) and CloudWatch metrics as embedded metric format.
Nothing here logs a header, a body, a token or a secret; callers pass only ids and outcomes."""
from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from . import config

SERVICE = "studio-credits"
NAMESPACE = "StudioCredits"
logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)


def count(name: str, value: int = 1, **dimensions: str) -> None:
    """A counter, e.g. count("Refusals", reason="insufficient_credits"). Outside Lambda there is
    no CloudWatch to read them, so stdout stays for people."""
    if value <= 0 or not config.in_lambda():
        return
    if not dimensions:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
        return
    with single_metric(name=name, unit=MetricUnit.Count, value=value, namespace=NAMESPACE) as metric:
        for key, val in dimensions.items():
            metric.add_dimension(name=key, value=val)


def flush() -> None:
    if metrics.metric_set:
        metrics.flush_metrics(raise_on_empty_metrics=False)
