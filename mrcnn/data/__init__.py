"""Datasets: the matterport-compatible Dataset API, synthetic shapes and COCO-format data.

TensorFlow is not imported here; the tf.data pipeline lives in ``mrcnn.data.pipeline``.
"""

from mrcnn.data.coco import CocoDataset, build_coco_results
from mrcnn.data.dataset import Dataset, DatasetError, export_coco
from mrcnn.data.shapes import ShapesDataset

__all__ = ["CocoDataset", "Dataset", "DatasetError", "ShapesDataset", "build_coco_results",
           "export_coco"]
