"""labkit.conclusions: McNemar's exact test of two predictors on the same patches, and the record."""
import numpy as np
import pytest
from scipy.stats import binomtest

from labkit import conclusions
from labkit.artifacts import RunDir
from labkit.submission import choose_submission


def _predictions(n=200, only_a=0, only_b=0, both_wrong=10):
    """Labels and two predictors: ``only_a`` patches only a gets right, ``only_b`` only b."""
    labels = np.arange(n) % 4
    a, b = labels.copy(), labels.copy()
    a[:both_wrong] = b[:both_wrong] = (labels[:both_wrong] + 1) % 4
    b[both_wrong:both_wrong + only_a] = (labels[both_wrong:both_wrong + only_a] + 1) % 4
    start = both_wrong + only_a
    a[start:start + only_b] = (labels[start:start + only_b] + 2) % 4
    return labels, a, b


def test_a_one_patch_lead_cannot_be_told_apart():
    """The issue's 'model2 is the more accurate ... by 0.1 percentage points': 586 against 587 correct."""
    test = conclusions.paired_test(*_predictions(only_a=1, only_b=2), "model1", "model2")
    assert (test.only_a, test.only_b, test.correct_b - test.correct_a) == (1, 2, 1)
    assert test.winner is None and test.p_value == pytest.approx(1.0)
    assert "cannot be told apart" in test.sentence() and "more accurate" not in test.sentence()
    assert choose_submission(test)[0] == "model1" and "smaller" in choose_submission(test)[1]


def test_a_clear_lead_names_the_winner_with_scipys_p_value():
    test = conclusions.paired_test(*_predictions(only_a=2, only_b=20), "model1", "model2")
    assert test.p_value == pytest.approx(binomtest(2, 22, 0.5).pvalue) and test.p_value < conclusions.ALPHA
    assert test.winner == "model2" and choose_submission(test)[0] == "model2"
    assert test.sentence().startswith("model2 is more accurate than model1 on the validation split: 2 patches "
                                      "only model1 gets right and 20 only model2")


def test_identical_predictions_differ_on_no_patch():
    labels, a, _ = _predictions(only_a=5)
    test = conclusions.paired_test(labels, a, a, "TTA", "one pass")
    assert test.differing == 0 and test.p_value == 1.0 and test.winner is None
    assert "get the same" in test.sentence()


def test_predictions_of_different_patches_are_refused():
    with pytest.raises(ValueError, match="same patches"):
        conclusions.paired_test([0, 1, 2], [0, 1], [0, 1, 2], "model1", "model2")


def test_the_record_holds_each_decision_once_and_names_who_makes_a_missing_one(tmp_path):
    run = RunDir(tmp_path / "run")
    with pytest.raises(FileNotFoundError, match="chapter 5"):
        conclusions.get(run, "fix_model1")
    assert not conclusions.fix_adopted(run, "model1") and conclusions.kept_stage(run, "model1") == "final"
    conclusions.decide(run, "fix_model1", adopted=True)
    conclusions.decide(run, "fix_model1", adopted=True, reason="again")   # a rerun replaces, never appends
    assert conclusions.read(run) == {"fix_model1": {"adopted": True, "reason": "again"}}
    assert conclusions.kept_stage(run, "model1") == "fixed"


def test_tta_is_described_from_the_record():
    record = {"tta_model1": {"tried": True, "used": False, "only_a": 3, "only_b": 2, "p_value": 1.0},
              "tta_model2": {"tried": True, "used": True, "only_a": 12, "only_b": 1, "p_value": 0.0034}}
    assert conclusions.describe_tta(record) == ("Against one pass, TTA gives model1 3 patches gained and 2 lost "
                                                "(p = 1); model2 12 patches gained and 1 lost (p = 0.0034): "
                                                "it is used for model2 only.")
    assert conclusions.describe_tta({"tta_model1": {"tried": False}}) == ""


def test_one_patch_gained_by_tta_is_said_in_the_singular():
    record = {"tta_model1": {"tried": True, "used": False, "only_a": 1, "only_b": 4, "p_value": 0.38}}
    assert "model1 1 patch gained and 4 lost (p = 0.38)" in conclusions.describe_tta(record)
