"""TrainingProcess without TensorFlow: JSON-line parsing, exit reasons, stop escalation, and
TensorBoard, driven by small fake programs (a few hundred ms each) instead of ``mrcnn train``."""

import json
import os
import signal
import sys
import textwrap

import pytest

from mrcnn.runs import RunDir
from viewer.training.process import (FAILED, OOM_HINT, STOPPED, VIEWER_PREFIX,
                                     LineSplitter, TrainingProcess, describe_exit,
                                     parse_event_line)
from viewer.training.tensorboard import TensorBoardProcess
from viewer.training.request import TrainRequest
from viewer.training.runs import Curves

STEP = {"event": "step", "step": 1, "epoch": 1, "loss": 2.5, "rpn_class_loss": 0.5,
        "rpn_bbox_loss": 0.5, "mrcnn_class_loss": 0.5, "mrcnn_bbox_loss": 0.5,
        "mrcnn_mask_loss": 0.5, "images_per_s": 3.0, "eta_s": 12.0}

# One fake trainer, its behaviour picked by argv[1]; argv[2] is the run directory.
FAKE_TRAINER = textwrap.dedent("""
    import json, os, signal, sys, time
    mode, run_dir = sys.argv[1], sys.argv[2]
    def emit(**record):
        sys.stdout.write(json.dumps(record) + "\\n"); sys.stdout.flush()
    emit(event="start", run_dir=run_dir, epochs=1, initial_epoch=0, steps_per_epoch=1000)
    print("fake trainer up", file=sys.stderr, flush=True)
    if mode == "stubborn":                 # ignores the STOP file and SIGTERM
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while True:
            time.sleep(0.05)
    if mode == "polite":                   # stops at the STOP file like mrcnn.train
        step = 0
        while not os.path.exists(os.path.join(run_dir, "STOP")):
            step += 1
            emit(event="step", step=step, epoch=1, loss=1.0 / step)
            time.sleep(0.05)
        emit(event="checkpoint", path="x.h5", epoch=1, step=step, partial=True)
        emit(event="end", status="stopped", reason="stop file")
    if mode == "finish":
        emit(event="step", step=1, epoch=1, loss=1.0)
        emit(event="end", status="finished", reason="reached epoch 1")
    if mode == "oom":
        emit(event="error", message="ResourceExhaustedError: OOM when allocating tensor")
        emit(event="end", status="failed", reason="ResourceExhaustedError: OOM when allocating")
        sys.exit(1)
    if mode == "silent_exit":
        print("Traceback: something broke", file=sys.stderr, flush=True)
        sys.exit(3)
    if mode == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
""")


class FakeRequest(TrainRequest):
    """A TrainRequest whose program is the fake trainer."""

    script = ""
    mode = ""

    def program(self):
        return sys.executable, [self.script, self.mode, self.run_dir]


@pytest.fixture
def fake_request(tmp_path):
    script = tmp_path / "fake_trainer.py"
    script.write_text(FAKE_TRAINER)

    def make(mode):
        request = FakeRequest(str(tmp_path / f"run_{mode}"), [], {"FAKE": "1"}, "fake")
        request.script, request.mode = str(script), mode
        return request

    return make


def gone(pid) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# ---- parsing ----------------------------------------------------------------------------------


def test_line_splitter_joins_lines_cut_across_reads():
    splitter = LineSplitter()
    text = json.dumps(STEP) + "\n" + '{"event": "end", "reason": "été"}\n' + "tail"
    data = text.encode()
    cut = data.index("été".encode()) + 1  # inside the two-byte "é"
    assert splitter.feed(data[:10]) == []
    assert splitter.feed(data[10:cut]) == [json.dumps(STEP)]
    assert splitter.feed(data[cut:]) == ['{"event": "end", "reason": "été"}']
    assert splitter.flush() == ["tail"]
    assert splitter.flush() == []
    assert LineSplitter().feed(b"a\r\nb\n") == ["a", "b"]


