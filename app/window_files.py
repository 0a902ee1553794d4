"""The main window's File menu and its runs: new, open and save a configuration, the recent
files, open a stored run, and the question before unsaved edits are replaced.

A mixin of MainWindow: it uses the window's form, plots, docks, settings and message bar.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFileDialog, QMessageBox

from engine.config import ConfigError, RunConfig
from engine.files import write_text_atomic
from engine.run_files import dataset_name, resolve_beside

from .dialogs import RunPicker

MAX_RECENT = 8
OPEN_RUN = "File ▸ Open run"


class FilesAndRuns:
    """File ▸ New, Open, Save, Open recent and Open run, for MainWindow."""

    def new_run(self) -> None:
        if not self.may_replace_form():
            return
        self.config_panel.set_config(RunConfig())
        self.follower.stop()
        self.plots.clear()
        self.status.reset()
        self.messages.dismiss()
        self.setWindowTitle("Torchwork")

    def open_pending_config(self) -> None:
        self.open_config(self.pending_config)

    def open_config_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open run configuration",
                                              self.settings.value("last_dir", ""),
                                              "Run configurations (*.toml)")
        if path:
            self.settings.setValue("last_dir", str(Path(path).parent))
            self.open_config(path)

    def open_config(self, path: str) -> bool:
        if not self.may_replace_form():
            return False
        try:
            cfg = RunConfig.load(path, validate=False)
            resolve_beside(cfg, path)  # its relative files are beside it, as for `torchwork run`
        except ConfigError as exc:
            self.messages.show_message(f"Cannot open {path}: {exc}", "error")
            return False
        self.config_panel.set_config(cfg)
        self._remember(path)
        self.messages.dismiss()
        return True

    def save_config_dialog(self) -> bool:
        """Ask where to save, starting in the folder the user last chose (home at first)."""
        cfg = self.config_panel.config()
        arch = "custom" if cfg.model.arch.startswith("custom:") else cfg.model.arch
        name = dataset_name(cfg.data.dataset)
        folder = self.settings.value("last_dir", "") or str(Path.home())
        path, _ = QFileDialog.getSaveFileName(self, "Save run configuration",
                                              str(Path(folder) / f"{name}-{arch}.toml"),
                                              "Run configurations (*.toml)")
        if not path:
            return False
        return self.save_config(path if path.endswith(".toml") else path + ".toml")

    def save_config(self, path: str) -> bool:
        """Write the options that apply and differ from the defaults (the dataset and model
        always), so the file reads as the choices made and loads back to the same run."""
        cfg = self.config_panel.config()
        text, note = self.search.config_text(cfg)  # the Search dock's space goes with it
        try:
            if text is None:
                cfg.save(path, changes_only=True)
            else:
                write_text_atomic(Path(path), text)
        except OSError as exc:
            self.messages.show_message(f"Cannot save {path}: {exc}", "error")
            return False
        self.config_panel.mark_clean()
        self._remember(path)
        self.settings.setValue("last_dir", str(Path(path).resolve().parent))
        self.messages.show_message(f"Saved the configuration to {Path(path).resolve()}{note}",
                                   "warning" if note.startswith(";") else "info")
        return True

    def open_run_dialog(self) -> None:
        run_id = self._pick_run("Open run", "Open")
        if run_id is not None:
            self.open_run(run_id)

    def open_run(self, run_id: int) -> bool:
        """Show a workspace run's configuration and curves again (False: not shown)."""
        from engine.workspace import Workspace, WorkspaceError

        if not self.may_replace_form():
            return False
        try:
            with Workspace(self.workspace_dir) as ws:
                run = ws.get_run(run_id)
                steps, epochs = ws.step_metrics(run.id), ws.epoch_metrics(run.id)
                hardware = ws.hardware_samples(run.id)
        except (WorkspaceError, OSError) as exc:
            self.messages.show_message(f"Cannot open run {run_id}: {exc}", "error", OPEN_RUN)
            return False
        cfg = run.config
        self.config_panel.set_config(cfg)
        self.plots.clear()
        self.plots.load_history(steps, epochs, cfg.task, None)
        self.crossval.show_run(run.id)  # a fold: its group's folds together
        self.profiler.set_run(run.dir)
        self.evaluation.set_run(run.id, run.dir, run.name)
        self.hardware.show_history(hardware, f"Run {run.id} {run.name}: stored samples")
        self.setWindowTitle(f"Torchwork — run {run.id} {run.name} ({run.status})")
        self.export_actions.current_run = run.id
        if run.status == "running":  # trained elsewhere (a terminal, torchrun): follow it
            self.follower.follow(run.id, steps, epochs, hardware)
            self.status.reset()  # not the bars of the run shown before
            self.status.set_state(f"Following run {run.id} as it trains elsewhere")
        else:
            self.follower.stop()
        if run.error:
            self.messages.show_message(f"Run {run.id} {run.status}: {run.error}", "warning",
                                       OPEN_RUN)
        return True

    def _on_follow_ended(self, run_id: int, status: str) -> None:
        """The run followed since Open run has ended (in its own process)."""
        title = self.windowTitle()
        self.setWindowTitle(title[:title.rfind(" (")] + f" ({status})")
        self.status.set_state(f"Run {run_id} {status}")

    def may_replace_form(self) -> bool:
        """Before the form is replaced: its edits since the last load, save or start are
        saved, discarded or kept (False: the user cancelled, or did not save after all)."""
        if not self.config_panel.is_modified():
            return True
        answer = self.ask_unsaved()
        if answer == "save":
            return self.save_config_dialog()
        return answer == "discard"

    def ask_unsaved(self) -> str:
        """The user's choice for the form's unsaved edits: "save", "discard" or "cancel"
        (tests replace this)."""
        buttons = QMessageBox.Save | QMessageBox.Discard | QMessageBox.Cancel
        answer = QMessageBox.question(self, "Unsaved configuration", "The configuration has "
                                      "edits that are not saved. Save them first?", buttons,
                                      QMessageBox.Save)
        return {QMessageBox.Save: "save", QMessageBox.Discard: "discard"}.get(answer, "cancel")

    def _pick_run(self, title: str, action: str, allowed=None) -> int | None:
        from engine.workspace import Workspace, WorkspaceError

        try:
            with Workspace(self.workspace_dir) as ws:
                runs = ws.list_runs()
        except (WorkspaceError, OSError) as exc:
            self.messages.show_message(f"Cannot read the workspace: {exc}", "error")
            return None
        picker = RunPicker(runs, title, action, self, allowed)
        return picker.chosen if picker.exec() else None

    def _remember(self, path: str) -> None:
        path = str(Path(path).resolve())
        recent = [p for p in self._recent() if p != path]
        self.settings.setValue("recent", [path, *recent][:MAX_RECENT])
        self._fill_recent()

    def _recent(self) -> list[str]:
        value = self.settings.value("recent", [])
        return [value] if isinstance(value, str) else list(value or [])

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for path in self._recent():
            self.recent_menu.addAction(path).setData(path)
        self.recent_menu.setEnabled(bool(self._recent()))

    def _recent_chosen(self, action: QAction) -> None:
        self.open_config(action.data())
