"""Progress while chapters run: the kernel's status file (labkit.progress, fed by PhaseTimer, fit and the
Ray Tune callback) and build.py's board of plain lines or bars."""
from __future__ import annotations

import io

import pytest
import torch

from labkit import progress
from labkit.timing import PhaseTimer


@pytest.fixture
def reporting(tmp_path, monkeypatch):
    """This process reports as chapter 02_model1 of a run folder in tmp_path; returns its status file."""
    monkeypatch.setattr(progress, "_state", {})
    progress.start(tmp_path, "02_model1")
    return progress.status_path(tmp_path, "02_model1")


def test_nothing_is_written_outside_a_chapter(tmp_path, monkeypatch):
    monkeypatch.setattr(progress, "_state", {})
    progress.set_phase("training")
    progress.step("model1", "epoch", 1, 3)
    assert not list(tmp_path.rglob("*"))


@pytest.mark.parametrize(("status", "text"), [
    (None, ""),
    ({"phase": "captum"}, "captum"),
    ({"phase": "training", "subject": "model1", "unit": "epoch", "done": 3, "total": 12, "running": True},
     "training model1: epoch 3/12"),
    ({"phase": "tuning", "subject": "model2", "unit": "trial", "done": 5, "total": 8, "running": False},
     "tuning model2: 5/8 trials done"),
    ({"phase": "fix", "subject": "model1 (fix)", "unit": "epoch", "done": 2, "total": 3, "running": True},
     "model1 (fix): epoch 2/3"),
])
def test_a_status_reads_as_a_person_would_say_it(status, text):
    assert progress.describe(status) == text


def test_the_phase_comes_from_the_timer_and_the_epochs_from_fit(reporting, tmp_path):
    from labkit.train import fit

    x, y = torch.randn(16, 3, 8, 8), torch.randint(0, 4, (16,))
    loader = [(x, y)]
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 64, 4))
    timer = PhaseTimer("02_model1")
    with timer.phase("training"):
        assert progress.read(reporting) == {"phase": "training"}
        fit(model, loader, loader, epochs=2, device="cpu", log=None, name="model1", amp=False)
        assert progress.describe(progress.read(reporting)) == "training model1: epoch 2/2"
    with timer.phase("figures"):
        assert progress.read(reporting) == {"phase": "figures"}


def test_the_search_counts_finished_trials(reporting):
    from labkit.tune import _TrialCount

    counter = _TrialCount("model1", 3)
    assert progress.describe(progress.read(reporting)) == "model1: 0/3 trials done"
    counter.on_trial_complete(0, [], None)
    counter.on_trial_error(1, [], None)
    assert progress.read(reporting)["done"] == 2


def test_without_a_terminal_the_board_prints_plain_lines_when_the_phase_changes(tmp_path):
    stream = io.StringIO()
    status = tmp_path / "progress" / "06_interpretation.json"
    status.parent.mkdir()
    with progress.ProgressBoard(stream, interval=3600) as board:  # refreshed by hand below
        board.add("06_interpretation", status, cells=20)
        board.refresh()  # no status yet: nothing to say
        status.write_text('{"phase": "captum"}')
        for _ in range(4):
            board.cell_done("06_interpretation")
        board.refresh()
        board.refresh()  # unchanged: no second line
        board.finish("06_interpretation", "  [1/1] 06_interpretation   12.0 s")
    lines = stream.getvalue().splitlines()
    assert lines == ["  06_interpretation  started: 20 cells",
                     "  06_interpretation  cell 4/20  captum",
                     "  [1/1] 06_interpretation   12.0 s"]
    assert "\r" not in stream.getvalue() and "\x1b" not in stream.getvalue()  # no redrawing


def test_in_a_terminal_the_board_draws_a_bar_per_chapter(tmp_path):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    with progress.ProgressBoard(stream, interval=3600) as board:
        board.add("06_interpretation", tmp_path / "a.json", cells=20)
        board.add("07_submission", tmp_path / "b.json", cells=10)
        (tmp_path / "b.json").write_text('{"phase": "evaluation"}')
        board.cell_done("07_submission")
        board.refresh()
        board.finish("07_submission", "  [1/2] 07_submission   5.0 s")
    screen = stream.getvalue()
    assert "06_interpretation" in screen and "0/20 cells" in screen
    assert "1/10 cells" in screen and "evaluation" in screen
    assert "[1/2] 07_submission" in screen
