"""Small statistics helpers: nearest-rank percentiles and a least-squares line."""

from __future__ import annotations

import math


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (no interpolation: every reported figure is one that was measured)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def percentiles(values: list[float]) -> dict[str, float]:
    return {"p50": round(percentile(values, 0.50), 4), "p95": round(percentile(values, 0.95), 4)}


def linear_fit(xs: list[float], ys: list[float]) -> tuple[float, float, float]:
    """slope, intercept and r^2 of the least-squares line through (xs, ys)."""
    n = len(xs)
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mean_x) ** 2 for x in xs)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    syy = sum((y - mean_y) ** 2 for y in ys)
    slope = sxy / sxx
    intercept = mean_y - slope * mean_x
    r2 = (sxy * sxy) / (sxx * syy) if syy else 1.0
    return slope, intercept, r2


def median(values: list[float]) -> float:
    return percentile(values, 0.5)
