"""The HTML report built from the fixture store: headline numbers, lower bounds, escaping, no network refs."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from tamperlab.errors import StoreError
from tamperlab.report import build_report, resolve_run_id, write_report
from tamperlab.store import Store


def _text(html: str) -> str:
    """The page's visible text (tags dropped, entities decoded), to assert what a reader sees."""

    class Collect(HTMLParser):
        def __init__(self) -> None:
            super().__init__(convert_charrefs=True)
            self.parts: list[str] = []
            self.skip = 0

        def handle_starttag(self, tag, attrs):
            if tag in ("script", "style"):
                self.skip += 1

        def handle_endtag(self, tag):
            if tag in ("script", "style"):
                self.skip -= 1

        def handle_data(self, data):
            if not self.skip:
                self.parts.append(data)

    parser = Collect()
    parser.feed(html)
    return " ".join(" ".join(parser.parts).split())


def _headline(html: str) -> str:
    start = html.index('<section id="headline">')
    return _text(html[start : html.index("</section>", start)])


def test_headline_shows_median_break_cost_and_spread_of_each_arm(report_store, report_html):
    store, run_id = report_store
    headline = _headline(report_html)
    aggregate = {r["arm"]: r for r in store.break_costs(run_id) if r["seed"] == -1}
    # undefended/full broke at a median of 3.14 steps (interpolated), seeds 2.3-3.7: shown as 3.1 and 2.3–3.7.
    assert aggregate["undefended/harmful-sft-full"]["broken"]
    assert f"{aggregate['undefended/harmful-sft-full']['steps']:.1f}" == "3.1"
    assert "undefended/harmful-sft-full" in headline
    assert "3.1 2.3–3.7" in headline
    assert "9.1 6.9–12" in headline  # the LoRA arm
    assert "3/3 seeds broke" in headline and "0/3 seeds broke" in headline


def test_unbroken_arm_is_shown_as_a_lower_bound_never_a_bare_number(report_html):
    headline = _headline(report_html)
    row = headline[headline.index("repnoise/harmful-sft-full") :]
    assert "not broken within budget" in row
    assert "≥ 32" in row and "≥ 256" in row and "≥ 24,576" in row
    # The bare budget must not appear as a measured cost anywhere in that row's cells.
    cells = re.findall(
        r"<td[^>]*>(.*?)</td>", report_html.split("repnoise/harmful-sft-full", 1)[1].split("</tr>")[0]
    )
    for cell in cells:
        if re.search(r"\b32\b", _text(cell)):
            assert "≥" in _text(cell), cell


def test_defended_to_undefended_ratio_is_a_lower_bound_and_incoherent_defense_is_not_resistance(report_html):
    headline = _headline(report_html)
    full = headline[headline.index("repnoise/harmful-sft-full") : headline.index("repnoise/harmful-sft-lora")]
    # ≥ 32 steps against a median of 3.14 undefended steps: the FLOPs ratio is ≥ 10.2x.
    assert "≥ 10.2× FLOPs" in full
    assert "vs undefended/harmful-sft-full" in full
    lora = headline[headline.index("repnoise/harmful-sft-lora") :]
    assert "incoherent" in lora and "not counted as resistance" in lora


def test_measurement_is_stated_next_to_the_numbers(report_html):
    headline = _headline(report_html)
    for fact in (
        "judge embedding",
        "builtin:harmful (test split), n=20 prompts",
        "0, 1, 2",
        "harmful compliance ≥ 0.5",
        "capability bound 0.1",
        "optimizer steps",
        "interpolated between milestones",
    ):
        assert fact in headline, fact


def test_immunization_table_flags_incoherent_defense(report_html):
    start = report_html.index('<section id="immunization">')
    section = report_html[start : report_html.index("</section>", start)]
    rows = section.split("<tr>")[2:]
    lora = next(r for r in rows if "harmful-sft-lora" in r)
    full = next(r for r in rows if "harmful-sft-full" in r)
    assert "incoherent" in lora and "resistance not credited" in lora
    assert "<s " in lora  # its resistance ratio is struck through
    assert "incoherent" not in full and "≥ 9.8×" in _text(full)


def _tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    """Every start tag a browser's tokenizer would see, with its attributes."""

    class Collect(HTMLParser):
        def __init__(self) -> None:
            super().__init__(convert_charrefs=True)
            self.tags: list[tuple[str, dict[str, str | None]]] = []

        def handle_starttag(self, tag, attrs):
            self.tags.append((tag, dict(attrs)))

    parser = Collect()
    parser.feed(html)
    return parser.tags


