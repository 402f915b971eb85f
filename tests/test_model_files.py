"""mrcnn.model_files: the one config-lookup rule, typed errors, class counts; no TensorFlow."""

import json

import h5py
import numpy as np
import pytest
import skimage.io

from mrcnn import errors, model_files
from mrcnn.config import Config


def write_weights(path, num_classes=4, fc=64):
    """A Keras-2 (matterport layout) HDF5 file with the layers infer_config_values reads."""
    layers = {"mrcnn_class_logits": (fc, num_classes), "mrcnn_class_conv1": (7, 7, 32, fc),
              "res2a_branch2a": (1, 1, 64, 64), "fpn_c5p5": (1, 1, 512, 32)}
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [name.encode() for name in layers]
        for layer, shape in layers.items():
            group = f.create_group(layer)
            group.attrs["weight_names"] = [f"{layer}/kernel:0".encode()]
            group.create_dataset(f"{layer}/kernel:0", data=np.zeros(shape, np.float32))
    return path


def write_config(path, **fields):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"NAME": path.parent.name, "NUM_CLASSES": 4, **fields}))
    return path


def test_find_config_order_given_then_beside_then_run_directory(tmp_path):
    weights = write_weights(tmp_path / "run" / "checkpoints" / "epoch_0001.h5")
    assert model_files.find_config(weights) is None
    run_config = write_config(tmp_path / "run" / "config.json")
    assert model_files.find_config(weights) == run_config
    beside = write_config(tmp_path / "run" / "checkpoints" / "config.json")
    assert model_files.find_config(weights) == beside
    given = tmp_path / "elsewhere.json"
    assert model_files.find_config(weights, given) == given  # even before it exists


def test_load_config_reads_the_found_file_and_says_so(tmp_path, capsys):
    weights = write_weights(tmp_path / "run" / "checkpoints" / "epoch_0001.h5")
    write_config(tmp_path / "run" / "config.json", DETECTION_MIN_CONFIDENCE=0.3)
    config = model_files.load_config(None, weights, "detect")
    assert config.NAME == "run" and config.DETECTION_MIN_CONFIDENCE == 0.3
    assert (config.IMAGES_PER_GPU, config.GPU_COUNT, config.BATCH_SIZE) == (1, 1, 1)
    err = capsys.readouterr().err
    assert err.startswith("mrcnn detect: no --config given; using ") and "config.json" in err


def test_load_config_infers_from_weights_only_when_allowed(tmp_path, capsys):
    weights = write_weights(tmp_path / "lone.h5", num_classes=6, fc=128)
    config = model_files.load_config(None, weights)
    assert (config.NUM_CLASSES, config.BACKBONE, config.FPN_CLASSIF_FC_LAYERS_SIZE,
            config.TOP_DOWN_PYRAMID_SIZE, config.POOL_SIZE) == (6, "resnet18", 128, 32, 7)
    assert config.NAME == "inferred" and capsys.readouterr().err == ""  # no command: no note
    with pytest.raises(errors.ConfigError, match="no --config given and no config.json"):
        model_files.load_config(None, weights, infer=False)


@pytest.mark.parametrize("text, problem", [
    ('{"NUM_CLASSES": 4, "NOT_A_FIELD": 1}', "NOT_A_FIELD"),
    ("{not json", "not valid JSON"),
    ('{"NUM_CLASSES": 0}', "NUM_CLASSES"),
])
def test_bad_config_files_are_config_errors_naming_the_file(tmp_path, text, problem):
    weights = write_weights(tmp_path / "w.h5")
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(errors.ConfigError, match=problem) as caught:
        model_files.load_config(path, weights)
    assert "bad.json" in str(caught.value)
    assert isinstance(caught.value, errors.InputError) and isinstance(caught.value, ValueError)


def test_weights_errors_are_typed(tmp_path):
    with pytest.raises(errors.WeightsFileError, match="weights file .* does not exist"):
        model_files.read_weight_shapes(tmp_path / "missing.h5")
    not_h5 = tmp_path / "text.h5"
    not_h5.write_text("hello")
    with pytest.raises(errors.WeightsFileError, match="not a readable HDF5"):
        model_files.read_weight_shapes(not_h5)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with pytest.raises(errors.WeightsFileError, match="not a Keras-2"):
        model_files.load_config(None, foreign)


