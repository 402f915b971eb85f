"""The main window's analysis parts: Train > Analyze dataset… (``mrcnn analyze`` on the open
dataset with the open model, in a child process with progress and cancel), Train > Open
analysis report…, the Errors browser, and opening a browser row in the pipeline view.

A row opens as its saved trace when the analysis saved traces (numpy only, instant), else as
that image of the open dataset (or of the dataset the report names, opened first) traced with
the open model (or the report's); either way at the stage that lost the object, with it
selected.
"""

from __future__ import annotations

import os
import tempfile

from viewer.analyze_process import AnalyzeProcess, AnalyzeRequestError, analyze_command
from viewer.errors_data import ReportError, load_report, report_dir_default

REPORT_FILTER = "Analysis report (report.json);;JSON (*.json);;All files (*)"


class ErrorsActions:
    """``window`` (menus, dialogs), ``session`` (what is shown), ``document`` (what is open)."""

    def __init__(self, window, session, document):
        self.window = window
        self.session = session
        self.document = document
        self.browser = None
        self.process = None
        self.out_root = tempfile.gettempdir()
        self._pending_select = None
        session.traceChanged.connect(self._apply_pending_select)

    def build_menu(self, menus) -> None:
        """Analysis actions at the end of the Train menu (a menu of their own without one)."""
        menu = next((a.menu() for a in menus.actions()
                     if a.menu() is not None and a.text().replace("&", "") == "Train"), None)
        if menu is None:
            menu = menus.addMenu("&Analyze")
        menu.addSeparator()
        add = self.window.add_action
        add(menu, "Analyze dataset…", self.analyze_dataset, ["Ctrl+Shift+A"],
            "Why each object of the open dataset is missed: mrcnn analyze with the open model, "
            "in the background; the errors open in the Errors browser")
        add(menu, "Open analysis report…", self.open_report_dialog, [],
            "Browse the misses and false positives of an mrcnn analyze report.json")
        add(menu, "Errors browser", self.show_browser, [], "Show the Errors browser")

    # ---- the browser ---------------------------------------------------------------------

    def show_browser(self):
        if self.browser is None:
            from viewer.errors_browser import ErrorsBrowser

            self.browser = ErrorsBrowser(self.window)
            self.browser.rowActivated.connect(self.open_row)
            self.browser.openReportRequested.connect(self.open_report_dialog)
            self.browser.cancelRequested.connect(self.cancel)
        self.browser.show()
        self.browser.raise_()
        return self.browser

    def open_report_dialog(self) -> None:
        from PySide6.QtWidgets import QFileDialog

        path, _ = QFileDialog.getOpenFileName(self.window, "Open analysis report",
                                              os.getcwd(), REPORT_FILTER)
        if path:
            self.open_report(path)

    def open_report(self, path):
        """Load ``path`` (report.json or its folder) into the browser; the report or None."""
        try:
            report = load_report(path)
        except ReportError as error:
            self.session.report_error("Cannot open the analysis report", str(error))
            return None
        self.show_browser().set_report(report)
        self.session.set_status(f"Analysis report: {report.summary()}")
        return report

    # ---- running mrcnn analyze -----------------------------------------------------------

    def analyze_dataset(self, limit=None, out_dir=None) -> bool:
        """Start ``mrcnn analyze`` on the open dataset with the open model; False if it cannot."""
        if self.process is not None and self.process.is_running():
            self.session.set_status("An analysis is already running (Cancel it in the Errors "
                                    "browser).")
            return False
        dataset = self.session.dataset
        spec = dataset.spec if dataset is not None else None
        name = "shapes" if spec is not None and spec.kind == "shapes" else \
            os.path.splitext(os.path.basename(spec.annotations))[0] if spec else "dataset"
        out_dir = out_dir or report_dir_default(self.out_root, name)
        try:
            command = analyze_command(self.document.model_spec, spec, out_dir, limit)
        except AnalyzeRequestError as error:
            self.session.report_error("Cannot analyse", str(error))
            return False
        self.process = AnalyzeProcess(self.window)
        self.process.progress.connect(self._on_progress)
        self.process.finished.connect(self._on_finished)
        browser = self.show_browser()
        browser.set_running(True)
        self.process.start(command, out_dir)
        self.session.set_status(f"Analysing {spec.describe()} with "
                                f"{self.document.model_spec.describe()} into {out_dir}…")
        return True

    def cancel(self) -> None:
        if self.process is not None and self.process.is_running():
            self.process.cancel()
            self.session.set_status("Cancelling the analysis after the current image…")

    def _on_progress(self, done, total) -> None:
        if self.browser is not None:
            self.browser.set_progress(done, total)
        self.session.set_status(f"Analysing: {done} / {total} images…")

    def _on_finished(self, out_dir, outcome) -> None:
        if self.browser is not None:
            self.browser.set_running(False)
        if out_dir is None:
            self.session.report_error("Analysis failed", outcome)
            return
        self.open_report(out_dir)
        self.session.set_status(f"Analysis {outcome}: {out_dir}")

    # ---- opening a row -------------------------------------------------------------------

    def open_row(self, row) -> None:
        """Open ``row`` (an ErrorRow) in the pipeline view at its stage, its item selected."""
        report = self.browser.report if self.browser is not None else None
        trace_file = report.trace_file(row.image_id) if report is not None else None
        if trace_file is not None and self.document.open_trace(trace_file):
            self._show_row(row)
            return
        dataset = self.session.dataset
        wanted = report.dataset if report is not None else None
        if dataset is not None and (wanted is None or _same_dataset(dataset.spec, wanted)):
            rows = [r for r in range(len(dataset)) if dataset.image_id(r) == row.image_id]
            if rows:
                self._pending_select = row
                self.document.pending_stage = row.stage
                self.document.open_dataset_image(rows[0], self._model_for(report))
                return
        if wanted is not None:
            from viewer.datasets import DatasetSpec

            self._pending_select = row
            self.document.pending_stage = row.stage
            self.document.open_dataset(DatasetSpec(**wanted), row=row.image_id,
                                       model=self._model_for(report))
            return
        self.session.report_error("Cannot open this image", "The report has no saved traces "
                                  "and names no dataset: open the dataset it was made on "
                                  "(File > Open dataset…) and click the row again.")

    def _model_for(self, report):
        """The open model, else the report's weights (None: the document's choice)."""
        if self.document.model_spec is not None or report is None:
            return None
        weights = report.data.get("weights_file") or report.data.get("weights")
        if not weights or not os.path.isfile(weights):
            return None
        from viewer.workers import ModelSpec

        return ModelSpec(weights=weights, config=report.data.get("config_file") or "")

    def _show_row(self, row) -> None:
        if row.stage in self.session.stage_keys():
            self.session.set_stage(row.stage)
        self.session.select(row.kind, row.index)

    def _apply_pending_select(self, trace) -> None:
        row, self._pending_select = self._pending_select, None
        if row is not None and trace is not None:
            # After set_trace has finished (it clears the selection after this signal) and the
            # document has applied the pending stage.
            from PySide6.QtCore import QTimer

            QTimer.singleShot(0, lambda: self.session.select(row.kind, row.index))

    def close(self, wait_ms: int = 5000) -> None:
        """Cancel a running analysis (window close)."""
        if self.process is not None and self.process.is_running():
            self.process.cancel()
            self.process.wait(wait_ms)


def _same_dataset(spec, wanted: dict) -> bool:
    """Whether the open DatasetSpec is the one a report's ``dataset`` names."""
    if spec.kind != wanted.get("kind"):
        return False
    if spec.kind == "shapes":
        return all(getattr(spec, key) == wanted.get(key)
                   for key in ("count", "height", "width", "seed"))
    return os.path.abspath(spec.annotations) == os.path.abspath(wanted.get("annotations", ""))
