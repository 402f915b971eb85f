"""The training dialog's file-system side (no widgets): checks of the COCO folders and the run
directory (each problem names its field), and the requested config file a run starts from."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from viewer.training.checks import coco_class_count, folder_problem

REQUESTED_CONFIG = "requested_config.json"


def coco_folder_problems(train_images: str, val_json: str, val_images: str) -> list[str]:
    """Problems of a COCO dataset's image folders and validation JSON ([] when all is fine)."""
    problems = []
    if not os.path.isdir(train_images):
        problems.append(f"Train images: {folder_problem(train_images)}")
    if val_json or val_images:
        try:
            coco_class_count(val_json)
        except (FileNotFoundError, ValueError) as e:
            problems.append(f"Val JSON: {e}")
        if not os.path.isdir(val_images):
            problems.append(f"Val images: {folder_problem(val_images)}")
    return problems


def run_dir_problems(text: str) -> list[str]:
    """Why ``text`` cannot hold a new run: empty, a file, or already a run ([] when it can)."""
    from mrcnn.runs import RunDir

    if not text:
        return ["Run dir: empty; name a folder for the run's checkpoints and logs"]
    if os.path.exists(text) and not os.path.isdir(text):
        return [f"Run dir: {text} is a file"]
    if RunDir(text).exists():
        return [f"Run dir: {text} already holds a run (run.json); choose another folder "
                f"(a stopped run continues from the runs panel)"]
    return []


def write_requested_config(run_dir, values: dict) -> str:
    """``<run_dir>/requested_config.json`` (a temp file when the folder cannot be made)."""
    text = json.dumps(values, indent=2, sort_keys=True) + "\n"
    try:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        path = Path(run_dir) / REQUESTED_CONFIG
        path.write_text(text)
        return str(path)
    except OSError:
        handle, path = tempfile.mkstemp(prefix="mrcnn_config_", suffix=".json")
        with os.fdopen(handle, "w") as f:
            f.write(text)
        return path
