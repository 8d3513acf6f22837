"""Build profiles: how much data, how many epochs and trials each kind of build spends.

quick    tests, CI, a first look: whole build under 2 minutes on a 2-core CPU.
standard the default: a stub of a few thousand images, whole build under 10 minutes on a 2-core CPU.
full     the real data on a GPU (Kaggle): epochs and trials of a real study.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Profile:
    name: str
    stub_train: int          # images in the synthetic training set (ignored with real data)
    stub_test: int           # images in the synthetic test set
    val_fraction: float      # share of train.csv held out, stratified
    model1_epochs: int       # baseline and final model1 runs
    model2_epochs: int       # baseline and final model2 runs
    tune_trials: int         # Ray Tune trials per model
    tune_epochs: int         # max epochs per trial (ASHA stops bad ones earlier)
    tune_subset: float       # share of the training split a trial trains on
    interpret_per_class: int  # validation patches per class and outcome shown with Captum
    batch_size: int
    test_time_augmentation: bool = True  # average test predictions over the 8 flips/rotations

    def as_dict(self) -> dict:
        return asdict(self)


PROFILES = {
    "quick": Profile("quick", stub_train=320, stub_test=80, val_fraction=0.25,
                     model1_epochs=2, model2_epochs=1, tune_trials=2, tune_epochs=1,
                     tune_subset=0.5, interpret_per_class=1, batch_size=64, test_time_augmentation=False),
    "standard": Profile("standard", stub_train=3000, stub_test=800, val_fraction=0.2,
                        model1_epochs=8, model2_epochs=3, tune_trials=6, tune_epochs=4,
                        tune_subset=0.5, interpret_per_class=1, batch_size=64),
    "full": Profile("full", stub_train=10000, stub_test=5041, val_fraction=0.15,
                    model1_epochs=30, model2_epochs=12, tune_trials=16, tune_epochs=12,
                    tune_subset=1.0, interpret_per_class=1, batch_size=128),
}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}: choose one of {', '.join(PROFILES)}") from None
