# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 2. Model 1: a small ConvNet trained from scratch
#
# The first model is our own: a small convolutional network with at most eight weight layers, trained from
# random initialisation on the training split only. Each block is convolution, batch normalisation, max
# pooling that halves the resolution, then ReLU: the textbook order puts ReLU before the pooling, but ReLU
# never changes which value is largest, so pooling first computes the same function with the ReLU on a
# quarter of the values (a tenth less time per training step on a CPU). A global average pool then
# summarises each feature map into one number, so the classifier needs few weights and the network tolerates
# the nucleus not being exactly centred. Dropout before the classifier limits overfitting on a few thousand
# patches.

# %% tags=["parameters"]
# Set by build.py through papermill (the contract: labkit.notebook.ChapterParameters);
# these defaults let the chapter run by hand after a quick build.
team = "Dogs_Versus_Cats"
data_dir = ".cache/stub/quick-seed0"
is_stub = True
profile = "quick"
run_dir = "build/run"
cache_dir = ".cache"
device = "auto"
ray_address = ""
weights_file = ""
submission_file = ""
seed = 0

# %%
from labkit import data, diagnostics, evidence, models, narrative, recipes, train
from labkit.notebook import (
    chapter_parameters,
    pct,
    say,
    show_figure,
    show_source,
    start_chapter,
)

ctx = start_chapter("02_model1", **chapter_parameters(globals()))
nuclei = ctx.data

# %% [markdown]
# ## 2.1 The architecture
#
# This is the model's code. Its width, dropout and use of batch normalisation are parameters, so that Ray Tune
# can change them in chapter 4.

# %%
show_source(models.Model1)

# %%
config = recipes.baseline_config("model1", ctx.profile)  # hand-picked; chapter 4 searches around it
model1 = models.build_model1(config)
layers = models.count_layers(model1)
print(model1)
n_params = sum(p.numel() for p in model1.parameters())
evidence.record("model1_small_convnet",
                f"own ConvNet with {layers.weight_layers} weight layers (limit 8), {n_params:,} parameters",
                model="model1", weight_layers=layers.weight_layers, all_layers=layers.all_layers,
                parameters=n_params)
say(f"model1 has **{layers.weight_layers} weight layers** (convolutions and linear layers; the course's limit "
    f"is 8) among {layers.all_layers} layers in all, and **{n_params:,} parameters**: "
    + ", ".join(f"{n} {kind}" for kind, n in layers.by_type.items()) + ".")

# %% [markdown]
# ## 2.2 The training loop
#
# One loop trains both models (`labkit.train.fit`). Each epoch it trains on the training split with
# augmentation, then measures loss and accuracy on the validation split; it keeps the weights with the lowest
# validation loss, can stop early when that stops improving, and schedules the learning rate (one-cycle by
# default: a short warm-up, then a smooth decay).

# %%
show_source(train.fit)

# %% [markdown]
# ## 2.3 A first run with default settings
#
# Before tuning, a baseline with hand-picked settings shows what the architecture can do and gives the
# tuning chapter something to beat.

# %%
say(f"The baseline's settings (`labkit.recipes`): {recipes.describe_settings(config)}; the learning rate "
    "follows a one-cycle schedule.")
train_loader = data.make_loader(nuclei.train_dataset(augment=True, seed=seed), config["batch_size"],
                                shuffle=True, device=ctx.device)
val_loader = data.make_loader(nuclei.val_dataset(), config["batch_size"], shuffle=False, device=ctx.device)
with ctx.timer.phase("training"):
    baseline = train.fit(model1, train_loader, val_loader,
                         epochs=ctx.profile.epochs_for("model1", len(nuclei.train_idx)), patience=ctx.profile.patience,
                         lr=config["lr"], weight_decay=config["weight_decay"], optimizer=config["optimizer"],
                         device=ctx.device, seed=seed, name="model1")
ctx.run.save_checkpoint("model1/baseline.pt", model1, config=config, best_epoch=baseline.best_epoch)
ctx.run.save_json("model1/baseline_history.json", baseline.history.to_dict())

# %%
show_figure(diagnostics.curves_figure(baseline.history, "model1 baseline"), ctx.run, "model1_baseline_curves")
h = baseline.history
say(f"The baseline reaches **{pct(baseline.best_val_acc)} validation accuracy** with the weights it keeps, those "
    f"of epoch {baseline.best_epoch} (the lowest validation loss, {baseline.best_val_loss:.3f}); "
    f"{train.describe_stop(baseline, ctx.profile.model1_steps)}. "
    + narrative.describe_training(h, "model1 baseline", baseline.best_epoch)
    + f" One epoch took {sum(h.seconds) / len(h.seconds):.1f} s on {ctx.device}.")
