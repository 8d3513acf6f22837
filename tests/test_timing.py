"""labkit.timing: phases add up per name and are saved after each one, even when a phase fails."""
import json

import pytest

from labkit.artifacts import RunDir
from labkit.timing import PhaseTimer, process_age_seconds, read_breakdown


def busy(n=200_000):
    return sum(i * i for i in range(n))


def test_phases_add_up_and_are_written_after_each_phase(tmp_path):
    timer = PhaseTimer("03_model2", RunDir(tmp_path))
    with timer.phase("training"):
        busy()
    saved = json.loads((tmp_path / "timing" / "03_model2.json").read_text())
    assert saved["phases"]["training"]["calls"] == 1
    with timer.phase("training"):
        busy()
    with timer.phase("evaluation"):
        busy()
    saved = read_breakdown(tmp_path)["03_model2"]
    training = saved["phases"]["training"]
    assert training["calls"] == 2 and training["seconds"] > 0 and training["cpu_seconds"] > 0
    assert saved["since_timer"] >= training["seconds"] + saved["phases"]["evaluation"]["seconds"]
    assert saved["before_timer"] is None or saved["before_timer"] > 0  # this process started before


def test_a_failing_phase_is_still_recorded(tmp_path):
    timer = PhaseTimer("07_submission", tmp_path)
    with pytest.raises(ZeroDivisionError), timer.phase("evaluation"):
        _ = 1 / 0
    assert read_breakdown(tmp_path)["07_submission"]["phases"]["evaluation"]["calls"] == 1


def test_without_a_run_folder_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    timer = PhaseTimer("01_data")
    with timer.phase("data"):
        pass
    assert timer.as_dict()["phases"]["data"]["calls"] == 1 and not list(tmp_path.iterdir())


def test_process_age_is_plausible():
    age = process_age_seconds()
    assert age is None or 0 < age < 24 * 3600
