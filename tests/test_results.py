"""labkit.results: choosing the final model and reading it back from the run folder."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from labkit import conclusions, models, results
from labkit.artifacts import RunDir
from labkit.train import History


def _history(val_acc):
    n = len(val_acc)
    return History(epoch=list(range(1, n + 1)), train_loss=[1.0] * n, train_acc=[0.5] * n,
                   val_loss=[1.0 - a for a in val_acc], val_acc=list(val_acc), lr=[1e-3] * n, seconds=[1.0] * n)


@pytest.fixture
def run(tmp_path):
    run = RunDir(tmp_path / "run")
    baseline = models.build_model1({"channels": "8-16"})
    run.save_checkpoint("model1/baseline.pt", baseline, config={"channels": "8-16"})
    run.save_json("model1/baseline_history.json", _history([0.6, 0.8]).to_dict())
    return run


def _tuned(acc):
    model = models.build_model1({"channels": [4, 8, 16]})
    return SimpleNamespace(model=model, fit=SimpleNamespace(best_val_acc=acc, history=_history([acc])))


def _test(only_retrained, only_baseline, patches=600):
    """A paired test of the retrained model against the baseline with these discordant counts."""
    labels = np.zeros(patches, dtype=np.int64)
    retrained, baseline = labels.copy(), labels.copy()
    baseline[:only_retrained] = 1
    retrained[only_retrained:only_retrained + only_baseline] = 1
    return conclusions.paired_test(labels, retrained, baseline, "retrained", "baseline")


def test_a_retrained_model_the_paired_test_finds_better_becomes_final(run):
    text = results.choose_final(run, "model1", _tuned(0.9), {"channels": [4, 8, 16]}, test=_test(20, 2))
    assert text.endswith("the retrained model1 is final.") and "20 to 2" in text
    record = conclusions.get(run, "final_model1")
    assert (record["weights"], record["retrained"], record["val_acc"]) == ("tuned", True, 0.9)
    assert record["test"]["winner"] == "retrained"
    final = results.load_final(run, "model1")
    assert models.count_layers(final).by_type["Conv2d"] == 3
    assert run.load_json("model1/final_history.json")["val_acc"] == [0.9]


@pytest.mark.parametrize("only_retrained, only_baseline, words", [
    (3, 20, "the baseline stays final. The short trials"),
    (6, 3, "they cannot be told apart, so the baseline stays final."),
])
def test_a_retrained_model_not_found_better_leaves_the_baseline_final(run, only_retrained, only_baseline, words):
    # a higher accuracy alone does not replace the baseline: only the paired test's verdict does
    text = results.choose_final(run, "model1", _tuned(0.85), {"channels": [4, 8, 16]},
                                test=_test(only_retrained, only_baseline))
    assert words in text and "**model1** retrained reaches 85.0% against its baseline's 80.0%" in text
    assert conclusions.get(run, "final_model1")["weights"] == "baseline"
    final = results.load_final(run, "model1")
    assert models.count_layers(final).by_type["Conv2d"] == 2
    state, _ = run.load_checkpoint("model1/baseline.pt")
    assert all(torch.equal(final.state_dict()[k], v) for k, v in state.items())


def test_a_retrained_model_needs_its_paired_test(run):
    with pytest.raises(ValueError, match="retrained_against_baseline"):
        results.choose_final(run, "model1", _tuned(0.9), {"channels": [4, 8, 16]})


def test_the_tuned_run_is_kept_and_named_whichever_model_is_final(run):
    results.choose_final(run, "model1", _tuned(0.7), {"channels": [4, 8, 16]}, test=_test(2, 20))
    assert results.tuned_history(run, "model1").val_acc == [0.7]          # chapter 4's run, not the baseline's
    assert run.load_json("model1/final_history.json")["val_acc"] == [0.6, 0.8]


def test_an_older_run_folder_falls_back_to_the_final_history(run):
    run.save_json("model1/final_history.json", _history([0.5]).to_dict())
    assert results.tuned_history(run, "model1").val_acc == [0.5]


def _fixed_model1(run, adopted, accuracy_after=0.95):
    results.choose_final(run, "model1", _tuned(0.9), {"channels": [4, 8, 16]}, test=_test(20, 2))
    fixed = models.build_model1({"channels": [4, 8, 16]})
    torch.nn.init.constant_(next(fixed.parameters()), 0.5)  # weights that differ from the final model's
    verdict = SimpleNamespace(as_dict=lambda: {"adopted": adopted, "accuracy_after": accuracy_after})
    results.save_fix(run, "model1", fixed, verdict)
    return fixed


@pytest.mark.parametrize("adopted", [True, False])
def test_the_kept_model_is_the_fixed_one_only_when_its_fix_was_adopted(run, adopted):
    fixed = _fixed_model1(run, adopted)
    kept = results.kept_model(run, "model1")
    same = all(torch.equal(kept.state_dict()[k], v) for k, v in fixed.state_dict().items())
    assert same == adopted == conclusions.fix_adopted(run, "model1")
    assert conclusions.get(run, "fix_model1")["accuracy_after"] == 0.95


def test_a_search_won_by_the_baseline_keeps_it_without_retraining(run):
    assert results.choose_final(run, "model1", None, {"channels": "8-16"}) is None  # chapter 4 said why
    assert run.load_json("model1/final_history.json")["val_acc"] == [0.6, 0.8]
    assert models.count_layers(results.load_final(run, "model1")).by_type["Conv2d"] == 2
    assert not results.was_retrained(run, "model1")
    assert results.tuned_history(run, "model1").val_acc == [0.6, 0.8]  # the baseline's curves, said so
    assert conclusions.get(run, "final_model1")["because"] == results.BASELINE_CONFIRMED


def test_a_lead_within_the_noise_keeps_the_baseline_and_records_why(run):
    why = "its search's best trial could not be shown better than the baseline's (McNemar's p = 0.3)"
    results.choose_final(run, "model1", None, {"channels": "8-16"}, kept_because=why)
    assert conclusions.get(run, "final_model1")["because"] == why
    assert not results.was_retrained(run, "model1")

