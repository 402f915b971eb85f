"""Write an analysis (``mrcnn.diagnose.aggregate.summarize`` dict) as report.json, PNGs, HTML.

Files in the output folder: ``report.json`` (everything, machine-readable), ``causes.png``
(miss causes and false-positive types), ``sizes.png`` (miss causes per COCO size),
``confusion.png`` (with the background row and column), ``recall.png`` (RPN recall against the
number of proposals) and ``report.html`` (one page showing them with the tables). Each file is
written to a temporary name first, so an interrupted write never leaves a broken report.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from mrcnn.diagnose.records import FP_TYPES, MISS_CAUSES, SIZES
from mrcnn.diagnose.tide import ERROR_TYPES

FIGURES = ("causes.png", "sizes.png", "confusion.png", "recall.png")
WORST_SHOWN = 20


def write_report(report: dict, out_dir) -> Path:
    """Write every file into ``out_dir`` (created); returns the path of report.json."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _atomic_text(out / "report.json", json.dumps(report, indent=1) + "\n")
    _figures(report, out)
    _atomic_text(out / "report.html", render_html(report))
    return out / "report.json"


def _atomic_text(path, text):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _figures(report, out):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    for name, draw in (("causes.png", _draw_causes), ("sizes.png", _draw_sizes),
                       ("confusion.png", _draw_confusion), ("recall.png", _draw_recall)):
        fig = draw(plt, report)
        tmp = out / (name + ".tmp.png")
        fig.savefig(tmp, dpi=90)
        plt.close(fig)
        tmp.replace(out / name)


def _draw_causes(plt, report):
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    causes = report["causes"]["counts"]
    left.barh(list(MISS_CAUSES)[::-1], [causes[c] for c in MISS_CAUSES][::-1], color="#c0504d")
    left.set_title(f"Missed GT by cause ({report['gt'] - causes['detected']} of {report['gt']})")
    types = report["fp_types"]["counts"]
    right.barh(list(FP_TYPES)[::-1], [types[t] for t in FP_TYPES][::-1], color="#4f81bd")
    right.set_title(f"False positives by type ({sum(types[t] for t in FP_TYPES)} of "
                    f"{report['detections']})")
    for ax in (left, right):
        ax.set_xlabel("count")
        ax.xaxis.get_major_locator().set_params(integer=True)
    return fig


def _draw_sizes(plt, report):
    fig, ax = plt.subplots(figsize=(8, 4), constrained_layout=True)
    bottom = np.zeros(len(SIZES))
    cmap = plt.get_cmap("tab20")
    for i, cause in enumerate(("detected",) + MISS_CAUSES):
        values = np.array([report["per_size"][s]["gt"][cause] for s in SIZES], float)
        if values.any():
            ax.bar(SIZES, values, bottom=bottom, label=cause, color=cmap(i))
            bottom += values
    ax.set_ylabel("GT objects")
    ax.set_title("Verdicts per COCO size")
    if bottom.any():
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def _draw_confusion(plt, report):
    labels = report["confusion"]["labels"]
    matrix = np.array(report["confusion"]["matrix"])
    side = max(4, 0.5 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(side, side), constrained_layout=True)
    ax.imshow(np.log1p(matrix), cmap="Blues")
    names = ["background / none"] + list(labels[1:])
    ax.set_xticks(range(len(labels)), [f"pred: {n}" for n in names], rotation=60, ha="right",
                  fontsize=7)
    ax.set_yticks(range(len(labels)), [f"GT: {n}" for n in names], fontsize=7)
    if len(labels) <= 25:
        for (i, j), value in np.ndenumerate(matrix):
            if value:
                ax.text(j, i, str(value), ha="center", va="center", fontsize=7)
    ax.set_title("Confusion matrix", fontsize=10)
    ax.set_xlabel("column 0: GT missed", fontsize=8)
    ax.set_ylabel("row 0: false positive on no GT", fontsize=8)
    return fig


def _draw_recall(plt, report):
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    recall = report["rpn_recall"]
    ax.plot(recall["proposals"], recall["recall"], marker="o")
    ax.set_xscale("log")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("number of proposals (post-NMS, by score)")
    ax.set_ylabel("GT covered (IoU >= 0.5)")
    ax.set_title("RPN recall")
    ax.grid(alpha=0.3)
    return fig


