"""Line charts as inline SVG, written in Python so the report needs no plotting library and no script to draw.

The x axis is "symlog": ``log10(1 + x / c)`` with ``c`` the smallest positive budget, so milestones that
double (0, 1, 2, 4, ... 32 steps) are evenly spaced and step 0 still has a place. Every label that comes from
the store is escaped; the only markup is the chart's own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

from tamperlab.report.formatting import fmt_budget, fmt_scientific, is_number

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
DASHES = ("", "7 4", "2 3", "9 3 2 3", "4 2")
THRESHOLD_COLOR = "#B00020"

WIDTH, HEIGHT = 540, 300
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 56, 18, 14, 46


@dataclass
class Series:
    """One line: points (x, y), an optional band (x, low, high) drawn behind it, and a tooltip per point."""

    label: str
    color: str
    points: list[tuple[float, float]]
    band: list[tuple[float, float, float]] = field(default_factory=list)
    dash: str = ""
    width: float = 2.0
    tips: list[str] = field(default_factory=list)
    markers: bool = True
    band_opacity: float = 0.14


@dataclass
class HLine:
    """A horizontal reference line (the compliance threshold)."""

    y: float
    label: str
    color: str = THRESHOLD_COLOR


@dataclass(frozen=True)
class XScale:
    """A shared symlog x axis for one budget unit, so every chart on that unit lines up."""

    unit: str
    linear_below: float
    maximum: float
    data_values: tuple[float, ...] = ()

    @classmethod
    def fit(cls, unit: str, values: Sequence[float]) -> XScale:
        finite = sorted({float(v) for v in values if is_number(v) and v >= 0})
        positive = [v for v in finite if v > 0]
        linear_below = positive[0] if positive else 1.0
        maximum = finite[-1] if finite and finite[-1] > 0 else linear_below
        return cls(unit, linear_below, maximum, tuple(finite))

    def fraction(self, x: float) -> float:
        """Position of ``x`` along the axis, 0 at x = 0 and 1 at the maximum."""
        top = math.log10(1 + self.maximum / self.linear_below)
        return math.log10(1 + max(x, 0.0) / self.linear_below) / top if top > 0 else 0.0

    def ticks(self, pixels: float) -> list[float]:
        """Tick values: the milestones themselves when there are few, else 1-2-5 steps; thinned to fit."""
        if 0 < len(self.data_values) <= 12:
            candidates = list(self.data_values)
        else:
            candidates = [0.0] if self.data_values and self.data_values[0] == 0 else []
            exponent = math.floor(math.log10(self.linear_below))
            while 10**exponent <= self.maximum * 1.0001:
                for m in (1, 2, 5):
                    value = m * 10**exponent
                    if self.linear_below * 0.9999 <= value <= self.maximum * 1.0001:
                        candidates.append(float(value))
                exponent += 1
        kept: list[float] = []
        last_right = -math.inf
        for value in candidates:
            centre = self.fraction(value) * pixels
            half = 3.4 * len(tick_label(value, self.unit)) + 4
            if centre - half >= last_right:
                kept.append(value)
                last_right = centre + half
        return kept


def tick_label(value: float, unit: str) -> str:
    """An axis label: like the tables, but round FLOPs ticks drop their trailing zeros (``5×10¹¹``)."""
    return fmt_scientific(value, strip=True) if unit == "flops" else fmt_budget(value, unit)


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values covering [low, high]."""
    if not (is_number(low) and is_number(high)):
        return [0.0, 1.0]
    if high <= low:
        high = low + (abs(low) * 0.1 or 1.0)
    raw = (high - low) / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * 0.999)
    start = math.floor(low / step + 1e-9) * step
    ticks, value = [], start
    while value <= high + step * 0.5 and len(ticks) < 20:
        ticks.append(round(value, 12))
        value += step
    if ticks[-1] < high - 1e-12:
        ticks.append(round(value, 12))
    return ticks


def _fmt_y(value: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step))) if step > 0 else 2
    decimals = decimals + 1 if step * 10**decimals % 1 > 1e-9 else decimals
    return f"{value:.{min(decimals, 4)}f}"


