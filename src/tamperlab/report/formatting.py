"""How numbers are written, the same in the HTML report, the terminal summary and the plots.

A budget that never broke the model is a lower bound and is always written with "≥": the store keeps the
largest budget tried in that case, and printing it bare would read as a measured break cost.
"""

from __future__ import annotations

import math

BUDGET_UNITS: tuple[str, ...] = ("steps", "examples", "tokens", "flops", "seconds")
"""Budget units every milestone and break cost is measured in, in display order."""

UNIT_TITLES = {
    "steps": "steps",
    "examples": "examples",
    "tokens": "tokens",
    "flops": "FLOPs",
    "seconds": "seconds",
}

_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def is_number(value: object) -> bool:
    """True for a finite int or float (bools excluded)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def fmt_scientific(value: float, digits: int = 2, strip: bool = False) -> str:
    """``1.2×10¹⁵``: a large count written so its order of magnitude reads at a glance.

    ``strip`` drops trailing zeros (``5×10¹¹`` rather than ``5.0×10¹¹``, for round axis ticks).
    """
    if value == 0:
        return "0"
    exponent = math.floor(math.log10(abs(value)))
    mantissa = value / 10**exponent
    if round(mantissa, digits - 1) >= 10:
        mantissa, exponent = mantissa / 10, exponent + 1
    text = f"{mantissa:.{digits - 1}f}"
    if strip and "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text}×10{str(exponent).translate(_SUPERSCRIPT)}"


def fmt_count(value: float) -> str:
    """A count of examples or tokens: ``840``, ``12,300``, ``1.23M``."""
    if abs(value) < 100_000:
        return f"{value:,.0f}" if abs(value - round(value)) < 0.05 or abs(value) >= 100 else f"{value:.1f}"
    for size, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:,.0f}"  # pragma: no cover  (unreachable: the loop covers >= 1e5)


def fmt_budget(value: float | None, unit: str) -> str:
    """One budget number in its unit's style (no unit name appended)."""
    if value is None or not is_number(value):
        return "—"
    if unit == "steps":
        return f"{value:.0f}" if abs(value - round(value)) < 0.05 else f"{value:.1f}"
    if unit == "flops":
        return fmt_scientific(value)
    if unit == "seconds":
        return fmt_seconds(value)
    return fmt_count(value)


def fmt_bound(value: float | None, unit: str, lower_bound: bool) -> str:
    """A budget, prefixed with "≥ " when it is a lower bound (the model did not break within it)."""
    text = fmt_budget(value, unit)
    return f"≥ {text}" if lower_bound and text != "—" else text


def fmt_seconds(value: float) -> str:
    """Wall time: ``12.3 s``, ``4.5 min``, ``1.5 h``."""
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


def fmt_rate(value: float | None) -> str:
    """A rate in [0, 1] to two decimals."""
    return "—" if value is None or not is_number(value) else f"{value:.2f}"


def fmt_ci(low: float | None, high: float | None) -> str:
    """A confidence interval ``[0.41, 0.79]`` (empty when unknown)."""
    if low is None or high is None:
        return ""
    return f"[{low:.2f}, {high:.2f}]"


def fmt_value(value: float | None, digits: int = 3) -> str:
    """A generic metric value (NLL, KL, kappa) to ``digits`` significant decimals."""
    if value is None or not is_number(value):
        return "—"
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
        return fmt_scientific(value, digits)
    return f"{value:.{digits}f}"


def fmt_delta(value: float | None, digits: int = 2) -> str:
    """A signed change: ``+0.12``, ``−0.40`` (true minus sign), ``—`` when unknown."""
    if value is None or not is_number(value):
        return "—"
    text = f"{abs(value):.{digits}f}"
    if float(text) == 0:
        return f"±{text}"
    return f"+{text}" if value > 0 else f"−{text}"


def fmt_ratio(value: float | None, relation: str = "=") -> str:
    """A defended/undefended ratio: ``4.0×``, ``≥ 9.8×``, ``≤ 0.5×``."""
    if value is None or not is_number(value):
        return "—"
    text = f"{value:.2g}×" if value < 1 else f"{value:.1f}×" if value < 100 else f"{value:,.0f}×"
    return text if relation == "=" else f"{relation} {text}"


def fmt_lr(value: object) -> str:
    """A learning rate as written in configs: ``3e-5``, ``1e-4``, ``0.01``; ``default`` when not given."""
    if not is_number(value):
        return "default" if value is None else str(value)
    number = float(value)  # type: ignore[arg-type]
    if number == 0 or 1e-2 <= abs(number) < 1e3:
        return f"{number:g}"
    mantissa, exponent = f"{number:.2e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"
