"""Matplotlib figures of images, detections, weights, PR curves, activations and trace stages.

Every function builds and returns a ``matplotlib.figure.Figure`` without touching pyplot's
global state, so it works under any backend (Agg included) and never imports Qt. Save with
``fig.savefig(path)``. Boxes are original-image pixels ``[y1, x1, y2, x2]``.
"""

from __future__ import annotations

import colorsys

import numpy as np
from matplotlib import patches
from matplotlib.figure import Figure

MASK_ALPHA = 0.5
# Most boxes drawn in one figure: more is unreadable (and slow with 6000 pre-NMS boxes).
MAX_DRAWN_BOXES = 100


def random_colors(count: int, bright: bool = True, seed: int = 0) -> list[tuple]:
    """``count`` distinct RGB colours in 0..1 (evenly spaced hues, shuffled reproducibly)."""
    brightness = 1.0 if bright else 0.7
    colors = [colorsys.hsv_to_rgb(i / max(count, 1), 1.0, brightness) for i in range(count)]
    order = np.random.default_rng(seed).permutation(count)
    return [colors[i] for i in order]


def apply_mask(image, mask, color, alpha: float = MASK_ALPHA) -> np.ndarray:
    """Copy of [H, W, 3] ``image`` with the [H, W] bool ``mask`` tinted by ``color`` (RGB 0..1)."""
    out = np.asarray(image, dtype=np.float32).copy()
    mask = np.asarray(mask, dtype=bool)
    for c in range(3):
        out[:, :, c] = np.where(mask, out[:, :, c] * (1 - alpha) + alpha * color[c] * 255,
                                out[:, :, c])
    return out


