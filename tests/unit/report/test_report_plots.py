"""The SVG charts: the symlog axis, tick choice and escaping of labels."""

from __future__ import annotations

import pytest

from tamperlab.report.plots import HLine, Series, XScale, line_chart, nice_ticks


def test_symlog_axis_puts_zero_at_the_left_and_spaces_doublings_evenly():
    x = XScale.fit("steps", [0, 1, 2, 4, 8, 16, 32])
    assert x.fraction(0) == 0 and x.fraction(32) == pytest.approx(1)
    gaps = [x.fraction(b) - x.fraction(a) for a, b in ((4, 8), (8, 16), (16, 32))]
    assert max(gaps) - min(gaps) < 0.03  # log-like past the first milestone
    assert x.ticks(466) == [0, 1, 2, 4, 8, 16, 32]


def test_many_distinct_values_get_round_ticks_that_do_not_overlap():
    x = XScale.fit("flops", [0] + [1.3e11 * 2**i for i in range(14)])
    ticks = x.ticks(466)
    assert ticks[0] == 0 and all(f"{t:.0e}"[0] in "125" for t in ticks[1:])
    assert len(ticks) < 10


def test_nice_ticks_cover_the_range():
    ticks = nice_ticks(1.83, 2.71)
    assert ticks[0] <= 1.83 and ticks[-1] >= 2.71 and len(ticks) <= 8


def test_chart_escapes_labels_and_draws_band_threshold_and_points():
    s = Series(
        "<script>x</script>",
        "#000",
        [(0, 0.1), (8, 0.6)],
        band=[(0, 0.0, 0.3), (8, 0.4, 0.8)],
        tips=["a<b", "c"],
    )
    svg = line_chart(
        [s],
        XScale.fit("steps", [0, 8]),
        x_label="steps",
        y_label="rate",
        title="t<",
        y_range=(0, 1),
        hlines=[HLine(0.5, "threshold 0.5")],
    )
    assert "<script>" not in svg and "&lt;script&gt;" not in svg  # the series label is not drawn in the SVG
    assert "a&lt;b" in svg and "t&lt;" in svg
    assert svg.count("<circle") == 2 and 'class="band"' in svg and "threshold 0.5" in svg
