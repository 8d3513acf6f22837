"""labkit.submission: writing in example.csv order, and one test per kind of defect validation catches."""
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from labkit import CLASS_NAMES
from labkit import submission as sub

torch.set_num_threads(1)
NAMES = [f"{10001 + i}.png" for i in range(8)]


@pytest.fixture
def example(tmp_path):
    path = tmp_path / "example.csv"
    path.write_text("Filename,Label\n" + "".join(f"{n},0\n" for n in NAMES))
    return path


def write(tmp_path, text, name="submission.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def good_rows(labels=None):
    labels = labels if labels is not None else [i % 4 for i in range(len(NAMES))]
    return [f"{n},{label}" for n, label in zip(NAMES, labels)]


def test_write_submission_follows_example_order_and_validates(tmp_path, example):
    shuffled = list(reversed(NAMES))
    labels = np.arange(len(NAMES)) % 4
    path = sub.write_submission(tmp_path / "out" / "submission_model1.csv", shuffled, labels, example)
    lines = path.read_text().splitlines()
    assert lines[0] == "Filename,Label"
    assert [line.split(",")[0] for line in lines[1:]] == NAMES
    # each filename kept its own label through the re-ordering
    assert dict(line.split(",") for line in lines[1:]) == {n: str(l) for n, l in zip(shuffled, labels)}
    report = sub.validate_submission(path, example)
    assert report.rows == 8 and report.in_example_order
    assert report.class_counts == {0: 2, 1: 2, 2: 2, 3: 2}
    assert "8 rows" in str(report)
    assert not list(path.parent.glob(".*.tmp"))  # the atomic write left no temp file


def test_write_submission_refuses_missing_predictions(tmp_path, example):
    with pytest.raises(sub.SubmissionError, match="no prediction"):
        sub.write_submission(tmp_path / "s.csv", NAMES[:-1], [0] * 7, example)
    assert not (tmp_path / "s.csv").exists()
    with pytest.raises(ValueError, match="integers"):
        sub.write_submission(tmp_path / "s.csv", NAMES, np.zeros(8) + 0.5, example)


def test_out_of_order_rows_are_accepted_but_reported(tmp_path, example):
    path = write(tmp_path, "Filename,Label\n" + "\n".join(reversed(good_rows())) + "\n")
    assert not sub.validate_submission(path, example).in_example_order


DEFECTS = {
    "empty": ("", "empty"),
    "wrong header": ("id,label\n" + "\n".join(good_rows()), "header"),
    "missing filename": ("Filename,Label\n" + "\n".join(good_rows()[:-1]), "missing"),
    "extra filename": ("Filename,Label\n" + "\n".join(good_rows() + ["99999.png,1"]), "not in example.csv"),
    "duplicate filename": ("Filename,Label\n" + "\n".join(good_rows()[:-1] + [good_rows()[0]]), "more than once"),
    "non-integer label": ("Filename,Label\n" + "\n".join(good_rows()[:-1] + [f"{NAMES[-1]},1.0"]), "not integers"),
    "out-of-range label": ("Filename,Label\n" + "\n".join(good_rows()[:-1] + [f"{NAMES[-1]},4"]), "outside 0..3"),
    "malformed row": ("Filename,Label\n" + "\n".join(good_rows()[:-1] + [f"{NAMES[-1]},1,extra"]), "two fields"),
    "header only": ("Filename,Label\n", "no data rows"),
}


@pytest.mark.parametrize("kind", DEFECTS)
def test_each_defect_is_named_with_the_file(tmp_path, example, kind):
    text, expected = DEFECTS[kind]
    path = write(tmp_path, text)
    with pytest.raises(sub.SubmissionError) as info:
        sub.validate_submission(path, example)
    message = str(info.value)
    assert str(path) in message and expected in message and "write_submission" in message


def test_count_mismatch_and_bad_rows_are_listed_up_to_five(tmp_path, example):
    rows = good_rows() + [f"{90000 + i}.png,7" for i in range(7)]
    path = write(tmp_path, "Filename,Label\n" + "\n".join(rows))
    with pytest.raises(sub.SubmissionError) as info:
        sub.validate_submission(path, example)
    err = info.value
    assert "15 data rows, but example.csv has 8" in str(err)
    assert "line 10: '90000.png,7'" in str(err)
    shown = [line for line in str(err).splitlines() if line.strip().startswith("line ")]
    assert len(shown) == 5 and len(err.bad_rows) > 5


def test_missing_file_is_named(tmp_path, example):
    with pytest.raises(sub.SubmissionError, match="does not exist"):
        sub.validate_submission(tmp_path / "nope.csv", example)


def test_class_mix_table_counts_and_percent():
    table = sub.class_mix_table([1, 1, 3, 3], [0, 1, 1, 1, 2, 3, 3, 3, 3, 3])
    assert list(table.index) == list(CLASS_NAMES)
    assert table.loc["cancer epithelial", "predicted (test)"] == 2
    assert table.loc["cancer epithelial", "predicted %"] == 50.0
    assert table.loc["immune", "training %"] == 50.0
    assert table.loc["normal epithelial", "difference (pp)"] == -10.0


def test_predict_test_batched_and_in_order():
    class ByMeanColour(nn.Module):  # class = index of the brightest channel, so answers are known
        def forward(self, x):
            means = x.mean(dim=(2, 3))
            return torch.cat([means, means[:, :1] * 0 - 10], dim=1) * 10

    x = torch.zeros(10, 3, 8, 8)
    expected = np.array([i % 3 for i in range(10)])
    x[torch.arange(10), torch.from_numpy(expected)] = 1.0
    loader = DataLoader(TensorDataset(x, torch.full((10,), -1)), batch_size=4)
    np.testing.assert_array_equal(sub.predict_test(ByMeanColour(), loader), expected)
    np.testing.assert_array_equal(sub.predict_test(ByMeanColour(), loader, tta=True), expected)
