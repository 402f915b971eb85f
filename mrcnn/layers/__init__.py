"""Custom Keras layers of Mask R-CNN, one per module (TensorFlow backend).

Importing this package imports TensorFlow; import the submodules you need from model code.
"""

from mrcnn.layers.detection import DetectionLayer, refine_detections_np
from mrcnn.layers.proposal import ProposalLayer
from mrcnn.layers.roi_align import PyramidROIAlign

__all__ = ["DetectionLayer", "ProposalLayer", "PyramidROIAlign", "refine_detections_np"]
