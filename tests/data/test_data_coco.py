"""CocoDataset on a tiny COCO JSON written here: polygons, both RLE kinds, crowd, empty images,
class subsets, every bad-input error, and the export_coco -> load_coco round trip."""

import json

import numpy as np
import pycocotools.mask as mask_utils
import pytest
import skimage.io

from mrcnn.boxes import extract_bboxes
from mrcnn.data import CocoDataset, DatasetError, ShapesDataset, build_coco_results, export_coco
from mrcnn.data.coco import annotation_to_mask

H, W = 30, 40


def _rect(y1, x1, y2, x2):
    """[H, W] bool with rows y1..y2-1 and columns x1..x2-1 set."""
    mask = np.zeros((H, W), bool)
    mask[y1:y2, x1:x2] = True
    return mask


def _rle(mask, compressed):
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    if compressed:
        return {"size": [H, W], "counts": rle["counts"].decode("ascii")}
    # Uncompressed RLE: run lengths in column-major order, starting with a run of zeros.
    flat = mask.flatten(order="F").astype(np.int8)
    counts, current, run = [], 0, 0
    for value in flat:
        if value == current:
            run += 1
        else:
            counts.append(run)
            current, run = value, 1
    counts.append(run)
    return {"size": [H, W], "counts": counts}


def _coco_dict():
    return {
        "images": [
            {"id": 10, "file_name": "a.png", "height": H, "width": W},
            {"id": 11, "file_name": "b.png", "height": H, "width": W},
            {"id": 12, "file_name": "empty.png", "height": H, "width": W},
        ],
        "categories": [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"},
                       {"id": 9, "name": "bird"}],
        "annotations": [
            # Polygon vertices on pixel corners: rows 5..14, columns 10..19.
            {"id": 1, "image_id": 10, "category_id": 3, "iscrowd": 0, "area": 100.0,
             "bbox": [10, 5, 10, 10], "segmentation": [[10, 5, 20, 5, 20, 15, 10, 15]]},
            {"id": 2, "image_id": 10, "category_id": 7, "iscrowd": 0, "area": 48.0,
             "bbox": [30, 20, 8, 6], "segmentation": _rle(_rect(20, 30, 26, 38), False)},
            {"id": 3, "image_id": 11, "category_id": 9, "iscrowd": 0, "area": 25.0,
             "bbox": [0, 0, 5, 5], "segmentation": _rle(_rect(0, 0, 5, 5), True)},
            {"id": 4, "image_id": 11, "category_id": 3, "iscrowd": 1, "area": 200.0,
             "bbox": [20, 10, 20, 10], "segmentation": _rle(_rect(10, 20, 20, 40), False)},
            # A degenerate polygon (zero area) is not an instance.
            {"id": 5, "image_id": 11, "category_id": 7, "iscrowd": 0, "area": 0.0,
             "bbox": [1, 1, 0, 0], "segmentation": [[1, 1, 1, 1, 1, 1]]},
        ],
    }


@pytest.fixture
def coco_files(tmp_path):
    image_dir = tmp_path / "images"
    image_dir.mkdir()
    for name in ("a.png", "b.png", "empty.png"):
        skimage.io.imsave(image_dir / name, np.full((H, W, 3), 50, np.uint8), check_contrast=False)
    json_path = tmp_path / "annotations.json"
    json_path.write_text(json.dumps(_coco_dict()))
    return json_path, image_dir


def _load(json_path, image_dir, class_ids=None):
    dataset = CocoDataset()
    coco = dataset.load_coco(str(json_path), str(image_dir), class_ids=class_ids,
                             return_coco=True)
    dataset.prepare()
    return dataset, coco


def test_all_classes_masks_crowd_and_empty_image(coco_files):
    dataset, coco = _load(*coco_files)
    assert dataset.class_names == ["BG", "cat", "dog", "bird"]
    assert [info["id"] for info in dataset.image_info] == [10, 11, 12]
    assert coco.getImgIds() == [10, 11, 12]

    masks, class_ids = dataset.load_mask(0)
    np.testing.assert_array_equal(class_ids, [1, 2])
    np.testing.assert_array_equal(masks[:, :, 0], _rect(5, 10, 15, 20))  # polygon
    np.testing.assert_array_equal(masks[:, :, 1], _rect(20, 30, 26, 38))  # uncompressed RLE

    masks, class_ids = dataset.load_mask(1)
    # Compressed RLE bird, then the crowd cat with a negative id; the degenerate dog is dropped.
    np.testing.assert_array_equal(class_ids, [3, -1])
    np.testing.assert_array_equal(masks[:, :, 0], _rect(0, 0, 5, 5))
    np.testing.assert_array_equal(masks[:, :, 1], _rect(10, 20, 20, 40))
    assert masks.dtype == bool and class_ids.dtype == np.int32

    masks, class_ids = dataset.load_mask(2)
    assert masks.shape == (H, W, 0) and class_ids.shape == (0,)
    image = dataset.load_image(2)
    assert image.shape == (H, W, 3) and image.dtype == np.uint8
    assert "annotations.json: image id 12" in dataset.image_reference(2)