def _figure(rows: int = 1, cols: int = 1, size: float = 5.0, title: str | None = None):
    fig = Figure(figsize=(size * cols, size * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    if title:
        fig.suptitle(title)
    return fig, axes


def _figure_or_axes(ax, figsize):
    """(None, ax) to draw into the caller's axes, or (new Figure, its axes)."""
    if ax is not None:
        return None, ax
    fig = Figure(figsize=figsize)
    return fig, fig.subplots()


def _show_image(ax, image, title=None):
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    ax.imshow(image)
    height, width = image.shape[:2]
    ax.set_ylim(height + 0.5, -0.5)
    ax.set_xlim(-0.5, width + 0.5)
    ax.axis("off")
    if title:
        ax.set_title(title)


def _box_patch(box, color, style="solid", width=2.0):
    y1, x1, y2, x2 = (float(v) for v in box)
    return patches.Rectangle((x1, y1), x2 - x1, y2 - y1, linewidth=width, linestyle=style,
                             edgecolor=color, facecolor="none", alpha=0.8)


def _contours(ax, mask, color):
    from skimage.measure import find_contours

    # Pad so that masks touching the border still give closed contours.
    padded = np.pad(np.asarray(mask, np.uint8), 1)
    for contour in find_contours(padded, 0.5):
        ax.plot(contour[:, 1] - 1, contour[:, 0] - 1, color=color, linewidth=1)


def _mark_empty(ax, what):
    ax.text(0.5, 0.5, f"no {what}", transform=ax.transAxes, ha="center", va="center",
            color="white", backgroundcolor="black")


# ---- images and detections -------------------------------------------------------------------


def display_instances(image, boxes, masks, class_ids, class_names, scores=None, title="",
                      figsize=(8, 8), ax=None, show_mask=True, show_bbox=True, colors=None,
                      captions=None):
    """Image with each instance's box [N, 4], [H, W, N] mask and "class score" caption.

    Draws into ``ax`` and returns it when given (matterport's signature); otherwise returns a
    new Figure.
    """
    boxes = np.asarray(boxes).reshape(-1, 4)
    count = len(boxes)
    colors = colors or random_colors(count)
    fig, ax = _figure_or_axes(ax, figsize)
    masked = np.asarray(image, dtype=np.float32)
    for i in range(count):
        color = colors[i]
        if show_bbox:
            ax.add_patch(_box_patch(boxes[i], color, "dashed"))
        if captions is not None:
            caption = captions[i]
        else:
            class_id = int(class_ids[i])
            label = class_names[class_id] if 0 <= class_id < len(class_names) else str(class_id)
            caption = f"{label} {scores[i]:.3f}" if scores is not None else label
        ax.text(boxes[i][1], boxes[i][0] + 8, caption, color="w", size=9, backgroundcolor="none")
        if show_mask and masks is not None and np.asarray(masks).shape[-1] > i:
            mask = np.asarray(masks)[:, :, i]
            masked = apply_mask(masked, mask, color)
            _contours(ax, mask, color)
    _show_image(ax, masked, title)
    if not count:
        _mark_empty(ax, "instances")
    return ax if fig is None else fig


def draw_boxes(image, boxes=None, refined_boxes=None, masks=None, captions=None,
               visibilities=None, title="", ax=None, figsize=(8, 8), limit=MAX_DRAWN_BOXES):
    """Boxes before (dotted) and after (solid) refinement, joined by a line, with masks/captions.

    ``boxes`` / ``refined_boxes`` [N, 4] (either may be None), ``masks`` [N, h, w] or
    [H, W, N], ``visibilities`` [N] in {0, 1, 2} (0: skip, 1: faint, 2: full), first ``limit``.
    Draws into ``ax`` and returns it when given, else returns a new Figure.
    """
    count = len(boxes) if boxes is not None else len(refined_boxes) if refined_boxes is not None else 0
    count = min(count, limit)
    colors = random_colors(count)
    fig, ax = _figure_or_axes(ax, figsize)
    masked = np.asarray(image, dtype=np.float32)
    for i in range(count):
        visibility = 2 if visibilities is None else int(visibilities[i])
        if visibility == 0:
            continue
        color = colors[i] if visibility == 2 else (0.5, 0.5, 0.5)
        width = 2.0 if visibility == 2 else 1.0
        if boxes is not None:
            ax.add_patch(_box_patch(boxes[i], color, "dotted", width))
        if refined_boxes is not None:
            ax.add_patch(_box_patch(refined_boxes[i], color, "solid", width))
            if boxes is not None:
                ax.plot([boxes[i][1], refined_boxes[i][1]], [boxes[i][0], refined_boxes[i][0]],
                        color=color, linewidth=1)
        if captions is not None:
            anchor = refined_boxes[i] if refined_boxes is not None else boxes[i]
            ax.text(anchor[1], anchor[0], captions[i], size=8, color="w", verticalalignment="top",
                    bbox={"facecolor": color, "alpha": 0.5, "pad": 1, "edgecolor": "none"})
        if masks is not None:
            masks_array = np.asarray(masks)
            mask = masks_array[:, :, i] if masks_array.shape[:2] == masked.shape[:2] else None
            if mask is not None:
                masked = apply_mask(masked, mask, color)
    _show_image(ax, masked, title)
    if not count:
        _mark_empty(ax, "boxes")
    return ax if fig is None else fig


def display_top_masks(image, mask, class_ids, class_names, limit: int = 4) -> Figure:
    """The image and the union mask of each of the ``limit`` most frequent classes."""
    class_ids = np.asarray(class_ids).reshape(-1)
    unique = np.unique(class_ids)
    areas = [np.sum(mask[:, :, class_ids == c]) for c in unique]
    top = [c for _, c in sorted(zip(areas, unique), key=lambda p: -p[0]) if _ > 0][:limit]
    fig, axes = _figure(1, limit + 1, 3.0)
    _show_image(axes[0, 0], image, f"H x W = {image.shape[0]} x {image.shape[1]}")
    for i in range(limit):
        ax = axes[0, i + 1]
        ax.axis("off")
        if i < len(top):
            class_id = int(top[i])
            union = np.sum(mask[:, :, class_ids == class_id], axis=2)
            ax.imshow(union, cmap="Blues_r")
            ax.set_title(class_names[class_id] if class_id < len(class_names) else str(class_id))
        else:
            ax.imshow(np.zeros(image.shape[:2]), cmap="Blues_r", vmin=0, vmax=1)
            ax.set_title("-")
    return fig


def display_activations(values, max_channels: int = 16, title: str = "",
                        cmap: str = "viridis") -> Figure:
    """Grid of the first ``max_channels`` channels of an [h, w, c] activation (own colour scale each)."""
    values = np.asarray(values, dtype=np.float32)
    if values.ndim == 2:
        values = values[:, :, None]
    count = max(1, min(max_channels, values.shape[-1]))
    cols = int(np.ceil(np.sqrt(count)))
    rows = int(np.ceil(count / cols))
    fig, axes = _figure(rows, cols, 2.0, title or f"activations {values.shape[0]}x"
                        f"{values.shape[1]}x{values.shape[2]}")
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i < min(count, values.shape[-1]):
            ax.imshow(values[:, :, i], cmap=cmap)
            ax.set_title(f"ch {i}", fontsize=8)
    return fig


# ---- weights and evaluation ------------------------------------------------------------------


def display_weight_stats(stats, max_histograms: int = 12) -> Figure:
    """Per-tensor std and max |w| (log scale, flagged tensors in red) + histograms of a few.

    ``stats``: a list of ``mrcnn.stats.WeightStat`` (or a model, whose stats are computed).
    Flagged tensors get histograms first, then the largest kernels.
    """
    if not isinstance(stats, (list, tuple)):
        from mrcnn.stats import weight_stats

        stats = weight_stats(stats)
    hist_cols = 4
    hist_rows = int(np.ceil(min(max_histograms, len(stats)) / hist_cols)) if stats else 0
    fig = Figure(figsize=(14, 4 + 2.5 * hist_rows))
    grid = fig.add_gridspec(1 + hist_rows, hist_cols)
    overview = fig.add_subplot(grid[0, :])
    index = np.arange(len(stats))
    std = np.array([s.std for s in stats], dtype=np.float64)
    max_abs = np.array([max(abs(s.min), abs(s.max)) for s in stats], dtype=np.float64)
    floor = 1e-12
    overview.semilogy(index, np.maximum(std, floor), ".", label="std", markersize=4)
    overview.semilogy(index, np.maximum(max_abs, floor), ".", label="max |w|", markersize=4)
    flagged = [i for i, s in enumerate(stats) if s.flags]
    if flagged:
        overview.semilogy(flagged, np.maximum(max_abs[flagged], floor), "rx", label="flagged")
    overview.set_xlabel("weight tensor (layer order)")
    overview.set_title(f"{len(stats)} weight tensors, {len(flagged)} flagged")
    overview.legend(loc="upper right")
    kernels = sorted((i for i, s in enumerate(stats) if s.name == "kernel" and i not in flagged),
                     key=lambda i: -stats[i].size)
    chosen = (flagged + kernels + [i for i in index if i not in flagged and i not in kernels])
    for slot, i in enumerate(chosen[:hist_rows * hist_cols]):
        ax = fig.add_subplot(grid[1 + slot // hist_cols, slot % hist_cols])
        stat = stats[i]
        ax.bar(stat.bin_edges[:-1], stat.hist_counts, width=np.diff(stat.bin_edges), align="edge",
               color="tab:red" if stat.flags else "tab:blue")
        ax.set_title(f"{stat.layer}/{stat.name}", fontsize=8)
        ax.tick_params(labelsize=6)
    fig.tight_layout()
    return fig


def plot_precision_recall(ap, precisions, recalls, ax=None):
    """Precision-recall curve with the AP in the title (into ``ax``, returned, or a new Figure)."""
    fig, ax = _figure_or_axes(ax, (5.0, 5.0))
    ax.plot(recalls, precisions, color="tab:blue")
    ax.fill_between(recalls, precisions, alpha=0.2, step="post")
    ax.set_title(f"Precision-Recall curve. AP@50 = {ap:.3f}")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.05)
    ax.set_ylim(0, 1.05)
    return ax if fig is None else fig


def plot_overlaps(gt_class_ids, pred_class_ids, pred_scores, overlaps, class_names,
                  threshold: float = 0.5, ax=None):
    """IoU grid [P, G] of predictions (rows, with scores) vs ground truth (columns), into ``ax``
    (returned) or a new Figure."""
    gt_class_ids = np.asarray(gt_class_ids).reshape(-1)
    pred_class_ids = np.asarray(pred_class_ids).reshape(-1)
    overlaps = np.asarray(overlaps, dtype=np.float64).reshape(len(pred_class_ids),
                                                              len(gt_class_ids))
    fig, ax = _figure_or_axes(ax, (max(6, 0.6 * len(gt_class_ids) + 3),
                                   max(6, 0.4 * len(pred_class_ids) + 2)))
    image = ax.imshow(overlaps if overlaps.size else np.zeros((1, 1)), cmap="Blues", vmin=0, vmax=1)
    ax.figure.colorbar(image, ax=ax, shrink=0.8)

    def name(class_id):
        return class_names[int(class_id)] if 0 <= int(class_id) < len(class_names) else str(class_id)

    ax.set_yticks(np.arange(len(pred_class_ids)))
    ax.set_yticklabels([f"{name(c)} ({s:.2f})" for c, s in zip(pred_class_ids, pred_scores)],
                       fontsize=7)
    ax.set_xticks(np.arange(len(gt_class_ids)))
    ax.set_xticklabels([name(c) for c in gt_class_ids], rotation=90, fontsize=7)
    for i in range(overlaps.shape[0]):
        for j in range(overlaps.shape[1]):
            value = overlaps[i, j]
            if value > 0.05:
                label = "match" if value >= threshold and pred_class_ids[i] == gt_class_ids[j] \
                    else "wrong" if value >= threshold else ""
                ax.text(j, i, f"{value:.2f}\n{label}", ha="center", va="center", fontsize=6,
                        color="white" if value > 0.5 else "black")
    ax.set_xlabel("ground truth")
    ax.set_ylabel("predictions and scores")
    ax.set_title("overlaps (IoU)")
    return ax if fig is None else fig


# ---- more of matterport's visualize ---------------------------------------------------------


def display_images(images, titles=None, cols=4, cmap=None, norm=None, interpolation=None):
    """A Figure with the images in a grid of ``cols`` columns, titled."""
    titles = titles if titles is not None else [""] * len(images)
    rows = max(1, int(np.ceil(len(images) / cols)))
    fig, axes = _figure(rows, cols, 3.5)
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i < len(images):
            ax.set_title(titles[i], fontsize=9)
            ax.imshow(np.asarray(images[i]).astype(np.uint8) if cmap is None else images[i],
                      cmap=cmap, norm=norm, interpolation=interpolation)
    return fig


def display_differences(image, gt_box, gt_class_id, gt_mask, pred_box, pred_class_id,
                        pred_score, pred_mask, class_names, title="", ax=None, show_mask=True,
                        show_box=True, iou_threshold=0.5, score_threshold=0.5):
    """GT (green) and predictions (red, captioned "score / IoU" of their match or best GT)."""
    from mrcnn.evaluate import compute_matches

    order = np.argsort(np.asarray(pred_score))[::-1]  # compute_matches' order, so rows align
    pred_box, pred_class_id = np.asarray(pred_box)[order], np.asarray(pred_class_id)[order]
    pred_score, pred_mask = np.asarray(pred_score)[order], np.asarray(pred_mask)[..., order]
    gt_match, pred_match, overlaps = compute_matches(
        gt_box, gt_class_id, gt_mask, pred_box, pred_class_id, pred_score, pred_mask,
        iou_threshold=iou_threshold, score_threshold=score_threshold)
    gt_count, pred_count = len(gt_match), len(pred_match)
    colors = [(0, 1, 0, .8)] * gt_count + [(1, 0, 0, 1)] * pred_count
    captions = [""] * gt_count + [
        f"{pred_score[i]:.2f} / "
        f"{overlaps[i, int(pred_match[i])] if pred_match[i] > -1 else overlaps[i].max(initial=0):.2f}"
        for i in range(pred_count)]
    return display_instances(
        image, np.concatenate([np.reshape(gt_box, (-1, 4))[:gt_count], pred_box[:pred_count]]),
        np.concatenate([np.asarray(gt_mask)[..., :gt_count], pred_mask[..., :pred_count]], -1),
        np.concatenate([np.asarray(gt_class_id)[:gt_count], pred_class_id[:pred_count]]),
        class_names, ax=ax, show_bbox=show_box, show_mask=show_mask, colors=colors,
        captions=captions,
        title=title or "Ground Truth and Detections\n GT=green, pred=red, captions: score/IoU")


def draw_rois(image, rois, refined_rois, mask, class_ids, class_names, limit=10, ax=None):
    """Up to ``limit`` ROIs (chosen reproducibly) [N, 4] pixels and their refinements; positive
    ones (class id > 0) drawn with their [N, h, w] mask pasted into the ROI."""
    from mrcnn.imaging import unmold_mask

    rois, class_ids = np.asarray(rois), np.asarray(class_ids)
    ids = np.arange(len(rois))
    if len(ids) > limit:
        ids = np.sort(np.random.default_rng(0).choice(ids, limit, replace=False))
    masks = np.stack([unmold_mask(mask[i], rois[i][:4].astype(np.int32), image.shape)
                      for i in ids], axis=-1) if len(ids) else None
    title = (f"Showing {len(ids)} random ROIs out of {len(rois)}" if len(rois) > limit
             else f"{len(ids)} ROIs")
    return draw_boxes(image, rois[ids], np.asarray(refined_rois)[ids], masks,
                      captions=[class_names[int(c)] for c in class_ids[ids]],
                      visibilities=np.where(class_ids[ids] > 0, 2, 0), title=title, ax=ax)


def draw_box(image, box, color):
    """Draw a 2-pixel box ``[y1, x1, y2, x2]`` into the [H, W, C] array ``image`` (in place, as
    matterport) and return it."""
    y1, x1, y2, x2 = (int(v) for v in box)
    image[y1:y1 + 2, x1:x2] = color
    image[y2:y2 + 2, x1:x2] = color
    image[y1:y2, x1:x1 + 2] = color
    image[y1:y2, x2:x2 + 2] = color
    return image


def display_table(table):
    """HTML of a table (a list of rows), shown in a notebook when IPython is running; returned."""
    import html

    rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row)
                   + "</tr>" for row in table)
    markup = f"<table>{rows}</table>"
    try:
        from IPython import get_ipython
        from IPython.display import HTML, display
    except ImportError:
        return markup
    if get_ipython() is not None:
        display(HTML(markup))
    return markup


# ---- trace stages (mrcnn.visualize_stages) ----------------------------------------------------


def stage_figure(trace, stage_key: str) -> Figure:
    """A figure for one stage of a ``Trace`` (every key of ``mrcnn.trace_data`` is supported)."""
    from mrcnn.visualize_stages import stage_figure as draw_stage

    return draw_stage(trace, stage_key)