def _breakdown_table(report) -> str:
    """Rows: classes then sizes; columns: the verdicts and FP types that occur at all."""
    rows = [(name, v) for name, v in report["per_class"].items()]
    rows += [(f"size: {size}", report["per_size"][size]) for size in SIZES]
    causes = [c for c, n in report["causes"]["counts"].items() if n]
    types = [t for t, n in report["fp_types"]["counts"].items() if n]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in causes + [f"det: {t}" for t in types])
    body = "".join(
        f"<tr><td>{html.escape(name)}</td>"
        + "".join(f"<td>{v['gt'][c]}</td>" for c in causes)
        + "".join(f"<td>{v['detections'][t]}</td>" for t in types) + "</tr>"
        for name, v in rows)
    return f"<table><tr><th></th>{head}</tr>{body}</table>"


def render_html(report: dict) -> str:
    """The one-page report (figures by relative path, tables inline)."""
    e = html.escape
    status = "interrupted: partial report" if report.get("interrupted") else "complete"
    rows = "".join(
        f"<tr><td>{e(c)}</td><td>{report['causes']['counts'][c]}</td>"
        f"<td>{100 * report['causes']['shares'][c]:.1f}%</td></tr>" for c in report["causes"]["counts"])
    fp_rows = "".join(
        f"<tr><td>{e(t)}</td><td>{report['fp_types']['counts'][t]}</td>"
        f"<td>{100 * report['fp_types']['shares'][t]:.1f}%</td></tr>"
        for t in report["fp_types"]["counts"])
    dap = report["dap"]
    dap_rows = "".join(f"<tr><td>{e(k)}</td><td>{dap['box']['dap'][k]:.2f}</td>"
                       f"<td>{dap['mask']['dap'][k]:.2f}</td></tr>" for k in ERROR_TYPES)
    worst = "".join(
        f"<tr><td>{w['image_id']}</td><td>{e(w['reference'])}</td><td>{w['ap50']:.3f}</td>"
        f"<td>{e(', '.join(f'{k} {v}' for k, v in w['causes'].items() if k != 'detected'))}</td>"
        f"<td>{e(', '.join(f'{k} {v}' for k, v in w['fp_types'].items() if k != 'true_positive'))}"
        f"</td></tr>" for w in report["worst_images"][:WORST_SHOWN])
    failed = "".join(f"<li>{f['image_id']} {e(f['reference'])}: {e(f['error'])}</li>"
                     for f in report.get("failures", []))
    breakdown = _breakdown_table(report)
    figures = "".join(f'<img src="{name}" alt="{name}">' for name in FIGURES)
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>mrcnn analyze</title>
<style>body{{font-family:sans-serif;margin:1.5em}}table{{border-collapse:collapse;margin:0 2em 1em 0;
display:inline-table;vertical-align:top}}td,th{{border:1px solid #ccc;padding:2px 8px}}
img{{max-width:48%;margin:4px}}</style></head><body>
<h1>Why are objects missed? ({status})</h1>
<p>{report['images']} of {report.get('total_images', report['images'])} images,
{report['gt']} GT objects, {report['detections']} detections; mAP@0.5 (mask IoU)
{report['mAP50']:.3f}; box AP50 (TIDE) {dap['box']['ap']:.1f}, mask {dap['mask']['ap']:.1f};
{len(report.get('failures', []))} images failed. Weights: {e(str(report.get('weights', '')))}.</p>
<table><tr><th>GT verdict</th><th>count</th><th>share</th></tr>{rows}</table>
<table><tr><th>detection</th><th>count</th><th>share</th></tr>{fp_rows}</table>
<table><tr><th>error (TIDE)</th><th>box dAP</th><th>mask dAP</th></tr>{dap_rows}</table>
<div>{figures}</div>
<h2>Per class and size</h2>
{breakdown}
<h2>Worst images</h2>
<table><tr><th>id</th><th>image</th><th>AP50</th><th>miss causes</th><th>false positives</th></tr>
{worst}</table>
{'<h2>Failed images</h2><ul>' + failed + '</ul>' if failed else ''}
</body></html>
"""
