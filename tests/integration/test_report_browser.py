"""The HTML report in a real browser (headless Chromium through Selenium and chromedriver).

Protects: the plots render, the x-axis switch works, the page logs no console error, requests nothing but the
file itself, and a generation carrying <script> or <img onerror> never runs. Saves screenshots for a person to
look at (to $TAMPERLAB_SCREENSHOT_DIR, else the test's tmp_path).
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "report_store.py"


def _load_fixture_module():
    spec = importlib.util.spec_from_file_location("report_store_fixture", FIXTURES)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _screenshot_dir(tmp_path: Path) -> Path:
    out = Path(os.environ.get("TAMPERLAB_SCREENSHOT_DIR") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _png(drv, path: Path, clip: dict[str, float]) -> None:
    """A page region, beyond the viewport if need be (Chrome DevTools Page.captureScreenshot)."""
    clip = {**clip, "height": min(clip["height"], 16000), "scale": 1}
    shot = drv.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
    )
    path.write_bytes(base64.b64decode(shot["data"]))


def _section_pngs(drv, out: Path) -> list[Path]:
    """One screenshot per report section (section-<id>.png), for a person to look at."""
    rects = drv.execute_script(
        "return Array.from(document.querySelectorAll('main > section')).map(function (s) {"
        " var r = s.getBoundingClientRect();"
        " return [s.id, r.left + window.scrollX, r.top + window.scrollY, r.width, r.height]; });"
    )
    paths = []
    for section_id, x, y, width, height in rects:
        path = out / f"section-{section_id}.png"
        _png(
            drv, path, {"x": max(x - 12, 0), "y": max(y - 12, 0), "width": width + 24, "height": height + 24}
        )
        paths.append(path)
    return paths


def _full_page_png(drv, path: Path) -> None:
    metrics = drv.execute_cdp_cmd("Page.getLayoutMetrics", {})
    size = metrics.get("cssContentSize") or metrics["contentSize"]
    _png(drv, path, {"x": 0, "y": 0, "width": size["width"], "height": size["height"]})


def _rect(drv, element_id: str) -> dict[str, float]:
    x, y, width, height = drv.execute_script(
        "var r = document.getElementById(arguments[0]).getBoundingClientRect();"
        " return [r.left + window.scrollX, r.top + window.scrollY, r.width, Math.min(r.height, 2400)];",
        element_id,
    )
    return {"x": x, "y": y, "width": width, "height": height}


def _visible_plot_sizes(drv, unit: str) -> list[tuple[float, float]]:
    return drv.execute_script(
        "return Array.from(document.querySelectorAll('svg.plot.xu-' + arguments[0]))"
        ".map(function (s) { var r = s.getBoundingClientRect(); return [r.width, r.height]; });",
        unit,
    )


def test_report_renders_offline_without_running_model_output(driver, tmp_path):
    fixture = _load_fixture_module()
    store, run_id = fixture.build_report_store(tmp_path / "store.db")
    from tamperlab.report import write_report

    report = write_report(store, run_id, tmp_path / "report.html")
    url = report.resolve().as_uri()
    shots = _screenshot_dir(tmp_path)

    driver.get("about:blank")
    driver.get_log(
        "performance"
    )  # drain: what the browser loaded for itself before our page is not our concern
    driver.get_log("browser")
    driver.get(url)
    driver.find_element("id", "headline")

    # 1. Plots render: every chart on the default (steps) axis has a real size; the other units are hidden.
    steps = _visible_plot_sizes(driver, "steps")
    assert len(steps) >= 6, f"expected the overview, 4 per-arm and capability charts, got {len(steps)}"
    assert all(w > 200 and h > 100 for w, h in steps), steps
    assert all(w == 0 and h == 0 for w, h in _visible_plot_sizes(driver, "flops"))
    assert driver.execute_script("return document.querySelectorAll('svg.plot.xu-steps polyline').length") > 10
    driver.save_screenshot(str(shots / "report_top.png"))

    # 2. The x-axis switch: choosing FLOPs shows the FLOPs charts and hides the steps charts.
    driver.find_element("css selector", 'input[name="xunit"][value="flops"]').click()
    assert driver.execute_script("return document.documentElement.getAttribute('data-x')") == "flops"
    flops = _visible_plot_sizes(driver, "flops")
    assert flops and all(w > 200 and h > 100 for w, h in flops), flops
    assert all(w == 0 and h == 0 for w, h in _visible_plot_sizes(driver, "steps"))
    labels = driver.execute_script(
        "return Array.from(document.querySelectorAll('#fig-compliance-overview svg.xu-flops "
        "text.axis-label'))"
        ".map(function (t) { return t.textContent; });"
    )
    assert "training FLOPs" in labels
    driver.find_element("css selector", "a[href='#plots']").click()
    driver.save_screenshot(str(shots / "report_plots_flops.png"))
    driver.find_element("css selector", 'input[name="xunit"][value="steps"]').click()

    # 3. Untrusted model output: the payloads are in the page as text, and none of them ran.
    assert driver.execute_script("return typeof window.__pwned") == "undefined"
    page_text = driver.execute_script("return document.body.textContent")
    assert fixture.SCRIPT_PAYLOAD in page_text
    assert fixture.IMG_PAYLOAD in page_text
    assert driver.execute_script("return document.querySelectorAll('img').length") == 0
    assert driver.execute_script("return document.querySelectorAll('script').length") == 1  # the report's own

    driver.execute_script(
        "document.querySelector('details.arm-group').open = true;"
    )  # show one in the pictures
    sections = _section_pngs(driver, shots)
    assert len(sections) >= 6 and all(p.stat().st_size > 1000 for p in sections)
    _full_page_png(driver, shots / "report_full.png")

    # The sample filters work and reveal the payload rows when opened.
    driver.find_element("id", "samples-expand").click()
    shown = driver.execute_script(
        "return Array.from(document.querySelectorAll('details.sample-group')).filter(function (d) {"
        " return !d.hidden && d.open; }).length"
    )
    assert shown > 0
    assert driver.execute_script("return typeof window.__pwned") == "undefined"
    _png(driver, shots / "samples_expanded.png", _rect(driver, "samples"))

    # 4. No console errors (a blocked script or resource would log one here too).
    logs = driver.get_log("browser")
    errors = [entry for entry in logs if entry["level"] in ("SEVERE", "ERROR")]
    assert not errors, errors

    # 5. No network: the only request is the file itself; no resource timing entries at all.
    assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0
    requested = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            requested.append(message["params"]["request"]["url"])
    assert requested, (
        "the performance log saw no request at all (not even the page): the check would be blind"
    )
    assert set(requested) == {url}, requested
