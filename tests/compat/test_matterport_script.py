"""A matterport-style user script (Config subclass, utils.Dataset subclass over VIA polygon JSON,
training heads then all, find_last, detect, display_instances(ax=), compute_ap, load_image_gt,
run_graph) runs unchanged against this package; what it saw is checked against numpy."""

import json
import os
import subprocess
import sys
from pathlib import Path

import matterport_reference as ref
import numpy as np
import pytest
import skimage.draw
import skimage.io

SCRIPT = Path(__file__).with_name("matterport_balloon_script.py")
SIZE = 128  # = IMAGE_MAX_DIM of the script's config, so molding is the identity


def random_polygon(rng):
    """A convex-ish polygon (VIA shape_attributes) 20..50 px across inside the image."""
    cy, cx = rng.uniform(30, SIZE - 30, 2)
    radius = rng.uniform(10, 25)
    angles = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(5, 9))))
    ys = np.clip(cy + radius * np.sin(angles), 0, SIZE - 1).round().astype(int)
    xs = np.clip(cx + radius * np.cos(angles), 0, SIZE - 1).round().astype(int)
    return {"name": "polygon", "all_points_x": xs.tolist(), "all_points_y": ys.tolist()}


def write_via_subset(directory, count, seed, regions_as_list):
    """Images with 1-2 filled polygons each and a VIA via_region_data.json describing them."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True)
    annotations = {}
    for i in range(count):
        image = np.full((SIZE, SIZE, 3), 40, np.uint8)
        polygons = [random_polygon(rng) for _ in range(int(rng.integers(1, 3)))]
        for polygon in polygons:
            rr, cc = skimage.draw.polygon(polygon["all_points_y"], polygon["all_points_x"])
            image[rr, cc] = rng.integers(150, 256, 3)
        name = f"balloon_{i}.png"
        skimage.io.imsave(directory / name, image, check_contrast=False)
        regions = [{"shape_attributes": p, "region_attributes": {}} for p in polygons]
        annotations[f"{name}{i}"] = {
            "filename": name, "size": int((directory / name).stat().st_size),
            "regions": regions if regions_as_list else {str(k): r for k, r in enumerate(regions)},
            "file_attributes": {}}
    annotations["empty.png0"] = {"filename": "empty.png", "size": 0, "regions": {}}  # skipped
    (directory / "via_region_data.json").write_text(json.dumps(annotations))
    return annotations


@pytest.mark.slow
def test_matterport_balloon_script_runs_unchanged(tmp_path):
    dataset = tmp_path / "balloon"
    write_via_subset(dataset / "train", 4, seed=0, regions_as_list=False)  # VIA 1.x form
    val = write_via_subset(dataset / "val", 2, seed=1, regions_as_list=True)  # VIA 2.x form
    logs, report_path = tmp_path / "logs", tmp_path / "report.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, str(SCRIPT), "train", f"--dataset={dataset}",
                           f"--logs={logs}", f"--report={report_path}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(report_path.read_text())
    arrays = np.load(str(report_path) + ".npz")

    # Two trainings (heads, then all) wrote epochs 1 and 2 into one matterport-style run dir.
    runs = sorted(p.name for p in logs.iterdir() if p.is_dir())
    assert len(runs) == 1 and runs[0].startswith("balloon")
    assert report["checkpoints"] == ["mask_rcnn_balloon_0001.h5", "mask_rcnn_balloon_0002.h5"]
    assert report["weights_path"] == str(logs / runs[0] / "mask_rcnn_balloon_0002.h5")
    assert report["epoch"] == 2  # load_weights(find_last()) continues that run's epoch count

    # load_image_gt(..., use_mini_mask=False): full-size masks, boxes = the polygons' extents.
    first = next(a for a in val.values() if a["regions"])
    polygons = [r["shape_attributes"] for r in first["regions"]]
    masks = np.zeros((SIZE, SIZE, len(polygons)), bool)
    for i, p in enumerate(polygons):
        rr, cc = skimage.draw.polygon(p["all_points_y"], p["all_points_x"])
        masks[rr, cc, i] = True
    assert report["image_shape"] == [SIZE, SIZE, 3]
    assert report["gt_mask_shape"] == [SIZE, SIZE, len(polygons)]
    assert report["gt_class_id"] == [1] * len(polygons)
    np.testing.assert_array_equal(report["gt_bbox"], ref.extract_bboxes(masks))
    np.testing.assert_array_equal(arrays["gt_mask"], masks)
    meta = report["image_meta"]
    assert meta[1:4] == [SIZE, SIZE, 3] and meta[7:11] == [0, 0, SIZE, SIZE] and meta[11] == 1

    # detect() and run_graph agree: the same detections, unmolded by matterport's denorm_boxes.
    shapes = report["run_graph"]
    assert shapes["proposals"] == [1, 100, 4] and shapes["probs"] == [1, 100, 2]
    assert shapes["deltas"] == [1, 100, 2, 4] and shapes["detections"] == [1, 20, 6]
    assert shapes["rpn_class"] == [1, 4092, 2] and shapes["rpn_bbox"] == [1, 4092, 4]
    assert report["rpn_scores_sum"] > 0
    detections = np.asarray(report["run_graph_detections"]).reshape(-1, 6)
    boxes = ref.denorm_boxes(detections[:, :4], (SIZE, SIZE))
    keep = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) > 0
    # (an empty list when the two tiny epochs left no detection: compare as [N, 4] either way)
    np.testing.assert_array_equal(np.asarray(report["rois"]).reshape(-1, 4),
                                  boxes[keep].reshape(-1, 4))
    np.testing.assert_array_equal(report["class_ids"], detections[keep, 4])
    np.testing.assert_allclose(report["scores"], detections[keep, 5], rtol=1e-6)
    assert report["masks_shape"] == [SIZE, SIZE, int(keep.sum())]

    # display_instances drew into the script's axes (one box per detection) and returned them.
    assert report["returned_ax"] is True and report["ax_patches"] == int(keep.sum())
    assert (logs / "predictions.png").stat().st_size > 1000

    # compute_ap: matterport's numpy AP on the same inputs (equal unless it double-matched).
    args = (arrays["gt_bbox"], arrays["gt_class_id"], arrays["gt_mask"], arrays["rois"],
            arrays["class_ids"], arrays["scores"], arrays["masks"])
    assert 0.0 <= report["ap"] <= 1.0
    assert len(report["precisions"]) == len(report["scores"]) + 2
    if len(arrays["rois"]):
        _, pred_match, _ = ref.compute_matches(*args)
        matched = pred_match[pred_match > -1]
        if len(set(matched.tolist())) == len(matched):
            assert report["ap"] == pytest.approx(float(ref.compute_ap(*args)[0]), abs=1e-9)
