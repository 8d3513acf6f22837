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
# The first model is my own: a small convolutional network with at most eight weight layers, trained from
# random initialisation on the training split only. Each block is a 3x3 convolution, batch normalisation,
# ReLU and max pooling that halves the resolution. A global average pool then summarises each feature map
# into one number, so the classifier needs few weights and the network tolerates a nucleus that is not
# exactly centred. Dropout before the classifier limits overfitting. Width, dropout and batch normalisation
# are arguments, so that Ray Tune can change them in chapter 4.

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

from labkit import evidence, narrative, recipes
from labkit.data import make_loader
from labkit.notebook import chapter_parameters, pct, say, show_figure, start_chapter
from labkit.train import describe_stop

ctx = start_chapter("02_model1", **chapter_parameters(globals()))
nuclei = ctx.data

# %% [markdown]
# ## 2.1 The architecture

# %%
# %load labkit.models.Model1
# %load labkit.models.build_model1
# %load labkit.models.count_layers

# %%
config = recipes.baseline_config("model1", ctx.profile)  # hand-picked; chapter 4 searches around it
model1 = build_model1(config)
layers = count_layers(model1)
n_params = sum(p.numel() for p in model1.parameters())
print(model1)
print(f"{layers.weight_layers} weight layers (Conv2d + Linear; the limit is 8) among {layers.all_layers} layers; "
      f"{n_params:,} parameters")

# %% tags=["report"]
evidence.record("model1_small_convnet",
                f"own ConvNet with {layers.weight_layers} weight layers (limit 8), {n_params:,} parameters",
                model="model1", weight_layers=layers.weight_layers, all_layers=layers.all_layers,
                parameters=n_params)

# %% [markdown]
# ## 2.2 The training loop
#
# One loop trains both models. Each epoch it trains on the training split with augmentation, then measures
# loss and accuracy on the validation split; it keeps the weights with the lowest validation loss, can stop
# early when that stops improving, and follows a one-cycle learning-rate schedule (a short warm-up, then a
# smooth decay).

# %%
# %load labkit.train.fit

# %% [markdown]
# ## 2.3 A first run with hand-picked settings
#
# Before tuning, a baseline with hand-picked settings shows what the architecture can do and gives the
# search something to beat.

# %%
train_loader = make_loader(nuclei.train_dataset(augment=True, seed=seed), config["batch_size"], shuffle=True,
                           device=ctx.device)
val_loader = make_loader(nuclei.val_dataset(), config["batch_size"], shuffle=False, device=ctx.device)
with ctx.timer.phase("training"):
    baseline = fit(model1, train_loader, val_loader, epochs=ctx.profile.epochs_for("model1", len(nuclei.train_idx)),
                   patience=ctx.profile.patience, lr=config["lr"],
                   weight_decay=config["weight_decay"], optimizer=config["optimizer"], device=ctx.device,
                   seed=seed, name="model1")

# %%
# %load labkit.diagnostics.curves_figure

# %%
show_figure(curves_figure(baseline.history, "model1 baseline: loss and accuracy per epoch"), ctx.run,
            "model1_baseline_curves")

# %% tags=["report"]
ctx.run.save_checkpoint("model1/baseline.pt", model1, config=config, best_epoch=baseline.best_epoch)
ctx.run.save_json("model1/baseline_history.json", baseline.history.to_dict())
h = baseline.history
evidence.record("curves_model1", f"loss and accuracy curves over {len(h.epoch)} epoch(s)", model="model1",
                epochs=len(h.epoch), best_val_acc=baseline.best_val_acc)
say(f"Settings: {recipes.describe_settings(config)}. "
    f"The baseline reaches **{pct(baseline.best_val_acc)} validation accuracy** with the weights it keeps, those "
    f"of epoch {baseline.best_epoch}; {describe_stop(baseline, steps_per_epoch=len(train_loader))}. "
    + narrative.describe_training(h, "model1 baseline", baseline.best_epoch)
    + narrative.describe_spikes(h)
    + f" One epoch took {sum(h.seconds) / len(h.seconds):.1f} s.")