def test_class_subset_keeps_only_images_with_those_classes(coco_files):
    dataset, _ = _load(*coco_files, class_ids=[7, 9])
    assert dataset.class_names == ["BG", "dog", "bird"]
    assert [info["id"] for info in dataset.image_info] == [10, 11]
    masks, class_ids = dataset.load_mask(0)
    np.testing.assert_array_equal(class_ids, [1])
    np.testing.assert_array_equal(masks[:, :, 0], _rect(20, 30, 26, 38))
    masks, class_ids = dataset.load_mask(1)
    np.testing.assert_array_equal(class_ids, [2])  # the crowd cat is not in the subset
    with pytest.raises(DatasetError, match=r"class_ids \[42\] are not categories"):
        CocoDataset().load_coco(str(coco_files[0]), str(coco_files[1]), class_ids=[3, 42])


def _write(tmp_path, data, name="annotations.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


def test_bad_json_errors_name_file_and_record(tmp_path):
    load = CocoDataset().load_coco
    with pytest.raises(DatasetError, match=r"bad\.json: malformed JSON at line 1 column 2"):
        load(_write(tmp_path, "{oops", "bad.json"), str(tmp_path))
    with pytest.raises(DatasetError, match=r"annotations\.json: missing required key\(s\) "
                                           r"\['annotations'\]"):
        load(_write(tmp_path, {"images": [], "categories": []}), str(tmp_path))
    with pytest.raises(FileNotFoundError, match="nowhere.json"):
        load(str(tmp_path / "nowhere.json"), str(tmp_path))

    data = _coco_dict()
    data["annotations"][0]["id"] = 17
    data["annotations"][0]["category_id"] = 99
    with pytest.raises(DatasetError) as error:
        load(_write(tmp_path, data), str(tmp_path))
    assert str(error.value) == "annotations.json: annotation id 17 refers to unknown category_id 99"

    data = _coco_dict()
    data["annotations"][1]["image_id"] = 555
    with pytest.raises(DatasetError, match="annotation id 2 refers to unknown image_id 555"):
        load(_write(tmp_path, data), str(tmp_path))

    data = _coco_dict()
    del data["images"][1]["height"]
    with pytest.raises(DatasetError, match=r"image id 11 is missing \['height'\]"):
        load(_write(tmp_path, data), str(tmp_path))

    data = _coco_dict()
    data["annotations"][2]["segmentation"] = {"size": [H + 1, W], "counts": "abc"}
    dataset = CocoDataset()
    dataset.load_coco(_write(tmp_path, data), str(tmp_path))
    dataset.prepare()
    with pytest.raises(DatasetError, match=r"annotation id 3: RLE size \[31, 40\] does not match"):
        dataset.load_mask(1)


def test_missing_image_file_names_file_and_record(coco_files, tmp_path):
    json_path, _ = coco_files
    dataset, _ = _load(json_path, tmp_path / "elsewhere")
    with pytest.raises(FileNotFoundError, match=r"annotations.json: image id 10 .*a\.png"):
        dataset.load_image(0)


def test_annotation_to_mask_bad_segmentation():
    with pytest.raises(DatasetError, match="annotation id 8: segmentation must be"):
        annotation_to_mask({"segmentation": "nope"}, H, W, "annotation id 8")


def test_export_then_load_round_trip_and_results(tmp_path):
    shapes = ShapesDataset()
    shapes.load_shapes(4, 48, 56, seed=5)
    shapes.prepare()
    json_path = tmp_path / "shapes.json"
    export_coco(shapes, shapes.image_ids, str(json_path), str(tmp_path / "png"))

    dataset, coco = _load(json_path, tmp_path / "png")
    assert dataset.class_names == shapes.class_names
    assert dataset.num_images == shapes.num_images
    for image_id in shapes.image_ids:
        np.testing.assert_array_equal(dataset.load_image(image_id), shapes.load_image(image_id))
        masks, class_ids = dataset.load_mask(image_id)
        expected_masks, expected_ids = shapes.load_mask(image_id)
        np.testing.assert_array_equal(masks, expected_masks)
        np.testing.assert_array_equal(class_ids, expected_ids)

    # Results built from the GT itself: boxes [x, y, w, h] equal the exported GT boxes.
    masks, class_ids = shapes.load_mask(0)
    results = build_coco_results(dataset, [1], extract_bboxes(masks), class_ids,
                                 np.ones(len(class_ids)), masks)
    gt = coco.loadAnns(coco.getAnnIds(imgIds=[1]))
    assert [r["bbox"] for r in results] == [a["bbox"] for a in gt]
    assert [r["category_id"] for r in results] == [a["category_id"] for a in gt]
    assert [r["segmentation"] for r in results] == [a["segmentation"] for a in gt]
    json.dumps(results)  # plain JSON types
    assert build_coco_results(dataset, [1], None, None, None, None) == []
    with pytest.raises(ValueError, match="2 image ids but 1 rois"):
        build_coco_results(dataset, [1, 2], [extract_bboxes(masks)], [class_ids], [[1.0]],
                           [masks])
