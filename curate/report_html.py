"""A self-contained HTML audit report: inline SVG plots and base64 thumbnails, no script, no CDN, no network.

Every number in the page comes from `AuditResult.metrics` (written alongside as JSON), so a figure in the report
can be reproduced from the CLI or the Python API.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from typing import Any

import polars as pl

from curate.analytics import AuditResult
from curate.lake import Lake

PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
           "#bab0ac")
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
h1{font-size:1.6rem}h2{border-bottom:1px solid #ddd;padding-bottom:.3rem;margin-top:2.2rem}
table{border-collapse:collapse;font-size:.85rem;margin:.6rem 0}td,th{border:1px solid #ddd;padding:.25rem .5rem;
text-align:left}th{background:#f5f5f5}.kpi{display:inline-block;margin:.3rem 1.2rem .3rem 0;padding:.5rem .8rem;
background:#f7f7fa;border-radius:6px}.kpi b{display:block;font-size:1.3rem}.bad{color:#b00}.good{color:#070}
.thumbs img{width:96px;height:96px;image-rendering:pixelated;margin-right:4px;border:1px solid #ccc}
figure{display:inline-block;margin:0 1rem 1rem 0}figcaption{font-size:.8rem;color:#555}
"""


def _esc(value: Any) -> str:
    return html.escape(str(value))


def bar_chart(labels: Sequence[Any], values: Sequence[float], *, title: str, width: int = 520, height: int = 220,
              colours: Sequence[str] | None = None) -> str:
    """A vertical bar chart as inline SVG."""
    n = max(1, len(values))
    vmax = max([float(v) for v in values] + [1e-12])
    bw = (width - 50) / n
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
             f'<title>{_esc(title)}</title>',
             f'<text x="4" y="14" font-size="12">{_esc(title)}</text>']
    for i, (lab, v) in enumerate(zip(labels, values, strict=True)):
        h = (height - 60) * float(v) / vmax
        x = 40 + i * bw
        colour = colours[i] if colours else PALETTE[0]
        parts.append(f'<rect x="{x:.1f}" y="{height - 30 - h:.1f}" width="{max(bw - 2, 1):.1f}" height="{h:.1f}" '
                     f'fill="{colour}"><title>{_esc(lab)}: {v:g}</title></rect>')
        if n <= 40:
            parts.append(f'<text x="{x + bw / 2:.1f}" y="{height - 16}" font-size="9" text-anchor="middle">'
                         f'{_esc(str(lab)[:10])}</text>')
    parts.append(f'<text x="4" y="{height - 30 - (height - 60):.0f}" font-size="9">{vmax:g}</text>')
    parts.append(f'<line x1="38" y1="{height - 30}" x2="{width - 8}" y2="{height - 30}" stroke="#999"/>')
    parts.append("</svg>")
    return "".join(parts)


