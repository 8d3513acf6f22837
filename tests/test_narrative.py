"""labkit.narrative: generated text picks its wording from the run's numbers, on runs that differ."""
import pandas as pd
import pytest

from labkit import CLASS_NAMES, narrative
from labkit.train import History


# ---------------------------------------------------------------------------------------------------
# the data
# ---------------------------------------------------------------------------------------------------
def test_a_real_folder_is_not_called_kaggle_data():
    assert narrative.describe_data_source("/data/nuclei", is_stub=False) == "the provided data"
    # the body calls synthetic data synthetic, and names no folder of the machine it ran on
    assert narrative.describe_data_source("/tmp/stub", is_stub=True).startswith("synthetic patches")
    for is_stub in (True, False):
        text = narrative.describe_data_source("/x/y", is_stub)
        assert "Kaggle" not in text and "real" not in text and "/x/y" not in text and "stub" not in text


def _counts(*values):
    return pd.Series(values, index=list(CLASS_NAMES))


def test_balanced_classes_are_not_called_imbalanced():
    counts = _counts(100, 100, 100, 100)
    text = narrative.describe_class_mix(counts)
    assert "(1.0 to 1): close to balanced" in text
    assert "imbalance" not in text and "far from balanced" not in text and "counter" not in text
    assert not narrative.class_balance(counts).needs_rebalancing


def test_imbalanced_classes_say_so_and_are_countered():
    counts = _counts(98, 458, 88, 356)   # the competition's mix (DATA_FACTS.md)
    balance = narrative.class_balance(counts)
    assert balance.largest == "cancer epithelial" and balance.smallest == "muscle"
    assert balance.ratio == pytest.approx(458 / 88) and balance.needs_rebalancing
    text = narrative.describe_class_mix(counts)
    assert "(5.2 to 1): clearly imbalanced" in text
    assert "45.8% of the labelled patches, so always answering 'cancer epithelial' would be right that often" in text
    # what a later chapter does about the mix is that chapter's to say: no forecast of a sampler or a fix
    assert "sampler" not in text and "fix" not in text and "chapter" not in text.lower()
    assert "close to balanced" not in text


def test_a_mildly_imbalanced_mix_is_neither_balanced_nor_resampled():
    counts = _counts(100, 200, 120, 150)
    text = narrative.describe_class_mix(counts)
    assert "(2.0 to 1): mildly imbalanced" in text
    assert "clearly" not in text and not narrative.class_balance(counts).needs_rebalancing


def test_an_empty_class_is_named_without_a_ratio():
    text = narrative.describe_class_mix(_counts(0, 10, 10, 10))
    assert "no patches at all" in text and "inf" not in text


# ---------------------------------------------------------------------------------------------------
# model2's weights
# ---------------------------------------------------------------------------------------------------
VERIFIED = {"arch": "resnet18", "weights": "ResNet18_Weights.IMAGENET1K_V1", "source": "cache",
            "sha256": "f37072fd" + "0" * 56, "verified": True, "pretrained": True, "message": "ok",
            "path": "/cache/resnet18-f37072fd.pth"}
UNVERIFIED = {**VERIFIED, "source": "file", "sha256": "deadbeef" + "0" * 56, "verified": False,
              "path": "/tmp/my_weights.pth"}
RANDOM = {"arch": "resnet18", "weights": None, "source": "random", "sha256": None, "verified": False,
          "pretrained": False, "message": "No ImageNet weights for resnet18.", "path": None}


def test_verified_weights_are_called_imagenet_and_fine_tuned():
    assert narrative.weights_start(VERIFIED) == "ImageNet (verified)"
    text = narrative.describe_weights(VERIFIED)
    assert "matches the hash" in text and "starts from ImageNet weights" in text
    assert "not" not in text.lower().split()
    assert "fine-tuned from verified ImageNet" in narrative.model2_name(VERIFIED)


def test_unverified_weights_are_never_called_imagenet():
    assert "ImageNet" not in narrative.weights_start(UNVERIFIED)
    text = narrative.describe_weights(UNVERIFIED)
    # the file's path is the machine's: the appendix names it, the report body does not
    assert "does **not** match the hash torchvision publishes" in text and "/tmp/my_weights.pth" not in text
    assert "unknown state" in text and "starts from ImageNet" not in text
    name = narrative.model2_name(UNVERIFIED)
    assert "unverified" in name and "fine-tuned" not in name and "ImageNet" not in name


