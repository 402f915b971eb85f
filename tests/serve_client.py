"""Stand-alone client of an exported model, run by test_export.py in a fresh process.

It imports TensorFlow (SavedModel) or onnxruntime (ONNX) and numpy only, never mrcnn, to prove
the exported model carries its own molding and unmolding:

    python serve_client.py savedmodel|onnx MODEL_PATH IMAGES.npz OUT.npz

IMAGES.npz holds image_0, image_1, ... (uint8 [H, W, 3]); OUT.npz gets rois_i, class_ids_i,
scores_i, masks_i per image, and the names of any loaded modules starting with "mrcnn".
"""

import sys

import numpy as np


def run_savedmodel(path, images):
    import tensorflow as tf

    serve = tf.saved_model.load(path).signatures["serving_default"]
    return [{k: v.numpy() for k, v in serve(image=tf.constant(im)).items()} for im in images]


def run_onnx(path, images):
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return [dict(zip(names, session.run(None, {"image": im}))) for im in images]


def main(kind, model_path, images_path, out_path):
    stored = np.load(images_path)
    images = [stored[f"image_{i}"] for i in range(len(stored.files))]
    results = (run_savedmodel if kind == "savedmodel" else run_onnx)(model_path, images)
    out = {f"{key}_{i}": value for i, result in enumerate(results) for key, value in result.items()}
    out["mrcnn_modules"] = np.array(sorted(m for m in sys.modules if m.split(".")[0] == "mrcnn"),
                                    dtype=str)
    np.savez(out_path, **out)


if __name__ == "__main__":
    main(*sys.argv[1:5])
