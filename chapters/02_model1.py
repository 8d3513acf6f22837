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
# The first model is my own, trained from random weights. Each block is a 3x3 convolution, batch
# normalisation, ReLU and a max pool that halves the resolution. A global average pool then reduces each
# feature map to one number, so the classifier needs few weights and tolerates a nucleus that is not exactly
# centred. Dropout before the classifier limits overfitting.

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

from labkit import conclusions, evidence, narrative, recipes
from labkit.data import make_loader
from labkit.notebook import chapter_parameters, pct, say, show_figure, start_chapter
from labkit.train import describe_stop

ctx = start_chapter("02_model1", **chapter_parameters(globals()))
nuclei = ctx.data

# %% [markdown]
# ## 2.1 The architecture, and its size
#
# The coursework allows no more than 8 layers. I count layers as networks are usually counted: VGG-16's 16
# are its 13 convolutions and 3 fully connected layers, while the batch normalisation, ReLU, pooling and
# dropout around them are not counted. `Model1` refuses more than 8 such layers. For a reader who counts
# differently, the cell below also counts every module, by type.

# %%
# %load labkit.models.Model1
# %load labkit.models.build_model1
# %load labkit.models.count_layers

# %%
config = recipes.baseline_config("model1", ctx.profile)  # hand-picked settings
model1 = build_model1(config)
layers = count_layers(model1)
n_params = sum(p.numel() for p in model1.parameters())
print(model1)
print("modules by type:", ", ".join(f"{n} {kind}" for kind, n in layers.by_type.items()))
print(f"layers counted as VGG-16 counts them (Conv2d + Linear): {layers.weight_layers}, at most 8 allowed; "
      f"every module: {layers.all_layers}; parameters: {n_params:,}")

# %% tags=["report"]
evidence.record("model1_small_convnet",
                f"own ConvNet with {layers.weight_layers} layers counted as Conv2d + Linear (limit 8), "
                f"{layers.all_layers} modules in all, {n_params:,} parameters",
                model="model1", weight_layers=layers.weight_layers, all_layers=layers.all_layers,
                parameters=n_params)

# %% [markdown]
# ## 2.2 The training loop
#
# One loop trains both models. Each epoch trains on the augmented training split, then measures validation
# loss and accuracy. The loop keeps the weights with the lowest validation loss, can stop early when it stops
# improving, and follows a one-cycle learning-rate schedule: a short warm-up, then a decay to almost zero.

# %%
# %load labkit.train.fit

# %% [markdown]
# ## 2.3 A first run with hand-picked settings
#
# A baseline with hand-picked settings shows what the architecture can do before any search.

# %%
print("settings:", recipes.describe_settings(config))
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
conclusions.decide(ctx.run, "training_model1", best_val_acc=baseline.best_val_acc, best_epoch=baseline.best_epoch,
                   planned_epochs=baseline.planned_epochs, **narrative.training_record(h, baseline.best_epoch))
stopped_early = len(h.epoch) < baseline.planned_epochs
say(f"The baseline reaches **{pct(baseline.best_val_acc)} validation accuracy** with the weights of epoch "
    f"{baseline.best_epoch} of {len(h.epoch)}" + (f"; {describe_stop(baseline)}. " if stopped_early else ". ")
    + narrative.describe_training(h, "model1 baseline", baseline.best_epoch)
    + narrative.describe_spikes(h))
