"""Build profiles: how much data, what training budget and how many trials each kind of build spends.

quick    tests, CI, a first look: whole build from a fresh clone (stub included) within a minute on a 2-core CPU.
standard the default: a stub of a few thousand images, whole build within 4 minutes on a 2-core CPU with
         bf16 and 7 without (float32).
full     the real data on a GPU (Kaggle): the budgets and trials of a real study.

A profile sets a training *budget*, not a number of epochs: optimizer steps at the profile's batch size,
turned into epochs for the data at hand (``epochs_for``) and capped, and early stopping on validation loss
(``patience``) may end a run sooner. So a 500-image set gets enough steps to learn (a fixed 8 epochs on 432
images are only 56 steps), and a 10,000-image set is not overtrained. Because the budget is counted at the
profile's batch size, it fixes how many images a run sees: a tuned batch size changes the number of steps,
not the number of epochs, and all tuning trials of a search run the same epochs. A tuning trial has a
budget of its own (``model1_trial_steps``, ``model2_trial_steps``): many short trials on a subset show
a trend over the searched settings, and only a search whose best trial beats the baseline's pays for a
full-budget run.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass


def budget_epochs(steps: int, steps_per_epoch: int, max_epochs: int, min_epochs: int = 1) -> int:
    """Epochs that spend a budget of ``steps`` optimizer steps: ceil(steps / steps_per_epoch), at least
    ``min_epochs`` and at most ``max_epochs``. Computed up front so the one-cycle or cosine schedule knows
    its total length; early stopping may still end the run sooner."""
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be at least 1, not {steps_per_epoch}: is the training split empty?")
    return max(1, min(max_epochs, max(min_epochs, math.ceil(steps / steps_per_epoch))))


def asha_grace_period(epochs: int) -> int:
    """Epochs every tuning trial runs before ASHA may stop it: at least 2 (one epoch of a one-cycle schedule
    is mostly warm-up and says little about a setting), a third of the trial's epochs on longer trials."""
    return min(max(1, epochs), max(2, epochs // 3))


@dataclass(frozen=True)
class Profile:
    name: str
    stub_train: int          # images in the synthetic training set (ignored with real data)
    stub_test: int           # images in the synthetic test set
    val_fraction: float      # share of train.csv held out, stratified
    model1_steps: int        # training budget of model1's baseline and final runs: optimizer steps at batch_size
    model2_steps: int        # the same for model2 (fewer: a step of it costs more; chapter 7 measures how much)
    max_epochs: int          # cap on the epochs a budget may turn into (small datasets)
    min_epochs: int          # floor on them (large datasets)
    patience: int | None     # stop after this many epochs without a lower validation loss (None: never)
    tune_trials: int         # Ray Tune trials per model
    model1_trial_steps: int  # a model1 trial's budget: optimizer steps at batch_size (ASHA stops bad ones earlier)
    model2_trial_steps: int  # the same for a model2 trial
    tune_subset: float       # share of the training split a trial trains on
    interpret_per_class: int  # validation patches per class and outcome shown with Captum
    batch_size: int
    test_time_augmentation: bool = True  # average test predictions over the 8 flips/rotations
    # Captum's cost per patch (labkit.interpret.attribute): IG + SmoothGrad runs noisy copies x steps
    # forward/backward passes, Occlusion ((100 - window) // stride + 1) ** 2 forward passes.
    ig_noisy_copies: int = 3
    ig_steps: int = 8
    occlusion_window: int = 16
    occlusion_stride: int = 12

    def as_dict(self) -> dict:
        return asdict(self)

    def captum_settings(self) -> dict:
        """Keyword arguments for labkit.interpret.attribute/explain."""
        return {"n_samples": self.ig_noisy_copies, "n_steps": self.ig_steps, "window": self.occlusion_window,
                "stride": self.occlusion_stride}

    def steps_for(self, kind: str) -> int:
        if kind not in ("model1", "model2"):
            raise ValueError(f"kind must be 'model1' or 'model2', not {kind!r}")
        return self.model1_steps if kind == "model1" else self.model2_steps

    def epochs_for(self, kind: str, n_train: int, share: float = 1.0) -> int:
        """Epochs that spend ``share`` of ``kind``'s budget on ``n_train`` training images."""
        steps_per_epoch = math.ceil(n_train / self.batch_size)
        return budget_epochs(math.ceil(share * self.steps_for(kind)), steps_per_epoch, self.max_epochs,
                             self.min_epochs)

    def trial_epochs(self, kind: str, n_train: int) -> int:
        """A tuning trial's epochs on ``n_train`` images (the subset): its own budget, the final runs' rule."""
        steps = self.model1_trial_steps if kind == "model1" else self.model2_trial_steps
        self.steps_for(kind)  # refuses an unknown kind
        return budget_epochs(steps, math.ceil(n_train / self.batch_size), self.max_epochs, self.min_epochs)


# The standard stub (2,000 training images, 32 steps an epoch) gets 7 epochs of model1 and 3 of model2.
PROFILES = {
    "quick": Profile("quick", stub_train=320, stub_test=80, val_fraction=0.25,
                     model1_steps=8, model2_steps=4, max_epochs=4, min_epochs=1, patience=None,
                     tune_trials=2, model1_trial_steps=2, model2_trial_steps=1, tune_subset=0.5,
                     interpret_per_class=1,
                     batch_size=64, test_time_augmentation=False,
                     # a look at the methods, half the standard cost: 8 IG passes, 4 x 4 occlusions
                     ig_noisy_copies=2, ig_steps=4, occlusion_window=25, occlusion_stride=25),
    "standard": Profile("standard", stub_train=2500, stub_test=600, val_fraction=0.2,
                        model1_steps=220, model2_steps=95, max_epochs=40, min_epochs=2, patience=6,
                        # 8 short trials a model on 15% of the split (5 steps an epoch): model1 4 epochs,
                        # model2 3 (its steps cost more); ASHA's first rung (epoch 2) compares all 8 alike
                        tune_trials=8, model1_trial_steps=20, model2_trial_steps=15, tune_subset=0.15,
                        interpret_per_class=1, batch_size=64,
                        # TTA (8 passes a patch over the validation split, per model) is tried in the full profile only
                        test_time_augmentation=False,
                        # 16 IG passes and 6 x 6 occlusions per patch: 60% of the full profile's Captum cost
                        ig_noisy_copies=2, ig_steps=8, occlusion_window=20, occlusion_stride=16),
    "full": Profile("full", stub_train=10000, stub_test=5041, val_fraction=0.15,
                    model1_steps=2000, model2_steps=800, max_epochs=60, min_epochs=3, patience=8,
                    tune_trials=16, model1_trial_steps=800, model2_trial_steps=320, tune_subset=1.0,
                    interpret_per_class=1,
                    batch_size=128),
}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}: choose one of {', '.join(PROFILES)}") from None
