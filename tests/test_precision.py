"""Precision setting: COMPUTE_DTYPE, --precision / auto, dtype policy per model, float32 weights,
mixed-precision training steps."""

import argparse

import h5py
import numpy as np
import pytest

from mrcnn.config import Config, ConfigError
from mrcnn.precision import (PRECISION_CHOICES, add_precision_argument, apply_precision,
                             build_policy, cpu_bf16_flags, resolve_precision, with_compute_dtype)
from tiny_config import TinyConfig

ZEN4_CPUINFO = "processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16 avx512_vnni\n"
SAPPHIRE_RAPIDS_CPUINFO = "flags\t\t: fpu avx512f avx512_bf16 amx_bf16 amx_tile amx_int8\n"
OLD_CPUINFO = "flags\t\t: fpu sse2 avx2 fma\nbugs\t\t: avx512_bf16_is_not_a_flag_here\n"


# ---- choosing ----------------------------------------------------------------------------------

def test_cpu_flags_are_read_from_flags_lines_only():
    assert cpu_bf16_flags(SAPPHIRE_RAPIDS_CPUINFO) == ["amx_bf16", "avx512_bf16"]
    assert cpu_bf16_flags(ZEN4_CPUINFO) == ["avx512_bf16"]
    assert cpu_bf16_flags(OLD_CPUINFO) == []
    assert cpu_bf16_flags("") == []


@pytest.mark.parametrize("cpuinfo, gpus, dtype, why", [
    (SAPPHIRE_RAPIDS_CPUINFO, [], "bfloat16", "amx_bf16, avx512_bf16"),
    (ZEN4_CPUINFO, [], "bfloat16", "avx512_bf16"),
    (OLD_CPUINFO, [], "float32", "neither amx_bf16 nor avx512_bf16"),
    (OLD_CPUINFO, [("A100", (8, 0))], "bfloat16", "A100 (compute capability 8.0)"),
    (OLD_CPUINFO, [("V100", (7, 0))], "float16", "float16 tensor cores"),
    (ZEN4_CPUINFO, [("K80", (3, 7))], "bfloat16", "avx512_bf16"),  # no use for that GPU
])
def test_auto_picks_by_hardware_and_says_why(cpuinfo, gpus, dtype, why):
    resolution = resolve_precision("auto", cpuinfo, gpus)
    assert resolution.compute_dtype == dtype
    assert why in resolution.reason and resolution.reason.startswith("auto:")


def test_explicit_choices_and_bad_choice():
    for choice, dtype in (("fp32", "float32"), ("bf16", "bfloat16"), ("fp16", "float16")):
        assert resolve_precision(choice, OLD_CPUINFO, []).compute_dtype == dtype
    with pytest.raises(ValueError, match="--precision: unknown value 'int8'"):
        resolve_precision("int8", OLD_CPUINFO, [])


def test_apply_precision_copies_the_config_and_none_keeps_it(caplog):
    config = TinyConfig()
    assert config.COMPUTE_DTYPE == "float32"
    assert apply_precision(config, None) is config
    caplog.set_level("INFO", logger="mrcnn.precision")
    changed = apply_precision(config, "auto", ZEN4_CPUINFO, [])
    assert changed.COMPUTE_DTYPE == "bfloat16" and config.COMPUTE_DTYPE == "float32"
    assert isinstance(changed, TinyConfig) and changed.NUM_CLASSES == config.NUM_CLASSES
    assert "precision: bfloat16 (auto: the CPU reports avx512_bf16)" in caplog.text
    apply_precision(config, "bf16", OLD_CPUINFO, [])
    assert "emulated (slower than float32)" in caplog.text


def test_config_field_validated_and_round_trips():
    config = TinyConfig()
    config.COMPUTE_DTYPE = "float64"
    with pytest.raises(ConfigError, match="COMPUTE_DTYPE: unknown dtype 'float64'; expected one "
                                          "of float32, bfloat16, float16"):
        config.validate()
    text = with_compute_dtype(TinyConfig(), "bfloat16").to_json()
    assert Config.from_json(text).COMPUTE_DTYPE == "bfloat16"
    assert Config().COMPUTE_DTYPE == "float32"


def _train_parser():
    from mrcnn.train import build_parser

    return build_parser()