def line_chart(
    series: Sequence[Series],
    x: XScale,
    *,
    x_label: str,
    y_label: str,
    title: str,
    y_range: tuple[float, float] | None = None,
    hlines: Sequence[HLine] = (),
    css_class: str = "",
    width: int = WIDTH,
    height: int = HEIGHT,
) -> str:
    """One chart as an ``<svg>`` string (fixed viewBox, scales to its container's width)."""
    plot_w = width - MARGIN_LEFT - MARGIN_RIGHT
    plot_h = height - MARGIN_TOP - MARGIN_BOTTOM

    if y_range is None:
        ys = [p[1] for s in series for p in s.points if is_number(p[1])]
        ys += [v for s in series for b in s.band for v in b[1:] if is_number(v)]
        ys += [h.y for h in hlines]
        low, high = (min(ys), max(ys)) if ys else (0.0, 1.0)
        pad = (high - low) * 0.08 or abs(high) * 0.05 or 0.5
        # A quantity that cannot be negative (NLL, KL) never gets a negative axis.
        y_ticks = nice_ticks(max(low - pad, 0.0) if low >= 0 else low - pad, high + pad)
        y_low, y_high = y_ticks[0], y_ticks[-1]
    else:
        y_low, y_high = y_range
        y_ticks = nice_ticks(y_low, y_high)
        y_ticks = [t for t in y_ticks if y_low - 1e-9 <= t <= y_high + 1e-9]
    y_step = y_ticks[1] - y_ticks[0] if len(y_ticks) > 1 else 1.0

    def px(value: float) -> float:
        return MARGIN_LEFT + x.fraction(value) * plot_w

    def py(value: float) -> float:
        span = (y_high - y_low) or 1.0
        clamped = min(max(value, y_low), y_high)
        return MARGIN_TOP + (1 - (clamped - y_low) / span) * plot_h

    out = [
        f'<svg class="plot {escape(css_class)}" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}"'
        f' role="img" aria-label="{escape(title)}" preserveAspectRatio="xMinYMin meet">',
        f"<title>{escape(title)}</title>",
        f'<rect class="plot-bg" x="{MARGIN_LEFT}" y="{MARGIN_TOP}" width="{plot_w}" height="{plot_h}"/>',
    ]
    for tick in y_ticks:
        y = py(tick)
        out.append(
            f'<line class="grid" x1="{MARGIN_LEFT}" x2="{MARGIN_LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}"/>'
        )
        out.append(
            f'<text class="tick" x="{MARGIN_LEFT - 6}" y="{y + 4:.1f}" '
            f'text-anchor="end">{_fmt_y(tick, y_step)}</text>'
        )
    for tick in x.ticks(plot_w):
        xx = px(tick)
        out.append(
            f'<line class="grid" x1="{xx:.1f}" x2="{xx:.1f}" y1="{MARGIN_TOP}" y2="{MARGIN_TOP + plot_h}"/>'
        )
        out.append(
            f'<text class="tick" x="{xx:.1f}" y="{MARGIN_TOP + plot_h + 16}" text-anchor="middle">'
            f"{escape(tick_label(tick, x.unit))}</text>"
        )
    out.append(
        f'<text class="axis-label" x="{MARGIN_LEFT + plot_w / 2:.1f}" y="{height - 8}" text-anchor="middle">'
        f"{escape(x_label)}</text>"
    )
    out.append(
        f'<text class="axis-label" transform="translate(14 {MARGIN_TOP + plot_h / 2:.1f}) rotate(-90)"'
        f' text-anchor="middle">{escape(y_label)}</text>'
    )

    for s in series:
        band = [b for b in s.band if all(is_number(v) for v in b)]
        if len(band) >= 2:
            upper = " ".join(f"{px(b[0]):.1f},{py(b[2]):.1f}" for b in band)
            lower = " ".join(f"{px(b[0]):.1f},{py(b[1]):.1f}" for b in reversed(band))
            out.append(
                f'<polygon class="band" points="{upper} {lower}" fill="{escape(s.color)}" '
                f'fill-opacity="{s.band_opacity:.2f}"/>'
            )
    for h in hlines:
        y = py(h.y)
        out.append(
            f'<line class="hline" x1="{MARGIN_LEFT}" x2="{MARGIN_LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}"'
            f' stroke="{escape(h.color)}" stroke-dasharray="6 4" stroke-width="1.5"/>'
        )
        out.append(
            f'<text class="hline-label" x="{MARGIN_LEFT + 4}" y="{y - 5:.1f}" fill="{escape(h.color)}">'
            f"{escape(h.label)}</text>"
        )
    for s in series:
        points = [
            (px(p[0]), py(p[1]), i) for i, p in enumerate(s.points) if is_number(p[0]) and is_number(p[1])
        ]
        if len(points) >= 2:
            path = " ".join(f"{a:.1f},{b:.1f}" for a, b, _ in points)
            dash = f' stroke-dasharray="{escape(s.dash)}"' if s.dash else ""
            out.append(
                f'<polyline class="line" points="{path}" fill="none" stroke="{escape(s.color)}"'
                f' stroke-width="{s.width}"{dash}/>'
            )
        if s.markers:
            for a, b, i in points:
                tip = s.tips[i] if i < len(s.tips) else s.label
                out.append(
                    f'<circle class="pt" cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{escape(s.color)}">'
                    f"<title>{escape(tip)}</title></circle>"
                )
    out.append("</svg>")
    return "".join(out)


def legend(series: Sequence[Series], hlines: Sequence[HLine] = (), band_note: str = "") -> str:
    """An HTML legend: a small line swatch per series (same colour and dash), reference lines, the band."""
    items = []
    for s in series:
        dash = f' stroke-dasharray="{escape(s.dash)}"' if s.dash else ""
        items.append(
            '<li><svg class="swatch" viewBox="0 0 30 10" width="30" height="10"><line x1="1" '
            'x2="29" y1="5" y2="5"'
            f' stroke="{escape(s.color)}" stroke-width="{s.width}"{dash}/></svg>{escape(s.label)}</li>'
        )
    for h in hlines:
        items.append(
            '<li><svg class="swatch" viewBox="0 0 30 10" width="30" height="10"><line x1="1" '
            'x2="29" y1="5" y2="5"'
            f' stroke="{escape(h.color)}" stroke-width="1.5" stroke-dasharray="6 '
            f'4"/></svg>{escape(h.label)}</li>'
        )
    if band_note:
        items.append(
            '<li><svg class="swatch" viewBox="0 0 30 10" width="30" height="10"><rect x="1" y="1" width="28"'
            f' height="8" fill="#555" fill-opacity="0.2"/></svg>{escape(band_note)}</li>'
        )
    return f'<ul class="legend">{"".join(items)}</ul>'