def scatter(x: Sequence[float], y: Sequence[float], groups: Sequence[str], *, title: str, width: int = 520,
            height: int = 380, max_points: int = 5000) -> str:
    """A 2D scatter coloured by group, with a legend, as inline SVG (down-sampled to `max_points`)."""
    step = max(1, len(x) // max_points)
    xs, ys, gs = list(x)[::step], list(y)[::step], list(groups)[::step]
    if not xs:
        return ""
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    sx = (width - 150) / ((x1 - x0) or 1)
    sy = (height - 40) / ((y1 - y0) or 1)
    names = sorted(set(gs))
    colour = {g: PALETTE[i % len(PALETTE)] for i, g in enumerate(names)}
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
             f'<title>{_esc(title)}</title><text x="4" y="14" font-size="12">{_esc(title)}</text>']
    for a, b, g in zip(xs, ys, gs, strict=True):
        parts.append(f'<circle cx="{10 + (a - x0) * sx:.1f}" cy="{25 + (y1 - b) * sy:.1f}" r="2.5" '
                     f'fill="{colour[g]}" fill-opacity="0.75"/>')
    for i, g in enumerate(names[:20]):
        parts.append(f'<rect x="{width - 135}" y="{25 + i * 16}" width="10" height="10" fill="{colour[g]}"/>'
                     f'<text x="{width - 120}" y="{34 + i * 16}" font-size="10">{_esc(g[:22])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def histogram(values: Sequence[float], *, title: str, bins: int = 30, marker: float | None = None) -> str:
    vals = [float(v) for v in values]
    if not vals:
        return ""
    lo, hi = min(vals), max(vals)
    width = (hi - lo) / bins or 1.0
    counts = [0] * bins
    for v in vals:
        counts[min(bins - 1, int((v - lo) / width))] += 1
    labels = [f"{lo + i * width:.3g}" for i in range(bins)]
    svg = bar_chart(labels, counts, title=title)
    if marker is not None and hi > lo:
        x = 40 + (marker - lo) / (hi - lo) * (520 - 50)
        svg = svg.replace("</svg>", f'<line x1="{x:.1f}" y1="20" x2="{x:.1f}" y2="190" stroke="#e15759" '
                                    f'stroke-dasharray="4"/></svg>')
    return svg


def table_html(frame: pl.DataFrame, *, limit: int = 20) -> str:
    if frame.height == 0:
        return "<p><i>none</i></p>"
    cols = frame.columns
    rows = []
    for r in frame.head(limit).iter_rows():
        cells = "".join(f"<td>{_esc(_fmt(v))}</td>" for v in r)
        rows.append(f"<tr>{cells}</tr>")
    more = f"<p><i>{frame.height - limit} more rows in the JSON/API</i></p>" if frame.height > limit else ""
    return f"<table><tr>{''.join(f'<th>{_esc(c)}</th>' for c in cols)}</tr>{''.join(rows)}</table>{more}"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return ", ".join(str(x) for x in v[:6])
    return "" if v is None else str(v)


def _kpi(label: str, value: Any, *, target: float | None = None) -> str:
    cls = ""
    if target is not None and isinstance(value, int | float):
        cls = "good" if value >= target else "bad"
    shown = f"{value:.1%}" if isinstance(value, float) and 0 <= value <= 1 else _esc(value)
    extra = f" <small>(target &ge; {target:.0%})</small>" if target is not None else ""
    return f'<div class="kpi"><span>{_esc(label)}{extra}</span><b class="{cls}">{shown}</b></div>'


def thumbnail_data_uri(lake: Lake, episode_id: str, item: str | None, *, size: int = 96) -> str | None:
    """A base64 PNG of one keyframe (`camera@step`), for embedding in the page."""
    if not item or "@" not in item:
        return None
    camera, step = item.rsplit("@", 1)
    try:
        from curate.media import decode_image

        data = lake.frame_bytes(episode_id, int(step), camera)
        if data is None:
            return None
        img = decode_image(data)
    except Exception:
        return None
    img.thumbnail((size, size))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def render_report(result: AuditResult, lake: Lake | None = None, *, title: str = "Coverage audit") -> str:
    """The whole report as one HTML string."""
    m = result.metrics
    t = result.tables
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{_esc(title)}</title><style>{CSS}</style>"
           "</head><body>", f"<h1>{_esc(title)}</h1>"]
    info = m.get("lake", {})
    model = info.get("model", {})
    out.append(f"<p>Lake <code>{_esc(info.get('uri'))}</code> version {_esc(info.get('version'))}, slice "
               f"<code>{_esc(info.get('where') or 'all episodes')}</code>: {info.get('episodes')} episodes. "
               f"CLIP model <code>{_esc(model.get('model_id'))}</code> ({_esc(model.get('arch'))}, "
               f"{_esc(model.get('pretrained') or 'random')}).</p>")
    if "coverage" in m:
        c = m["coverage"]
        out.append("<h2>Coverage and long tail</h2>")
        out.append(_kpi("clusters", c["k"]) + _kpi("episodes in tail clusters", c["tail_share"])
                   + _kpi("largest cluster", c["largest_cluster_share"])
                   + _kpi("clusters from one dataset only", c["clusters_covered_by_one_dataset"]))
        cl = t["clusters"]
        colours = ["#e15759" if tail else PALETTE[0] for tail in cl["tail"].to_list()]
        out.append(bar_chart([str(x) for x in cl["cluster"].to_list()], cl["episodes"].to_list(),
                             title="episodes per cluster (largest first; red = tail)", colours=colours))
        eps = t["episode_clusters"]
        out.append(scatter(eps["x"].to_list(), eps["y"].to_list(), eps["dataset"].to_list(),
                           title="2D map of episode embeddings (PCA), coloured by dataset"))
        pivot = t["cluster_by_dataset"].pivot(on="dataset", index="cluster", values="episodes").fill_null(0)
        out.append("<h3>Which datasets cover which clusters</h3>" + table_html(pivot.sort("cluster"), limit=60))
    if "tags" in m:
        g = m["tags"]
        out.append("<h2>Zero-shot tags</h2>")
        out.append(_kpi("long-tail objects", g["long_tail_object_share"], target=g["targets"]["long_tail_object_share"])
                   + _kpi("cluttered scenes", g["cluttered_share"], target=g["targets"]["cluttered_share"]))
        for vname, dist in g["distributions"].items():
            items = list(dist.items())[:25]
            out.append(bar_chart([k for k, _ in items], [v for _, v in items], title=f"{vname} (share of episodes)"))
    if "language" in m:
        lang = m["language"]
        out.append("<h2>Language</h2>")
        out.append(_kpi("unique instructions", lang["unique_instructions"])
                   + _kpi("vocabulary", lang["vocabulary_size"])
                   + _kpi("missing or placeholder", lang["missing_or_placeholder_share"])
                   + _kpi("near-duplicate phrasing groups", lang["near_duplicate_groups"]))
        st = lang["style_shares"]
        out.append(bar_chart(list(st), list(st.values()), title="phrasing styles (share)"))
        verbs = lang["top_verbs"]
        out.append(bar_chart(list(verbs), list(verbs.values()), title="verbs"))
        objs = lang["top_objects"]
        out.append(bar_chart(list(objs), list(objs.values()), title="objects mentioned"))
        out.append("<h3>Near-duplicate phrasings</h3>" + table_html(t.get("language_near_duplicates", pl.DataFrame())))
    if "duplicates" in m:
        d = m["duplicates"]
        out.append("<h2>Duplicates</h2>")
        out.append(_kpi("near-duplicate groups", d["near"]["groups"]) + _kpi("removable (near)", d["near"]["removable"])
                   + _kpi("removable share", d["near"]["removable_share"]))
        if "exact" in d:
            out.append(_kpi("exact copies removable", d["exact"]["exact_removable"]))
        out.append(table_html(t["near_duplicates"].filter(pl.col("is_duplicate")), limit=25))
    if "actions" in m:
        a = m["actions"]
        out.append("<h2>Actions and quality</h2>")
        rows = [{"embodiment": k, **v} for k, v in a["per_embodiment"].items()]
        out.append(table_html(pl.DataFrame(rows)))
        ae = t["action_episodes"]
        out.append(histogram(ae["length"].to_list(), title="episode length (steps)"))
        out.append("<h3>Outlier episodes</h3>" + table_html(ae.filter(pl.col("outlier"))))
        out.append("<h3>Per-dimension statistics</h3>" + table_html(t["action_dimensions"], limit=80))
    if "shift" in m:
        s = m["shift"]
        out.append("<h2>Shift: reference vs target</h2>")
        out.append(f"<p>reference <code>{_esc(s.get('reference_filter'))}</code>, target "
                   f"<code>{_esc(s.get('target_filter'))}</code></p>")
        out.append(_kpi("target covered by reference", s["target_covered_share"])
                   + _kpi("Fréchet distance", round(s["frechet_distance"], 4))
                   + _kpi("median novelty", round(s["novelty_median"], 4))
                   + _kpi("over-represented clusters", s["over_represented"]))
        st = t["shift_target"]
        out.append(histogram(st["novelty"].to_list(), title="target novelty (dashed: coverage threshold)",
                             marker=s["coverage_threshold"]))
        out.append("<h3>Clusters by representation</h3>" + table_html(t["shift_clusters"]))
        out.append("<h3>Least-covered target episodes</h3><div class='thumbs'>")
        for r in st.head(12).iter_rows(named=True):
            uri = thumbnail_data_uri(lake, r["episode_id"], r.get("keyframe_item")) if lake is not None else None
            img = f"<img src='{uri}' alt='keyframe'>" if uri else ""
            out.append(f"<figure>{img}<figcaption>{_esc(r['episode_id'])}<br>novelty {r['novelty']:.4f}<br>"
                       f"{_esc((r.get('instruction') or '')[:40])}</figcaption></figure>")
        out.append("</div>")
    out.append("<h2>All numbers</h2><details><summary>metrics JSON</summary><pre>"
               + _esc(json.dumps(m, indent=1, default=str)) + "</pre></details></body></html>")
    return "".join(out)


def write_report(result: AuditResult, path: str, lake: Lake | None = None, *, json_path: str | None = None) -> None:
    """Write the HTML report (and the metrics JSON) atomically."""
    from pathlib import Path

    page = render_report(result, lake)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(target.suffix + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(target)
    if json_path:
        jp = Path(json_path)
        jp.parent.mkdir(parents=True, exist_ok=True)
        jp.write_text(json.dumps(result.metrics, indent=2, default=str))
