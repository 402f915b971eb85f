"""Dataset: the registry of classes and images that every data source (shapes, COCO, yours) fills.

Same API and behaviour as matterport's ``utils.Dataset``, so a subclass written for matterport
(``load_xxx`` calling ``add_class`` / ``add_image``, overriding ``load_image`` / ``load_mask`` /
``image_reference``) works unchanged:

    class BalloonDataset(Dataset):
        def load_balloon(self, dataset_dir):
            self.add_class("balloon", 1, "balloon")
            self.add_image("balloon", image_id="a.jpg", path=..., polygons=...)
        def load_mask(self, image_id):
            ...
            return masks, class_ids

    dataset = BalloonDataset(); dataset.load_balloon(d); dataset.prepare()

Two id spaces: *internal* ids (0..N-1, what ``image_ids`` / ``class_ids`` hold and what the model
sees) and *source* ids (whatever the data source calls them, e.g. COCO category 18). Class 0 is
always background ("BG").
"""

from __future__ import annotations

import json
import os

import numpy as np

from mrcnn.errors import DatasetError  # noqa: F401  (imported from here too)


class Dataset:
    """Registry of classes and images; subclasses load the actual pixels and masks."""

    def __init__(self, class_map=None):
        # class_map is accepted for matterport compatibility; it was never used there either.
        self._image_ids = np.zeros([0], dtype=np.int64)
        self.image_info = []
        # Background is always class 0.
        self.class_info = [{"source": "", "id": 0, "name": "BG"}]
        self.source_class_ids = {}

    # -- registration ------------------------------------------------------------------------

    def add_class(self, source, class_id, class_name):
        """Register class ``class_id`` of ``source`` (no dots in source); duplicates are ignored."""
        if "." in source:
            raise ValueError(f"Dataset.add_class: source name {source!r} cannot contain a dot")
        for info in self.class_info:
            if info["source"] == source and info["id"] == class_id:
                return
        self.class_info.append({"source": source, "id": class_id, "name": class_name})

    def add_image(self, source, image_id, path, **kwargs):
        """Register one image; ``kwargs`` (annotations, height, width, ...) go into image_info."""
        image_info = {"id": image_id, "source": source, "path": path}
        image_info.update(kwargs)
        self.image_info.append(image_info)

    def image_reference(self, image_id):
        """A string that identifies the image to a human (a path, a URL); empty by default."""
        return ""

    def prepare(self, class_map=None):
        """Build the internal id tables; call after the last add_class / add_image."""

        def clean_name(name):
            # COCO-style names like "person, people" keep only their first part.
            return ",".join(name.split(",")[:1])

        self.num_classes = len(self.class_info)
        self.class_ids = np.arange(self.num_classes)
        self.class_names = [clean_name(c["name"]) for c in self.class_info]
        self.num_images = len(self.image_info)
        self._image_ids = np.arange(self.num_images)

        self.class_from_source_map = {
            f"{info['source']}.{info['id']}": class_id
            for info, class_id in zip(self.class_info, self.class_ids)
        }
        self.image_from_source_map = {
            f"{info['source']}.{info['id']}": image_id
            for info, image_id in zip(self.image_info, self._image_ids)
        }
        # Sorted (matterport used an unordered set) so runs are reproducible.
        self.sources = sorted({info["source"] for info in self.class_info})
        self.source_class_ids = {}
        for source in self.sources:
            # Background (index 0) belongs to every source.
            self.source_class_ids[source] = [
                i for i, info in enumerate(self.class_info) if i == 0 or info["source"] == source
            ]

    # -- id mapping --------------------------------------------------------------------------

    def map_source_class_id(self, source_class_id):
        """Internal class id of ``"source.id"`` (e.g. ``"coco.12"``)."""
        return self.class_from_source_map[source_class_id]

    def get_source_class_id(self, class_id, source):
        """The source's own id of internal class ``class_id``; it must belong to ``source``."""
        info = self.class_info[class_id]
        if info["source"] != source:
            raise ValueError(
                f"class {class_id} ({info['name']!r}) belongs to source {info['source']!r}, "
                f"not {source!r}"
            )
        return info["id"]

    @property
    def image_ids(self):
        """[num_images] internal image ids (0..N-1); empty before prepare()."""
        return self._image_ids

    def source_image_link(self, image_id):
        """Path or URL of the image in its source."""
        return self.image_info[image_id]["path"]

    # -- pixels and masks --------------------------------------------------------------------

    def load_image(self, image_id):
        """[H, W, 3] uint8 RGB read from image_info's ``path`` (gray/RGBA/16-bit converted)."""
        path = self.image_info[image_id]["path"]
        return read_image_rgb(path, what=f"image {image_id} ({self.image_reference(image_id)!s})")

    def load_mask(self, image_id):
        """([H, W, N] bool masks, [N] int32 class ids); the base class has no instances (N = 0).

        H, W come from image_info's ``height`` / ``width`` when present, else from the image.
        """
        info = self.image_info[image_id]
        if "height" in info and "width" in info:
            height, width = int(info["height"]), int(info["width"])
        else:
            height, width = self.load_image(image_id).shape[:2]
        return np.zeros([height, width, 0], dtype=bool), np.zeros([0], dtype=np.int32)


# ---------------------------------------------------------------------------------------------
# image files
# ---------------------------------------------------------------------------------------------


_image_plugins_imported = False