@pytest.mark.parametrize("line, expected", [
    ('{"event": "step", "step": 3}', {"event": "step", "step": 3}),
    ('  {"event": "end"}  ', {"event": "end"}),
    ("2026-01-01 INFO: not json", None),
    ('{"event": "step", "step": ', None),   # torn
    ('["event", "step"]', None),            # JSON, but not an object
    ('{"step": 3}', None),                  # no event kind
    ("", None),
])
def test_parse_event_line(line, expected):
    assert parse_event_line(line) == expected


def test_events_split_across_reads_and_noise_is_logged_not_parsed(qtbot, fake_request):
    process = TrainingProcess(fake_request("none"))
    steps, noise, lines = [], [], []
    process.stepEvent.connect(steps.append)
    process.noiseLine.connect(noise.append)
    process.stderrLine.connect(lines.append)
    encoded = (json.dumps(STEP) + "\nWARNING: stray print\n" +
               json.dumps({"event": "error", "message": "bad"}) + "\n").encode()
    for start in range(0, len(encoded), 7):  # 7-byte reads cut every line
        process.feed_stdout(encoded[start:start + 7])
    assert steps == [STEP]
    assert noise == ["WARNING: stray print"]
    assert any("stray print" in line and line.startswith(VIEWER_PREFIX) for line in lines)
    assert process.errors == ["bad"]
    process.feed_stderr(b"log line 1\nlog li")
    process.feed_stderr(b"ne 2\n")
    assert list(process.log_lines)[-2:] == ["log line 1", "log line 2"]
    assert process.log_tail(1) == "log line 2"


def test_describe_exit():
    end = {"event": "end", "status": "stopped", "reason": "stop file"}
    assert describe_exit(0, False, end, []) == (STOPPED, "stop file")
    status, reason = describe_exit(1, False, {"event": "end", "status": "failed",
                                              "reason": "ResourceExhaustedError: OOM"}, [])
    assert status == FAILED and OOM_HINT in reason
    status, reason = describe_exit(signal.SIGKILL, True, None, [])
    assert status == FAILED and "SIGKILL" in reason and "out-of-memory" in reason
    status, reason = describe_exit(signal.SIGKILL, True, None, [], stop_requested=True,
                                   killed=True)
    assert status == STOPPED and "last good checkpoint" in reason
    assert describe_exit(2, False, None, ["bad --epochs"]) == (FAILED, "bad --epochs")
    status, reason = describe_exit(3, False, None, [])
    assert status == FAILED and "code 3" in reason


def test_curves_replace_a_restarted_epoch_and_keep_nan():
    curves = Curves()
    for step in (1, 2, 3, 4):
        curves.add(dict(STEP, step=step, loss=float(step)))
    curves.add({"event": "epoch", "step": 2, "val_loss": 9.0})
    curves.add(dict(STEP, step=3, loss=30.0))  # resumed at step 3: 3 and 4 are redone
    curves.add(dict(STEP, step=4, loss=None))  # NaN loss (JSON null)
    xs, ys = curves.arrays("train", "loss")
    assert xs.tolist() == [1, 2, 3, 4]
    assert ys[:3].tolist() == [1.0, 2.0, 30.0] and ys[3] != ys[3]
    assert curves.arrays("val", "loss")[1].tolist() == [9.0]
    assert not curves.add({"event": "checkpoint", "step": 5})


# ---- fake processes ---------------------------------------------------------------------------


def test_polite_child_stops_at_the_stop_file(qtbot, fake_request):
    process = TrainingProcess(fake_request("polite"))
    states = []
    process.stateChanged.connect(states.append)
    with qtbot.waitSignal(process.startEvent, timeout=20000):
        process.start()
    qtbot.waitUntil(lambda: process.pid > 0, timeout=5000)
    with qtbot.waitSignal(process.exited, timeout=20000) as exited:
        process.stop(grace_ms=10000, kill_ms=1000)
    assert exited.args == [STOPPED, "stop file"]
    assert states == ["starting", "running", "stopping", "stopped"]
    assert process.exit_code == 0
    assert not RunDir(process.request.run_dir).stop_requested()  # cleaned up
    assert gone(process.pid)