def test_model_output_is_escaped_so_it_cannot_run(report_html, report_fixture):
    for payload in (
        report_fixture.SCRIPT_PAYLOAD,
        report_fixture.IMG_PAYLOAD,
        report_fixture.BREAKOUT_PAYLOAD,
    ):
        assert payload not in report_html
        assert payload in _text(report_html)  # shown to the reader, as text
    assert "&lt;script&gt;window.__pwned = &#x27;script&#x27;;&lt;/script&gt;" in report_html
    assert "&lt;img src=x onerror=&quot;window.__pwned = &#x27;img&#x27;&quot;&gt;" in report_html
    tags = _tags(report_html)
    # Exactly one script element (the report's own), no image, and no inline event handler on any element.
    assert [t for t, _ in tags].count("script") == 1
    assert "img" not in [t for t, _ in tags]
    assert not [(t, a) for t, a in tags for name in a if name.lower().startswith("on")]
    # The prompt, a data set name and the command line are untrusted too.
    assert "<b>bold</b>" not in report_html and "&lt;b&gt;bold&lt;/b&gt;" in report_html
    assert "<i>set</i>" not in report_html and "&lt;i&gt;set&lt;/i&gt;" in report_html
    assert "note=&#x27;&lt;script&gt;" in report_html


def test_page_references_no_network_resource(report_html):
    assert not re.search(
        r"""(?:src|href|action|srcset|poster|data)\s*=\s*["']?\s*(?:https?:)?//""", report_html, re.I
    )
    assert not re.search(r"url\(\s*['\"]?\s*(?:https?:)?//", report_html, re.I)
    assert "@import" not in report_html
    assert "http://" not in report_html and "https://" not in report_html
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)"', report_html)
    assert (
        csp
        and "default-src &#x27;none&#x27;" in csp.group(1)
        and "connect-src &#x27;none&#x27;" in csp.group(1)
    )


def test_every_section_is_present(report_html):
    for section in ("headline", "immunization", "plots", "lineage", "judges", "samples", "provenance"):
        assert f'<section id="{section}">' in report_html
    # One SVG per chart per x unit: overview + 4 arms + NLL, KL, over-refusal, harmless refusal, incoherent.
    assert report_html.count('<svg class="plot') == 10 * 4
    assert 'value="flops"' in report_html and 'value="examples"' in report_html


def test_plots_carry_threshold_and_wilson_bands(report_html):
    assert "threshold 0.5" in report_html
    assert report_html.count('class="band"') >= 4 * 3 * 4  # 4 arms x 3 seeds x 4 units of Wilson bands
    assert "Wilson 95% interval" in report_html


def test_lineage_shows_each_model_with_edge_deltas(report_html):
    start = report_html.index('<section id="lineage">')
    lineage = _text(report_html[start : report_html.index("</section>", start)])
    assert "base m-base" in lineage and "safeguarded m-safe" in lineage and "repnoise m-repnoise" in lineage
    # The fixture's base model complies 95% of the time, the safeguarded model 5%: the edge says -0.90.
    assert "Δ compliance −0.90" in lineage
    assert "attacked: undefended/harmful-sft-full" in lineage
    assert "(start)" in lineage and "(+0." in lineage


def test_provenance_lists_what_is_needed_to_rerun(report_html):
    start = report_html.index('<section id="provenance">')
    prov = _text(report_html[start : report_html.index("</section>", start)])
    for fact in (
        "CC-BY-4.0",
        "emb-1",
        "kw-3",
        "2.13.0",
        "3.11.7",
        "NVIDIA H100 80GB",
        "90.5 min",
        "tamperlab run",
    ):
        assert fact in prov, fact
    assert '"capability_tolerance": 0.1' in prov


def test_judge_agreement_is_reported(report_html):
    start = report_html.index('<section id="judges">')
    judges = _text(report_html[start : report_html.index("</section>", start)])
    assert "embedding vs keyword" in judges and "Cohen's κ" in judges


def test_samples_cover_each_verdict_and_are_filterable(report_html):
    assert 'data-filter="arm"' in report_html and 'data-filter="verdict"' in report_html
    assert 'data-verdict="complied"' in report_html and 'data-verdict="refused"' in report_html
    assert 'data-disagree="yes"' in report_html


def test_write_report_is_atomic_and_replaces_the_old_file(report_store, tmp_path):
    store, run_id = report_store
    out = tmp_path / "out" / "report.html"
    out.parent.mkdir()
    out.write_text("old")
    assert write_report(store, run_id, out) == out
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]  # no temporary file left behind


def test_write_report_leaves_the_old_file_when_building_fails(report_store, tmp_path):
    store, _ = report_store
    out = tmp_path / "report.html"
    out.write_text("old")
    with pytest.raises(StoreError):
        write_report(store, "no-such-run", out)
    assert out.read_text() == "old"


def test_run_is_found_by_prefix_or_latest(report_store, tmp_path):
    store, run_id = report_store
    assert resolve_run_id(store, run_id[:6]) == run_id
    assert resolve_run_id(store, None) == run_id
    with pytest.raises(StoreError):
        resolve_run_id(Store(tmp_path / "empty.db"), None)


def test_report_of_an_unfinished_run_says_so_and_does_not_crash(tmp_path):
    store = Store(tmp_path / "partial.db")
    store.start_run("run-partial", "run", {"model": {"name": "tiny"}, "seeds": [0]}, None)
    html = build_report(store, "run-partial")
    assert "This run is <b>running</b>" in html
    assert "No break cost stored yet." in html and "No milestones stored yet." in html
