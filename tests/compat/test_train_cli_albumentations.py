"""mrcnn train --augment-albumentations: a saved albumentations pipeline trains; with --augment
too, the run fails at once naming both."""

import albumentations as A
import pytest
from test_train_cli import _cli_args, run_cli


@pytest.mark.slow
def test_train_with_a_saved_albumentations_pipeline(tmp_path):
    pipeline = tmp_path / "pipeline.yaml"
    A.save(A.Compose([A.HorizontalFlip(p=0.5), A.RandomBrightnessContrast(p=0.5)]),
           str(pipeline), data_format="yaml")
    run_dir = tmp_path / "run"
    code, events, stderr = run_cli(_cli_args(tmp_path, run_dir, "--augment-albumentations",
                                             str(pipeline), steps=1, epochs=1))
    assert code == 0, stderr[-3000:]
    end = [e for e in events if e["event"] == "end"][-1]
    assert end["status"] == "finished"
    assert (run_dir / "checkpoints" / "epoch_0001.h5").is_file()

    code, events, _ = run_cli(_cli_args(tmp_path, tmp_path / "run2", "--augment", "hflip",
                                        "--augment-albumentations", str(pipeline), steps=1,
                                        epochs=1))
    assert code == 1
    errors = [e["message"] for e in events if e["event"] == "error"]
    assert errors and "choose one augmentation" in errors[0]