def test_stubborn_child_is_terminated_then_killed(qtbot, fake_request):
    process = TrainingProcess(fake_request("stubborn"))
    with qtbot.waitSignal(process.startEvent, timeout=20000):
        process.start()
    with qtbot.waitSignal(process.exited, timeout=20000) as exited:
        process.stop(grace_ms=100, kill_ms=300)
    status, reason = exited.args
    assert status == STOPPED and "did not stop in time" in reason
    assert any("SIGTERM" in line for line in process.log_lines)
    assert gone(process.pid)


@pytest.mark.parametrize("mode, status, words", [
    ("oom", FAILED, ["ResourceExhaustedError", OOM_HINT]),
    ("silent_exit", FAILED, ["code 3"]),
    ("sigkill", FAILED, ["SIGKILL"]),
])
def test_crashes_say_why(qtbot, fake_request, mode, status, words):
    process = TrainingProcess(fake_request(mode))
    with qtbot.waitSignal(process.exited, timeout=20000) as exited:
        process.start()
    assert exited.args[0] == status
    for word in words:
        assert word in exited.args[1]
    assert "fake trainer up" in process.log_tail()


def test_run_json_left_running_by_a_killed_child_is_corrected(qtbot, fake_request):
    request = fake_request("stubborn")
    run_dir = RunDir(request.run_dir).create()
    process = TrainingProcess(request)
    with qtbot.waitSignal(process.startEvent, timeout=20000):
        process.start()
    run_dir.update_run(status="running", pid=process.pid)  # as mrcnn.train writes it
    with qtbot.waitSignal(process.exited, timeout=20000):
        process.kill()
    record = run_dir.read_run()
    assert record["status"] == FAILED and "killed" in record["reason"]


def test_missing_program_fails_to_start(qtbot, tmp_path):
    class Missing(TrainRequest):
        def program(self):
            return str(tmp_path / "no-such-program"), []

    process = TrainingProcess(Missing(str(tmp_path / "run")))
    with qtbot.waitSignal(process.exited, timeout=10000) as exited:
        process.start()
    assert exited.args[0] == FAILED and "could not start" in exited.args[1]


# ---- TensorBoard ------------------------------------------------------------------------------


def test_tensorboard_process_reports_its_address_and_stops(qtbot, tmp_path):
    script = tmp_path / "fake_tb.py"
    script.write_text(textwrap.dedent("""
        import sys, time
        port = sys.argv[sys.argv.index("--port") + 1]
        print(f"TensorBoard 2.x at http://127.0.0.1:{port}/ (Press CTRL+C to quit)", flush=True)
        time.sleep(60)
    """))
    tensorboard = TensorBoardProcess(finder=lambda: [sys.executable, str(script)])
    with qtbot.waitSignal(tensorboard.ready, timeout=20000) as ready:
        url = tensorboard.start(tmp_path / "tb")
    assert ready.args == [url] and url.startswith("http://127.0.0.1:")
    assert tensorboard.is_running()
    with qtbot.waitSignal(tensorboard.stopped, timeout=10000) as stopped:
        tensorboard.stop()
    assert stopped.args == [""] and not tensorboard.is_running()


def test_tensorboard_missing_says_how_to_install():
    tensorboard = TensorBoardProcess(finder=lambda: None)
    with pytest.raises(RuntimeError, match="pip install tensorboard"):
        tensorboard.start("tb")


def test_real_tensorboard_is_found():
    from viewer.training.tensorboard import find_tensorboard

    command = find_tensorboard()
    assert command is None or os.path.basename(command[0]).startswith(("tensorboard", "python"))
