"""How reports write numbers: one format for report.md and report.html."""

from __future__ import annotations

from typing import Any


def fmt(v: Any) -> str:
    """Thousands separators for integers, two decimals for floats, "-" for missing."""
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.2f}"
    return f"{v:,}"