def import_image_plugins() -> None:
    """Import skimage.io with every imageio plugin (and Pillow's format plugins) now, once.

    imageio imports its plugins lazily on the first read. When that first read happens on
    tf.data's worker threads while the main thread imports TensorFlow modules, the import locks
    and the GIL deadlocked the process (seen in a test run: two readers importing
    imageio.plugins.pyav / rawpy, the main thread importing tf.data's range_op, all idle
    forever). Readers call this first, and make_dataset calls it on the main thread before any
    worker exists, so no worker thread ever imports.
    """
    global _image_plugins_imported
    if _image_plugins_imported:
        return
    import imageio.config
    import skimage.io  # noqa: F401
    from PIL import Image

    for plugin in imageio.config.known_plugins.values():
        try:
            plugin.plugin_class  # imports the plugin's module (or fails: its library is absent)
        except Exception:  # noqa: BLE001 - an absent optional library is the usual case
            pass
    Image.init()
    _image_plugins_imported = True


def read_image_rgb(path, what="image"):
    """[H, W, 3] uint8 RGB from an image file; errors name the file (``what`` says which image)."""
    import skimage.io

    import_image_plugins()
    if path is None or not os.path.isfile(path):
        raise FileNotFoundError(f"{what}: image file {path!r} does not exist")
    try:
        image = skimage.io.imread(path)
    except Exception as error:  # skimage raises many types (OSError, ValueError, ...) per plugin
        raise DatasetError(f"{what}: cannot read image file {path!r}: {error}") from error
    try:
        return to_rgb_uint8(image, source=f"{what}: {path}")
    except ValueError as error:
        raise DatasetError(str(error)) from error


def to_rgb_uint8(image, source="image"):
    """[H, W, 3] uint8 from gray [H, W] / [H, W, 1], gray+alpha [H, W, 2], RGBA, 16-bit or float
    [0, 1] images (alpha dropped)."""
    try:
        from mrcnn.imaging import to_model_channels
    except ImportError:  # imaging is optional for datasets; the local fallback does the same
        return _to_rgb_uint8(image, source)
    image = to_model_channels(image, channels=3, source=source)
    if image.dtype != np.uint8:
        # to_model_channels gives float32 on the 0..255 scale for 16-bit and float inputs.
        image = np.clip(np.round(image), 0, 255).astype(np.uint8)
    return image


def _to_rgb_uint8(image, source):
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] in (1, 2):  # gray, or gray + alpha (alpha dropped)
        image = image[..., 0]
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    if image.ndim != 3 or image.shape[-1] not in (3, 4):
        raise DatasetError(f"{source}: expected a gray, gray+alpha, RGB or RGBA image, "
                           f"got shape {image.shape}")
    # Alpha is dropped, not composited: matterport did the same and models never saw it.
    image = image[..., :3]
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return np.round(image.astype(np.float64) / 257.0).astype(np.uint8)
    if image.dtype == bool:
        return image.astype(np.uint8) * 255
    if np.issubdtype(image.dtype, np.floating):
        scale = 255.0 if image.size and float(np.nanmax(image)) <= 1.0 else 1.0
        return np.clip(np.round(image * scale), 0, 255).astype(np.uint8)
    return np.clip(image, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# COCO export (fixtures, demo data)
# ---------------------------------------------------------------------------------------------


def export_coco(dataset, image_ids, json_path, image_dir):
    """Write ``image_ids`` of a prepared dataset as PNGs in ``image_dir`` + a COCO instances JSON.

    COCO image id = internal id + 1 and annotation ids count from 1 (COCOeval treats id 0 as
    "unmatched"). Category ids are the source's own class ids. Masks are stored as compressed
    RLE; a negative class id (matterport's crowd marker) is written as ``iscrowd=1``.
    Returns the JSON dict that was written.
    """
    import pycocotools.mask as mask_utils
    import skimage.io

    os.makedirs(image_dir, exist_ok=True)
    categories = [
        {"id": int(info["id"]), "name": info["name"], "supercategory": info["source"]}
        for info in dataset.class_info[1:]
    ]
    images, annotations = [], []
    for image_id in image_ids:
        image = dataset.load_image(image_id)
        masks, class_ids = dataset.load_mask(image_id)
        file_name = f"{int(image_id):06d}.png"
        skimage.io.imsave(os.path.join(image_dir, file_name), image, check_contrast=False)
        coco_image_id = int(image_id) + 1
        images.append({"id": coco_image_id, "file_name": file_name,
                       "height": int(image.shape[0]), "width": int(image.shape[1])})
        for index, class_id in enumerate(class_ids):
            rle = mask_utils.encode(np.asfortranarray(masks[:, :, index].astype(np.uint8)))
            x, y, w, h = (float(v) for v in mask_utils.toBbox(rle))
            annotations.append({
                "id": len(annotations) + 1,
                "image_id": coco_image_id,
                "category_id": int(dataset.class_info[abs(int(class_id))]["id"]),
                "segmentation": {"size": [int(s) for s in rle["size"]],
                                 "counts": rle["counts"].decode("ascii")},
                "area": float(mask_utils.area(rle)),
                "bbox": [x, y, w, h],
                "iscrowd": int(class_id < 0),
            })
    data = {"images": images, "annotations": annotations, "categories": categories}
    with open(json_path, "w") as f:
        json.dump(data, f)
    return data
