"""The static site: plain HTML with inline CSS, no script and no external resource of any kind.

Everything is rendered from the ``scorecard.json`` document, so the site shows exactly what is exported:
``index.html`` (totals, evidence-state legend, the formula, the sensitivity of the ranking, the categories)
and one ``category-<id>.html`` per category (every cell with its evidence). Evidence states are told apart by
colour, border style, a symbol and their name in text, so they survive greyscale printing and colour
blindness.
"""

from __future__ import annotations

import csv
import io
import json
from html import escape
from typing import Any

from tamperlab.scorecard.measures import format_number
from tamperlab.scorecard.scoring import COMPARE_SIGNS

STATE_LABELS = {
    "measured": ("●", "measured", "A query on the tamperlab store: the run ids and the figure are shown."),
    "committed": (
        "◆",
        "committed",
        "A published commitment; where the rubric asks, it names a threshold and what happens past it.",
    ),
    "claimed": ("○", "claimed", "A statement without evidence. A claim never outranks a measurement."),
    "none": ("–", "no evidence", "Looked for, nothing found: level 0."),
    "not-assessed": (
        "·",
        "not assessed",
        "Not applicable to this subject or not looked at: left out of its score, in neither the numerator"
        " nor the denominator.",
    ),
}

CSS = """
:root { --measured: #17663a; --committed: #1d4f91; --claimed: #8a5300; --none: #5f6368; --ink: #1b1f24;
        --muted: #5b6470; --line: #dde1e6; --bg: #f5f6f8; --accent: #2b5797; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 "DejaVu Sans", "Liberation Sans", system-ui, sans-serif; color: var(--ink);
       background: var(--bg); }
header.top { background: #1d2733; color: #fff; padding: 18px 32px 14px; }
header.top h1 { margin: 0 0 4px; font-size: 24px; font-weight: 700; }
header.top .meta { color: #c9d2dc; font-size: 13px; }
header.top .meta code { color: #fff; background: #33404f; padding: 1px 5px; border-radius: 3px; }
nav { background: #fff; border-bottom: 1px solid var(--line); padding: 8px 32px; font-size: 14px; }
nav a { margin-right: 16px; color: var(--accent); text-decoration: none; }
nav a.here { font-weight: 700; color: var(--ink); }
main { max-width: 1240px; margin: 0 auto; padding: 8px 32px 40px; }
h2 { font-size: 20px; margin: 28px 0 10px; border-bottom: 2px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 17px; margin: 0 0 6px; }
p { margin: 6px 0; }
.muted { color: var(--muted); }
.small { font-size: 13px; }
table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid var(--line); }
th, td { border-bottom: 1px solid var(--line); padding: 7px 10px; text-align: left; vertical-align: top; }
th { background: #eef1f4; font-size: 13px; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.num, .nowrap { white-space: nowrap; }
.total { font-size: 20px; font-weight: 700; }
.bar { height: 8px; background: #e6e9ed; border-radius: 4px; margin-top: 4px; min-width: 90px; }
.bar span { display: block; height: 8px; border-radius: 4px; background: var(--accent); }
.badge { display: inline-block; font-size: 11px; font-weight: 700; letter-spacing: .05em;
         text-transform: uppercase; padding: 1px 7px; border-radius: 3px; white-space: nowrap;
         line-height: 16px; vertical-align: 1px; }
.badge.measured { background: var(--measured); color: #fff; border: 2px solid var(--measured); }
.badge.committed { background: #e7effa; color: var(--committed); border: 2px solid var(--committed); }
.badge.claimed { background: #fff6e5; color: var(--claimed); border: 2px dashed var(--claimed); }
.badge.none { background: #fff; color: var(--none); border: 2px dotted var(--none); }
.badge.not-assessed { background: #fff; color: var(--muted); border: 1px dashed var(--line); }
.tag { display: inline-block; font-size: 11px; font-weight: 700; padding: 0 6px; border-radius: 3px;
       background: #fde68a; color: #5b3a00; letter-spacing: .05em; vertical-align: 1px; }
.kind { font-size: 12px; color: var(--muted); }
td.subject { min-width: 190px; }
.count { margin: 0 0 5px; white-space: nowrap; }
.count .n { font-variant-numeric: tabular-nums; font-weight: 700; margin-left: 2px; }
.banner { background: #fff8db; border: 1px solid #e8d48a; padding: 10px 14px; margin: 16px 0;
          border-radius: 4px; }
.legend { display: grid; grid-template-columns: max-content 1fr; gap: 6px 14px; background: #fff;
          border: 1px solid var(--line); padding: 12px 14px; }
.formula { background: #fff; border: 1px solid var(--line); padding: 12px 16px; }
.formula code { font-size: 14px; }
.formula table { border: none; width: auto; }
.formula td { border: none; padding: 2px 14px 2px 0; }
section.criterion { background: #fff; border: 1px solid var(--line); border-radius: 4px; padding: 14px 16px;
                    margin: 18px 0; }
.weight { font-size: 13px; background: #eef1f4; padding: 6px 10px; border-left: 3px solid var(--accent);
          margin: 6px 0 10px; }
.weight.zero { border-left-color: var(--none); }
ol.levels { margin: 6px 0 10px; padding-left: 0; list-style: none; font-size: 13px; }
ol.levels li { padding: 1px 0; }
ol.levels b { display: inline-block; min-width: 1.6em; }
ul.routes { margin: 4px 0 12px; padding-left: 18px; font-size: 13px; }
.item { border-left: 4px solid var(--line); padding: 4px 0 6px 10px; margin: 0 0 8px; }
.item.measured { border-left-color: var(--measured); }
.item.committed { border-left-color: var(--committed); }
.item.claimed { border-left-color: var(--claimed); border-left-style: dashed; }
.item.none { border-left-color: var(--none); border-left-style: dotted; }
.item.not-assessed { border-left-color: var(--line); border-left-style: dashed; }
.item .figure { font-weight: 600; }
.item blockquote { margin: 4px 0; padding: 2px 10px; border-left: 2px solid #c8ced6; color: #2d333a;
                   font-style: italic; }
.item dl { display: grid; grid-template-columns: max-content 1fr; gap: 0 10px; margin: 4px 0 0;
           font-size: 13px; }
.item dt { color: var(--muted); }
.item dd { margin: 0; overflow-wrap: anywhere; }
.why { font-size: 12px; color: var(--muted); }
.superseded { text-decoration: line-through; }
.level { white-space: nowrap; font-weight: 700; }
.leveltext { font-size: 12px; color: var(--muted); max-width: 220px; }
tr.changed td { background: #fff4e5; }
table.cells { table-layout: fixed; }
col.c-subject { width: 22%; } col.c-level { width: 17%; } col.c-points { width: 10%; }
.changed-mark { color: #a34700; font-weight: 700; }
code { font-family: "DejaVu Sans Mono", monospace; font-size: 12.5px; }
footer { max-width: 1240px; margin: 0 auto; padding: 0 32px 30px; font-size: 13px; color: var(--muted); }
"""