def _evaluate_parser():
    from mrcnn.evaluate_cli import add_arguments

    return add_arguments(argparse.ArgumentParser())


def test_every_command_takes_precision():
    from mrcnn.cli import build_parser

    cli = build_parser()
    for command in ("detect", "trace"):
        args = cli.parse_args([command, "x.png", "--weights", "w.h5", "--out", "o",
                               "--precision", "bf16"])
        assert args.precision == "bf16"
        assert cli.parse_args([command, "x.png", "--weights", "w", "--out", "o"]).precision is None
    assert _train_parser().parse_args(["--dataset", "shapes", "--precision", "auto"]).precision \
        == "auto"
    from mrcnn.precision import training_choice

    mixed = _train_parser().parse_args(["--dataset", "shapes", "--mixed-precision"])
    assert training_choice(mixed.precision, mixed.mixed_precision) == "auto"
    assert training_choice("fp32", True) == "fp32" and training_choice(None, False) is None
    assert _evaluate_parser().parse_args(["--weights", "w", "--out", "o", "--precision",
                                          "fp16"]).precision == "fp16"
    parser = add_precision_argument(argparse.ArgumentParser())
    with pytest.raises(SystemExit):
        parser.parse_args(["--precision", "fp8"])
    assert parser.parse_args([]).precision is None and "auto" in PRECISION_CHOICES


def test_twins_need_the_same_class_and_iou_of_at_least_0_9():
    from mrcnn.precision_compare import twin_counts, twin_rows

    boxes = np.array([[0, 0, 10, 10], [20, 20, 40, 40], [50, 50, 60, 60]])
    # IoU of [0, 0, 10, 10] with [0, 0, 10, 11] is 100 / 110 = 0.909; with [0, 0, 10, 12] 0.833.
    others = np.array([[0, 0, 10, 12], [0, 0, 10, 11], [20, 20, 40, 40], [50, 50, 60, 60]])
    np.testing.assert_array_equal(twin_rows(boxes, [1, 2, 3], others, [1, 1, 2, 1]), [1, 2, -1])
    assert twin_rows(boxes, [1, 2, 3], others[:0], []).tolist() == [-1, -1, -1]
    assert twin_rows(boxes[:0], [], others, [1, 1, 2, 1]).tolist() == []
    reference = {"rois": boxes, "class_ids": np.array([1, 2, 3]),
                 "scores": np.array([0.9, 0.4, 0.6])}
    other = {"rois": others, "class_ids": np.array([1, 1, 2, 1])}
    assert twin_counts(reference, other) == (2, 1)  # score 0.4 is not counted; class 3 has none


# ---- one policy per model ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def models():
    import keras

    from mrcnn.model import MaskRCNN

    keras.utils.set_random_seed(3)
    bf16 = MaskRCNN("inference", with_compute_dtype(TinyConfig(), "bfloat16"))
    fp32 = MaskRCNN("inference", TinyConfig())  # built after: must not inherit bfloat16
    bf16.keras_model.set_weights(fp32.keras_model.get_weights())
    return fp32, bf16


def _layers(model):
    from mrcnn.trainer import iter_layers

    return {layer.name: layer for layer in iter_layers(model.keras_model)}


FLOAT32_LAYERS = ("ROI", "mrcnn_detection", "roi_align_classifier", "roi_align_mask",
                  "rpn_class", "rpn_bbox", "mrcnn_class", "mrcnn_bbox",
                  "mrcnn_mask", "mrcnn_mask_padded", "detection_boxes")


def test_side_by_side_models_keep_their_own_policy(models):
    import keras

    fp32, bf16 = models
    assert keras.config.dtype_policy().name == "float32", "no policy leaks out of a build"
    layers16 = _layers(bf16)
    assert layers16["conv1"].compute_dtype == "bfloat16"
    assert layers16["rpn_conv_shared"].compute_dtype == "bfloat16"
    assert layers16["mrcnn_class_conv1"].compute_dtype == "bfloat16"
    assert layers16["mrcnn_class_logits"].layer.compute_dtype == "bfloat16"
    for name in FLOAT32_LAYERS:
        assert layers16[name].compute_dtype == "float32", name
    assert all(layer.compute_dtype == "float32" for layer in _layers(fp32).values())
    assert {v.dtype for v in bf16.keras_model.weights} == {"float32"}