def test_random_weights_are_called_random_everywhere():
    assert narrative.weights_start(RANDOM) == "random"
    text = narrative.describe_weights(RANDOM)
    assert "not pretrained here" in text and "random weights" in text
    # no build advice in the report body (what trains is chapter 3's markdown, per configuration)
    assert "README" not in text and "Build" not in text and "frozen" not in text
    name = narrative.model2_name(RANDOM)
    assert "random weights" in name and "fine-tuned" not in name and "ImageNet" not in name


# ---------------------------------------------------------------------------------------------------
# learning curves
# ---------------------------------------------------------------------------------------------------
def _history(train_acc, val_acc, train_loss, val_loss):
    n = len(train_acc)
    return History(epoch=list(range(1, n + 1)), train_loss=list(train_loss), train_acc=list(train_acc),
                   val_loss=list(val_loss), val_acc=list(val_acc), lr=[1e-3] * n, seconds=[1.0] * n)


# the model2 on a real set: 90.9% training against 51.9% validation, validation loss rising
OVERFITTING = _history([0.6, 0.8, 0.909], [0.55, 0.56, 0.519], [1.0, 0.5, 0.25], [1.1, 1.0, 1.3])
# still learning: both losses falling at the end, validation loss lowest at the last epoch
UNDERFITTING = _history([0.40, 0.50, 0.58], [0.42, 0.52, 0.60], [1.3, 1.1, 0.95], [1.25, 1.05, 0.9])
# levelled off: training loss flat, accuracies close, validation loss flat after its minimum
CONVERGED = _history([0.80, 0.90, 0.91], [0.85, 0.89, 0.895], [0.6, 0.35, 0.345], [0.45, 0.33, 0.335])


def test_overfitting_is_named_with_its_gap_and_not_told_to_train_longer():
    verdict = narrative.training_verdict(OVERFITTING)
    assert verdict.kind == "overfitting" and verdict.kept_epoch == 2
    text = narrative.describe_training(OVERFITTING, "model2")
    assert "overfits" in text and "90.9%" in text and "51.9%" in text and "+39.0 points" in text
    assert "rose from 1.000 at epoch 2 to 1.300" in text
    assert "still learning" not in text


def test_a_wide_gap_with_validation_still_improving_is_not_called_overfitting():
    wide = _history([0.6, 0.8, 0.95], [0.5, 0.6, 0.7], [1.0, 0.5, 0.2], [1.2, 1.0, 0.9])
    assert narrative.training_verdict(wide).kind == "gap while improving"
    text = narrative.describe_training(wide, "model1")
    assert "more closely than new ones" in text and "95.0%" in text and "still at its lowest" in text
    assert "overfits" not in text and "would not help" not in text


def test_underfitting_says_it_was_still_learning():
    assert narrative.training_verdict(UNDERFITTING).kind == "underfitting"
    text = narrative.describe_training(UNDERFITTING, "model1")
    # the measure only: no advice that the notebook does not follow (a sentence repeated for every model)
    assert "still learning" in text and "longer run" not in text
    assert "13.6%" in text
    assert "overfits" not in text and "converged" not in text


def test_converged_says_neither():
    assert narrative.training_verdict(CONVERGED).kind == "converged"
    text = narrative.describe_training(CONVERGED, "model1")
    # the measure, not a claim: a flat training loss is "flattened", never "converged"
    assert "curves have flattened" in text and "1.4%" in text and "91.0%" in text
    assert "converged" not in text and "overfits" not in text and "still learning" not in text


def test_a_training_loss_still_moving_is_not_called_converged():
    # validation loss lowest before the last epoch, but the (small) training loss fell 15% in it
    moving = _history([0.90, 0.97, 0.985], [0.95, 0.99, 0.99], [0.3, 0.10, 0.085], [0.2, 0.05, 0.052])
    assert narrative.training_verdict(moving).kind == "converged"
    text = narrative.describe_training(moving, "model1")
    assert "validation loss was lowest at epoch 2, not at the last" in text
    assert "still changed 15.0%" in text and "converged" not in text


def test_one_epoch_has_no_trend_to_read():
    one = _history([0.5], [0.45], [1.0], [1.1])
    assert narrative.training_verdict(one).kind == "too short"
    text = narrative.describe_training(one.to_dict(), "model2")  # the to_dict form works too
    assert "single epoch" in text and "no trend" in text and "overfits" not in text


def test_the_kept_epoch_given_by_the_fit_wins():
    verdict = narrative.training_verdict(CONVERGED, kept_epoch=3)
    assert verdict.kept_epoch == 3 and verdict.kept_val_acc == pytest.approx(0.895)


# ---------------------------------------------------------------------------------------------------
# predictions
# ---------------------------------------------------------------------------------------------------