def e(value: Any) -> str:
    """HTML-escape anything (None becomes empty)."""
    return "" if value is None else escape(str(value), quote=True)


def badge(state: str) -> str:
    symbol, label, meaning = STATE_LABELS[state]
    return f'<span class="badge {state}" title="{e(meaning)}">{symbol} {e(label)}</span>'


def _num(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
"""The pages' Content-Security-Policy: no script, no resource from anywhere; only the inline style."""


def _page(doc: dict[str, Any], title: str, here: str, body: str) -> str:
    snap = doc["snapshot"]
    nav = [f'<a href="index.html"{" class=here" if here == "index" else ""}>Overview</a>']
    for cat in doc["rubric"]["categories"]:
        cls = " class=here" if here == cat["id"] else ""
        nav.append(f'<a href="category-{e(cat["id"])}.html"{cls}>{e(cat["title"])}</a>')
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{e(CSP)}">
<meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)} · {e(snap["title"])}</title>
<link rel="icon" href="data:,">
<style>{CSS}</style>
</head>
<body>
<header class="top">
<h1>{e(snap["title"])}</h1>
<div class="meta">Snapshot <code id="snapshot-id">{e(snap["id"])}</code>
 · dated <span id="snapshot-date">{e(snap["date"])}</span>
 · rubric <code>{e(snap["rubric"]["id"])}</code> version {e(snap["rubric"]["version"])}</div>