def test_policy_restored_after_a_failed_build():
    import keras

    with pytest.raises(RuntimeError):
        with build_policy("bfloat16"):
            assert keras.config.dtype_policy().name == "mixed_bfloat16"
            raise RuntimeError("build failed")
    assert keras.config.dtype_policy().name == "float32"


def test_detect_outputs_are_float32_in_both_precisions(models):
    fp32, bf16 = models
    image = np.random.default_rng(0).integers(0, 255, (100, 140, 3), dtype=np.uint8)
    for model in models:
        molded, metas, _, anchors = model.mold([image])
        out = model.predict_molded(molded, metas, anchors)
        for name, value in out.items():
            assert value.dtype in (np.float32, np.int32), name
    result, result16 = fp32.detect([image])[0], bf16.detect([image])[0]
    for found in (result, result16):
        assert found["masks"].shape[:2] == (100, 140) and found["rois"].dtype == np.int32
        assert found["scores"].dtype == np.float32


def test_weights_save_float32_identical_to_the_float32_model(models, tmp_path):
    from mrcnn.weights import load_weights

    fp32, bf16 = models
    fp32.save_weights(tmp_path / "fp32.h5")
    bf16.save_weights(tmp_path / "bf16.h5")
    with h5py.File(tmp_path / "fp32.h5") as a, h5py.File(tmp_path / "bf16.h5") as b:
        names = []
        a.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
        assert len(names) > 50
        for name in names:
            assert b[name].dtype == np.float32, name
            np.testing.assert_array_equal(a[name][()], b[name][()], err_msg=name)
    # A float32 file loads into a bfloat16 model unchanged (variables stay float32).
    rng = np.random.default_rng(1)
    saved = [rng.normal(size=v.shape).astype(np.float32) for v in fp32.keras_model.weights]
    fp32.keras_model.set_weights(saved)
    fp32.save_weights(tmp_path / "random.h5")
    load_weights(bf16.keras_model, tmp_path / "random.h5")
    for value, variable in zip(saved, bf16.keras_model.weights):
        np.testing.assert_array_equal(value, variable.numpy(), err_msg=variable.path)


# ---- training ----------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("compute_dtype", ["bfloat16", "float16"])
def test_mixed_precision_training_steps(compute_dtype):
    """A few steps run with finite float32 losses and update the float32 weights (float16 with
    dynamic loss scaling, which skips a step whose scaled gradients overflow and halves the
    scale: then the scale, not the weights, changed)."""
    import keras

    from mrcnn.data.pipeline import build_training_inputs
    from mrcnn.data.shapes import ShapesDataset
    from mrcnn.model import MaskRCNN
    from mrcnn.trainer import LOSS_NAMES, make_optimizer, set_trainable

    config = with_compute_dtype(TinyConfig(), compute_dtype)
    keras.utils.set_random_seed(0)
    model = MaskRCNN("training", config)
    dataset = ShapesDataset()
    dataset.load_shapes(2, 128, 128, seed=5)
    dataset.prepare()
    rng = np.random.default_rng(0)
    set_trainable(model.keras_model, "heads", train_bn=False)
    optimizer = make_optimizer(config, 0.01)
    assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer) == \
        (compute_dtype == "float16")
    model.trainer.compile(optimizer=optimizer)
    kernel = model.keras_model.get_layer("mrcnn_class_logits").weights[0]
    before = kernel.numpy().copy()
    for step in range(3):
        sample = build_training_inputs(dataset, config, step % 2, rng=rng)
        metrics = model.trainer.train_on_batch({k: v[None] for k, v in sample.items()},
                                               return_dict=True)
        for name in LOSS_NAMES + ("loss",):
            assert np.isfinite(metrics[name]), (step, name)
    import tensorflow as tf

    losses = model.trainer.compute_losses(
        {k: tf.constant(v[None]) for k, v in build_training_inputs(dataset, config, 0,
                                                                   rng=rng).items()},
        training=False)
    assert {loss.dtype.name for loss in losses.values()} == {"float32"}
    assert kernel.dtype == "float32"
    changed = not np.array_equal(before, kernel.numpy())
    if compute_dtype == "float16":
        changed = changed or float(model.trainer.optimizer.dynamic_scale) < 2.0 ** 15
    assert changed
    assert not {v.dtype for v in model.trainer.optimizer.variables} & {"bfloat16", "float16"}