def test_weights_class_count_reads_weights_and_whole_model_files(tmp_path):
    assert model_files.weights_class_count(write_weights(tmp_path / "a.h5", num_classes=81)) == 81
    whole = tmp_path / "model.h5"
    with h5py.File(whole, "w") as f:
        f.create_dataset("model_weights/mrcnn_class_logits/mrcnn_class_logits/kernel:0",
                         data=np.zeros((16, 3), np.float32))
    assert model_files.weights_class_count(whole) == 3
    with h5py.File(tmp_path / "none.h5", "w") as f:
        f.attrs["layer_names"] = []
    assert model_files.weights_class_count(tmp_path / "none.h5") is None


def test_read_image_and_class_names_raise_their_own_types(tmp_path):
    with pytest.raises(errors.ImageFileError, match="nope.png"):
        model_files.read_image(tmp_path / "nope.png")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(errors.ImageFileError, match="broken.png"):
        model_files.read_image(broken)
    gray = tmp_path / "gray.png"
    skimage.io.imsave(gray, np.full((9, 12), 9, np.uint8), check_contrast=False)
    image = model_files.read_image(gray)
    assert image.shape == (9, 12, 3) and image.dtype == np.uint8 and (image == 9).all()
    tiny = tmp_path / "tiny.png"  # smaller than any model input: refused, naming the file
    skimage.io.imsave(tiny, np.full((5, 7), 9, np.uint8), check_contrast=False)
    with pytest.raises(errors.ImageFileError, match="tiny.png is 5x7 pixels"):
        model_files.read_image(tiny)
    names = tmp_path / "names.txt"
    names.write_text("a\nb\n")
    assert model_files.read_class_names(names, 3) == ["BG", "a", "b"]
    with pytest.raises(errors.ClassNamesError, match="2 class names for NUM_CLASSES=5"):
        model_files.read_class_names(names, 5)


SHAPES_NAMES = ["BG", "square", "circle", "triangle"]


def write_run(run, names=SHAPES_NAMES, text=None):
    """A run directory as mrcnn train leaves it: run.json (class names), a checkpoint."""
    run.mkdir(parents=True, exist_ok=True)
    (run / "run.json").write_text(text if text is not None else
                                  json.dumps({"status": "finished", "class_names": names}))
    return write_weights(run / "checkpoints" / "epoch_0002.h5")


def test_a_runs_checkpoints_carry_its_class_names(tmp_path):
    checkpoint = write_run(tmp_path / "runs" / "shapes_1")
    assert model_files.find_run_file(checkpoint) == tmp_path / "runs" / "shapes_1" / "run.json"
    assert model_files.run_class_names(checkpoint, 4) == SHAPES_NAMES
    assert model_files.model_class_names(checkpoint, 4) == SHAPES_NAMES
    # Beside the weights counts too (a run directory holding its own weights).
    beside = write_weights(tmp_path / "flat" / "w.h5")
    (tmp_path / "flat" / "run.json").write_text(json.dumps({"class_names": ["BG", "a", "b", "c"]}))
    assert model_files.model_class_names(beside, 4) == ["BG", "a", "b", "c"]
    # A class names file given wins over the run's names.
    names = tmp_path / "names.txt"
    names.write_text("x\ny\nz\n")
    assert model_files.model_class_names(checkpoint, 4, names) == ["BG", "x", "y", "z"]


@pytest.mark.parametrize("names, text", [
    (["BG", "square", "circle"], None),          # another dataset's classes: 3, model has 4
    (None, "{not json"),                         # a broken run record
    (None, json.dumps({"status": "running"})),   # a record without names
    (None, json.dumps(["BG", "a", "b", "c"])),   # not an object
])
def test_run_names_that_do_not_fit_fall_back_to_defaults(tmp_path, names, text):
    checkpoint = write_run(tmp_path / "run", names=names, text=text)
    assert model_files.run_class_names(checkpoint, 4) is None
    assert model_files.model_class_names(checkpoint, 4) == ["BG", "class 1", "class 2",
                                                             "class 3"]
    loose = write_weights(tmp_path / "elsewhere" / "w.h5")
    assert model_files.find_run_file(loose) is None
    assert model_files.model_class_names(loose, 4) == ["BG", "class 1", "class 2", "class 3"]


def test_default_config_values_for_shapes_round_up_to_64_and_validate():
    values = model_files.default_config_values("shapes", 100)
    assert values["IMAGE_MIN_DIM"] == values["IMAGE_MAX_DIM"] == 128
    assert values["RPN_ANCHOR_SCALES"] == [8, 16, 32, 64, 128]
    assert model_files.default_config_values("shapes", 256)["RPN_ANCHOR_SCALES"] == \
        [16, 32, 64, 128, 256]
    Config.from_dict({**values, "NUM_CLASSES": 4}).validate()
    assert model_files.default_config_values("coco") == {"NAME": "coco"}
