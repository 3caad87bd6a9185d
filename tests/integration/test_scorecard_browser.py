"""The scorecard site in a real browser (headless Chromium through Selenium and chromedriver).

Protects: every page of the shipped example opens from file:// with no console error and no request but the
page itself; the evidence-state badges render visibly distinct (colour and border style) with their names in
text; the totals shown equal scorecard.json; links between pages work; a quote carrying <script> stays text.
Saves screenshots for a person to look at (to $TAMPERLAB_SCREENSHOT_DIR, else the test's tmp_path).
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.browser

FIXTURE = Path(__file__).resolve().parents[1] / "unit" / "scorecard" / "scorecard_store.py"
PAYLOAD = "<script>window.__pwned = 1</script><img src=x onerror='window.__pwned = 2'>"


def _fixture_module():
    spec = importlib.util.spec_from_file_location("scorecard_store_fixture", FIXTURE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


def _screenshot_dir(tmp_path: Path) -> Path:
    out = Path(os.environ.get("TAMPERLAB_SCREENSHOT_DIR") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _full_page_png(drv, path: Path) -> None:
    metrics = drv.execute_cdp_cmd("Page.getLayoutMetrics", {})
    size = metrics.get("cssContentSize") or metrics["contentSize"]
    shot = drv.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {
                "x": 0,
                "y": 0,
                "width": size["width"],
                "height": min(size["height"], 16000),
                "scale": 1,
            },
        },
    )
    path.write_bytes(base64.b64decode(shot["data"]))


def _requests(drv) -> list[str]:
    urls = []
    for entry in drv.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def _open_clean(drv, url: str) -> list[str]:
    """Open ``url`` and return every URL the browser requested for it; fails on any console error."""
    drv.get("about:blank")
    drv.get_log("performance")
    drv.get_log("browser")
    drv.get(url)
    drv.find_element("css selector", "header.top h1")
    errors = [e for e in drv.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert not errors, (url, errors)
    assert drv.execute_script("return performance.getEntriesByType('resource').length") == 0, url
    return _requests(drv)


@pytest.fixture
def site(tmp_path):
    from tamperlab.scorecard import build_scorecard, example_path

    fixture = _fixture_module()
    store = fixture.default_run_store(tmp_path / "store.sqlite")
    evidence = yaml.safe_load(example_path("evidence_example.yaml").read_text())
    dev_b = next(s for s in evidence["subjects"] if s["id"] == "example-developer-b")
    dev_b["cells"]["incident-reporting"][0]["quote"] = PAYLOAD  # untrusted text must stay text
    evidence_path = tmp_path / "evidence.yaml"
    evidence_path.write_text(yaml.safe_dump(evidence, sort_keys=False))
    return build_scorecard(
        example_path("rubric_modification_readiness.yaml"), evidence_path, store, tmp_path / "site"
    )


def test_scorecard_site_renders_offline_with_distinct_badges(driver, site, tmp_path):
    shots = _screenshot_dir(tmp_path)
    index = (site.out_dir / "index.html").resolve().as_uri()

    requested = _open_clean(driver, index)
    assert requested, (
        "the performance log saw no request at all (not even the page): the check would be blind"
    )
    assert set(requested) == {index}, requested

    # Totals render and equal the JSON export, in rank order.
    shown = driver.execute_script(
        "return Array.from(document.querySelectorAll('#totals-table tr.subject')).map(function (r) {"
        " return [r.dataset.subject, r.querySelector('.total').textContent]; });"
    )
    expected = sorted(site.document["subjects"], key=lambda s: s["rank"])
    assert [s for s, _ in shown] == [s["id"] for s in expected]
    assert [t for _, t in shown] == [f"{s['total']:.1f}" for s in expected]
    assert driver.find_element("id", "snapshot-id").text == site.snapshot_id
    assert driver.find_element("id", "snapshot-date").text == site.date
    assert "Σ" in driver.find_element("id", "formula-text").text
    assert driver.find_elements("css selector", "#sensitivity-table tbody tr")

    # Badges: visible, named in text, and told apart by colour and border style.
    styles = driver.execute_script(
        "var out = {}; ['measured', 'committed', 'claimed', 'none'].forEach(function (s) {"
        " var b = document.querySelector('.legend .badge.' + s); var c = getComputedStyle(b);"
        " var r = b.getBoundingClientRect();"
        " out[s] = [b.textContent, c.backgroundColor, c.borderTopStyle, c.color, r.width, r.height]; });"
        " return out;"
    )
    assert styles["measured"][0].endswith("measured") and styles["committed"][0].endswith("committed")
    assert styles["claimed"][0].endswith("claimed") and styles["none"][0].endswith("no evidence")
    assert len({s[1] for s in styles.values()}) == 4, styles  # four backgrounds
    assert {s[2] for s in styles.values()} == {"solid", "dashed", "dotted"}, styles
    assert all(s[4] > 30 and s[5] > 10 for s in styles.values()), styles
    driver.save_screenshot(str(shots / "scorecard_index_top.png"))
    _full_page_png(driver, shots / "scorecard_index.png")

    # Every category page: clean, every cell rendered with a badge, reachable through the nav.
    cells = {(c["subject"], c["criterion"]): c for c in site.document["cells"]}
    for category in site.document["rubric"]["categories"]:
        page = (site.out_dir / f"category-{category['id']}.html").resolve().as_uri()
        assert set(_open_clean(driver, page)) == {page}
        rows = driver.execute_script(
            "return Array.from(document.querySelectorAll('tr.cell')).map(function (r) {"
            " return [r.dataset.subject, r.dataset.criterion, r.dataset.state,"
            " r.querySelector('.level').textContent, r.querySelector('.badge').offsetHeight]; });"
        )
        assert len(rows) == len(category["criteria"]) * len(site.document["subjects"])
        for subject, criterion, state, level, badge_height in rows:
            cell = cells[(subject, criterion)]
            assert state == cell["state"] and level == f"{cell['level']} / {cell['max_level']}"
            assert badge_height > 10
        _full_page_png(driver, shots / f"scorecard_{category['id']}.png")

    # Links work offline, and the injected quote is shown as text and never ran.
    driver.get(index)
    driver.find_element("css selector", "nav a[href='category-governance.html']").click()
    assert driver.current_url.endswith("category-governance.html")
    assert PAYLOAD in driver.execute_script("return document.body.textContent")
    assert driver.execute_script("return typeof window.__pwned") == "undefined"
    assert driver.execute_script("return document.querySelectorAll('script, img').length") == 0