</header>
<nav>{"".join(nav)}</nav>
<main>
{body}
</main>
<footer>Every cell with its evidence: <a href="scorecard.json">scorecard.json</a> ·
<a href="scorecard.csv">scorecard.csv</a>. Built by tamperlab from the rubric, the evidence file and the
store; the page loads nothing from anywhere.</footer>
</body>
</html>
"""


def _subjects(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["id"]: s for s in doc["subjects"]}


def _subject_name(s: dict[str, Any]) -> str:
    tag = ' <span class="tag">EXAMPLE</span>' if s["example"] else ""
    return f"{e(s['name'])}{tag}"


def _ranking_text(doc: dict[str, Any], rank: list[list[str]]) -> str:
    subjects = _subjects(doc)
    return " &gt; ".join(" = ".join(e(subjects[s]["name"]) for s in group) for group in rank)


def _state_counts(doc: dict[str, Any], subject_id: str) -> str:
    counts: dict[str, int] = {}
    for cell in doc["cells"]:
        if cell["subject"] == subject_id:
            counts[cell["state"]] = counts.get(cell["state"], 0) + 1
    return "".join(
        f'<div class="count">{badge(s)} <span class="n">{counts[s]}</span></div>'
        for s in STATE_LABELS
        if s in counts
    )


def _index(doc: dict[str, Any]) -> str:
    cats = doc["rubric"]["categories"]
    parts: list[str] = []
    note = doc["snapshot"]["note"]
    if note:
        parts.append(f'<div class="banner">{e(note)}</div>')
    if any(s["example"] for s in doc["subjects"]):
        parts.append(
            '<div class="banner"><span class="tag">EXAMPLE</span> marks illustrative subjects: their '
            "evidence is invented to show how the rubric works and describes no real company.</div>"
        )

    head = "".join(
        f'<th class="num"><a href="category-{e(c["id"])}.html">{e(c["title"])}</a><br>'
        f'<span class="muted">W = {c["weight"]:g}</span></th>'
        for c in cats
    )
    rows = []
    for s in sorted(
        doc["subjects"], key=lambda s: (s["rank"], [x["id"] for x in doc["subjects"]].index(s["id"]))
    ):
        cat_cells = "".join(f'<td class="num">{_num(s["categories"][c["id"]])}</td>' for c in cats)
        rows.append(
            f'<tr class="subject" data-subject="{e(s["id"])}"><td class="num">{s["rank"]}</td>'
            f'<td class="subject">{_subject_name(s)}<br><span class="kind">{e(s["kind"])}</span></td>'
            f'<td class="num"><span class="total" data-total="{s["total"]:.6f}">{s["total"]:.1f}</span>'
            f'<div class="bar"><span style="width:{max(0.0, min(100.0, s["total"])):.1f}%"></span></div></td>'
            f"{cat_cells}<td class=small>{_state_counts(doc, s['id'])}</td></tr>"
        )
    parts.append(
        '<h2 id="totals">Totals</h2>'
        '<p class="muted small">Total and category scores on a 0–100 scale; the evidence column counts each '
        "subject's cells by the state of the evidence that decided them.</p>"
        '<table id="totals-table"><thead><tr><th class="num">Rank</th><th>Subject</th>'
        '<th class="num">Total</th>'
        f"{head}<th>Cells by evidence</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )

    legend = "".join(
        f"<div>{badge(s)}</div><div>{e(meaning)}</div>" for s, (_, _, meaning) in STATE_LABELS.items()
    )
    parts.append(
        f'<h2 id="states">Evidence states</h2><div class="legend">{legend}</div>'
        '<p class="muted small">The rubric decides how much each state earns; the states are never '
        "merged.</p>"
    )

    worked = "".join(
        f"<tr><td>{e(s['name'])}</td><td><code>T = {e(s['total_computation'])}</code></td></tr>"
        for s in sorted(doc["subjects"], key=lambda s: s["rank"])
    )
    lines = "".join(
        f"<tr><td>{e(x['name'])}</td><td><code>{e(x['formula'])}</code></td></tr>"
        for x in doc["formula"]["lines"]
    )
    parts.append(
        '<h2 id="formula">How the score is computed</h2>'
        f'<div class="formula" id="formula-text"><table>{lines}'
        f"<tr><td>this rubric</td><td><code>{e(doc['formula']['total'])}</code></td></tr>{worked}</table>"
        f"<p class=small>{e(doc['formula']['note'])}</p></div>"
    )

    crows = []
    for c in cats:
        crits = ", ".join(f"{e(k['title'])} ({k['weight']:g})" for k in c["criteria"])
        crows.append(
            f'<tr><td><a href="category-{e(c["id"])}.html">{e(c["title"])}</a></td>'
            f'<td class="num">{c["weight"]:g}</td>'
            f"<td>{e(c['reason'])}</td><td class=small>{crits}</td></tr>"
        )
    parts.append(
        '<h2 id="categories">Categories</h2><table><thead><tr><th>Category</th>'
        '<th class="num nowrap">Weight W</th>'
        "<th>Reason for the weight</th><th>Criteria (weight w)</th></tr></thead>"
        f"<tbody>{''.join(crows)}</tbody></table>"
    )
    parts.append(_sensitivity(doc))
    return "\n".join(parts)


def _sensitivity(doc: dict[str, Any]) -> str:
    rows = []
    changed = 0
    considered = 0
    for row in doc["sensitivity"]:
        label = f"{e(row['title'])} <span class=kind>({e(row['kind'])})</span>"
        if row["weight"] == 0:
            rows.append(
                f'<tr><td>{label}</td><td class="num">0</td><td colspan="2" class="muted">weight 0: '
                "tracked, not scored; scaling it changes nothing</td></tr>"
            )
            continue
        cells = []
        any_changed = False
        for v in row["variants"]:
            considered += 1
            if v["changed"]:
                changed += 1
                any_changed = True
                cells.append(
                    f'<td><span class="changed-mark">changes:</span> {_ranking_text(doc, v["ranking"])}</td>'
                )
            else:
                shift = "no total moves" if v["max_shift"] == 0 else f"totals move ≤ {v['max_shift']:.1f}"
                cells.append(f'<td class="muted">unchanged <span class="small">({shift})</span></td>')
        cls = ' class="changed"' if any_changed else ""
        rows.append(f'<tr{cls}><td>{label}</td><td class="num">{row["weight"]:g}</td>{"".join(cells)}</tr>')
    return (
        '<h2 id="sensitivity">Sensitivity of the ranking</h2>'
        f"<p>Current ranking: <b>{_ranking_text(doc, doc['ranking'])}</b>.</p>"
        '<p class="small muted">Each non-zero weight in turn is multiplied by 0.5 and by 1.5, all others '
        "held; "
        f"<span id=sensitivity-summary>{changed} of {considered} such changes alter the ranking</span>.</p>"
        '<table id="sensitivity-table"><thead><tr><th>Weight</th><th class="num">Now</th><th>× 0.5</th>'
        f"<th>× 1.5</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _route_text(route: dict[str, Any]) -> str:
    state = route["state"]
    desc = f" — {e(route['description'])}" if route.get("description") else ""
    if route["id"] != state:  # named alternatives: evidence items say which one they are for
        desc = f" <span class=small>(route <code>{e(route['id'])}</code>)</span>{desc}"
    if state == "measured":
        args = ", ".join(
            f"{k}={format_number(v) if isinstance(v, float) else v}" for k, v in sorted(route["args"].items())
        )
        call = f"{route['measure']}({args})" if args else route["measure"]
        grades = "; ".join(
            f"{COMPARE_SIGNS[route['compare']]} {format_number(g['threshold'])} → level {g['level']}"
            for g in sorted(route["grades"], key=lambda g: -g["level"])
        )
        return (
            f"{badge(state)} <code>{e(call)}</code>: {e(grades)}; otherwise level {route['otherwise']}{desc}"
        )
    needs = ""
    if state == "committed":
        needs = (
            "; must name a threshold and what happens past it"
            if route["require_threshold"]
            else "; a documented practice, no threshold needed"
        )
    return f"{badge(state)} up to level {route['max_level']}{needs}{desc}"


def _item(item: dict[str, Any], weightless: bool) -> str:
    state = item["state"]
    head = badge(state)
    if item["route"] and item["route"] != state:
        head += f' <span class="small muted">route <code>{e(item["route"])}</code></span>'
    level_cls = "superseded" if item["superseded"] else ""
    head += f' <span class="small {level_cls}">level {item["level"]}</span>'
    body = []
    if item["figure"]:
        body.append(f'<div class="figure">{e(item["figure"]["text"])}</div>')
    if item["quote"]:
        body.append(f"<blockquote>“{e(item['quote'])}”</blockquote>")
    facts = []
    if item["threshold"]:
        facts.append(("Threshold", e(item["threshold"])))
    if item["consequence"]:
        facts.append(("Past it", e(item["consequence"])))
    if item["run_ids"]:
        facts.append(("Runs", ", ".join(f"<code>{e(r)}</code>" for r in item["run_ids"])))
    if item["figure"] and item["figure"]["eval_ids"]:
        # Evaluation ids start with their run's id; the part after it is what tells them apart.
        prefixes = tuple(f"{r}/" for r in item["run_ids"])
        ids = [
            x[len(p) :] if (p := next((q for q in prefixes if x.startswith(q)), "")) else x
            for x in item["figure"]["eval_ids"]
        ]
        shown = ", ".join(f"<code>{e(x)}</code>" for x in ids[:3])
        facts.append(("Evaluations", shown + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")))
    if item["sources"]:
        facts.append(("Sources", "; ".join(e(s) for s in item["sources"])))
    facts.append(("Date", e(item["date"]) if item["date"] else '<span class="muted">not dated</span>'))
    if item["note"]:
        facts.append(("Note", e(item["note"])))
    reply = (
        e(item["right_of_reply"]) if item["right_of_reply"] else '<span class="muted">none received</span>'
    )
    facts.append(("Right of reply", reply))
    body.append("<dl>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>")
    body.append(f'<div class="why">{e(item["explanation"])}</div>')
    return f'<div class="item {state}" data-state="{state}">{head}{"".join(body)}</div>'


def _category(doc: dict[str, Any], cat: dict[str, Any]) -> str:
    subjects = doc["subjects"]
    cells = {(c["subject"], c["criterion"]): c for c in doc["cells"]}
    parts = [f"<h2>{e(cat['title'])}</h2>"]
    if cat.get("description"):
        parts.append(f"<p>{e(cat['description'])}</p>")
    zero = " zero" if cat["weight"] == 0 else ""
    tracked = " (tracked, not scored)" if cat["weight"] == 0 else ""
    parts.append(
        f'<div class="weight{zero}"><b>Category weight W = {cat["weight"]:g}</b>{tracked}. '
        f"{e(cat['reason'])}</div>"
    )
    srows = "".join(
        f"<tr><td>{_subject_name(s)}</td><td class=num>{_num(s['categories'][cat['id']])}</td>"
        f"<td><code>S = {e(s['computation'][cat['id']])}</code></td></tr>"
        for s in subjects
    )
    parts.append(
        '<table class="category-scores"><thead><tr><th>Subject</th><th class="num">Category score S</th>'
        f"<th>Computation (w × level/max … ÷ Σ w, × 100)</th></tr></thead><tbody>{srows}</tbody></table>"
    )
    for crit in cat["criteria"]:
        weightless = crit["weight"] == 0 or cat["weight"] == 0
        w_line = (
            f'<div class="weight zero"><b>Weight w = 0: tracked, not scored.</b> {e(crit["reason"])}</div>'
            if crit["weight"] == 0
            else f'<div class="weight"><b>Weight w = {crit["weight"]:g}.</b> {e(crit["reason"])}</div>'
        )
        levels = "".join(f"<li><b>{i}</b> {e(text)}</li>" for i, text in enumerate(crit["levels"]))
        routes = "".join(
            f"<li>{'<b>or</b> ' if i else ''}{_route_text(r)}</li>" for i, r in enumerate(crit["award"])
        )
        rows = []
        for s in subjects:
            cell = cells[(s["id"], crit["id"])]
            items = "".join(_item(i, weightless) for i in cell["items"])
            pts = (
                '<span class="muted">— (tracked)</span>'
                if not cell["scored"]
                else f"{cell['points']:.2f} <span class='muted'>of {cell['weight']:g}</span>"
            )
            rows.append(
                f'<tr class="cell" data-subject="{e(s["id"])}" data-criterion="{e(crit["id"])}" '
                f'data-state="{e(cell["state"])}"><td>{_subject_name(s)}<br>{badge(cell["state"])}</td>'
                f'<td><span class="level">{cell["level"]} / {cell["max_level"]}</span>'
                f'<div class="leveltext">{e(cell["level_text"])}</div></td><td class="num">{pts}</td>'
                f"<td>{items}</td></tr>"
            )
        parts.append(
            f'<section class="criterion" id="{e(crit["id"])}"><h3>{e(crit["title"])}</h3>'
            + (f"<p>{e(crit['description'])}</p>" if crit.get("description") else "")
            + w_line
            + f'<div class="small"><b>Written levels</b></div><ol class="levels">{levels}</ol>'
            + '<div class="small"><b>Awarded by</b> (the best route wins)</div>'
            + f'<ul class="routes">{routes}</ul>'
            + '<table class="cells"><colgroup><col class="c-subject"><col class="c-level">'
            + '<col class="c-points"><col></colgroup>'
            + "<thead><tr><th>Subject (deciding state)</th><th>Level</th>"
            + '<th class="num nowrap">Points w × f</th>'
            + f"<th>Evidence</th></tr></thead><tbody>{''.join(rows)}</tbody></table></section>"
        )
    return "\n".join(parts)


def render_pages(doc: dict[str, Any]) -> dict[str, str]:
    """Every HTML page of the site, by file name."""
    pages = {"index.html": _page(doc, "Overview", "index", _index(doc))}
    for cat in doc["rubric"]["categories"]:
        pages[f"category-{cat['id']}.html"] = _page(doc, cat["title"], cat["id"], _category(doc, cat))
    return pages


def render_json(doc: dict[str, Any]) -> str:
    """The whole document, keys sorted, for machines and for diffs between snapshots."""
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


CSV_COLUMNS = [
    "snapshot_id",
    "date",
    "subject_id",
    "subject_name",
    "subject_kind",
    "example",
    "category_id",
    "category_weight",
    "criterion_id",
    "criterion_weight",
    "scored",
    "state",
    "route",
    "level",
    "max_level",
    "fraction",
    "points",
    "figure",
    "run_ids",
    "quote",
    "sources",
    "evidence_date",
    "right_of_reply",
    "all_states",
]


def render_csv(doc: dict[str, Any]) -> str:
    """One row per cell: the deciding evidence item's fields, plus every item's state."""
    subjects = _subjects(doc)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for cell in doc["cells"]:
        s = subjects[cell["subject"]]
        deciding = cell["items"][cell["deciding_item"]]
        writer.writerow(
            {
                "snapshot_id": doc["snapshot"]["id"],
                "date": doc["snapshot"]["date"],
                "subject_id": s["id"],
                "subject_name": s["name"],
                "subject_kind": s["kind"],
                "example": s["example"],
                "category_id": cell["category"],
                "category_weight": cell["category_weight"],
                "criterion_id": cell["criterion"],
                "criterion_weight": cell["weight"],
                "scored": cell["scored"],
                "state": cell["state"],
                "route": cell["route"] or "",
                "level": cell["level"],
                "max_level": cell["max_level"],
                "fraction": cell["fraction"],
                "points": cell["points"],
                "figure": deciding["figure"]["text"] if deciding["figure"] else "",
                "run_ids": " ".join(deciding["run_ids"]),
                "quote": deciding["quote"] or "",
                "sources": "; ".join(deciding["sources"]),
                "evidence_date": deciding["date"] or "",
                "right_of_reply": deciding["right_of_reply"] or "",
                "all_states": ";".join(i["state"] for i in cell["items"]),
            }
        )
    return out.getvalue()
