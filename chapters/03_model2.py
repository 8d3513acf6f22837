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
# # 3. Model 2: a torchvision network with a new head
#
# The second model is meant for transfer learning: it starts from a network trained on ImageNet's 1.3
# million photographs, whose early layers detect edges, blobs and textures that are just as useful in
# histology, so that it needs fewer of our images to learn the task. We replace its 1000-class classifier
# with a new 4-class head, freeze the early stages, and train the last stages of the backbone with a
# smaller learning rate than the head, so that pretrained features are adjusted rather than overwritten.
# Whether this build actually started from ImageNet's weights is said in 3.1, from the file's hash.

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
import warnings

from IPython.display import display

from labkit import diagnostics, evidence, models, narrative, recipes, train
from labkit.notebook import (
    chapter_parameters,
    pct,
    say,
    show_figure,
    show_source,
    start_chapter,
)

ctx = start_chapter("03_model2", **chapter_parameters(globals()))
nuclei = ctx.data

# %% [markdown]
# ## 3.1 The starting weights
#
# The weights come through torchvision's own weights API (its cache, then a download), or from a file given
# with `--weights`. Either way the file's SHA-256 is compared with the hash that torchvision publishes in the
# weight's file name, so the report can say whether these are really the published ImageNet weights.
# `build_model2` loads and checks them; without any weights (an offline stub build) it falls back to random
# initialisation and says so.

# %%
with warnings.catch_warnings():  # the warning is shown once, as the note below
    warnings.simplefilter("ignore")
    model2, weights = models.build_model2(weights_file=ctx.weights_file or None, allow_random=ctx.is_stub)
ctx.run.save_json("model2/weights.json", weights.as_dict())
display(weights.as_dict())
evidence.record("model2_pretrained",
                f"{weights.arch} with {weights.weights or 'no'} weights from {weights.source}; "
                f"pretrained={weights.pretrained}, verified={weights.verified}",
                model="model2", **weights.as_dict())
say(narrative.describe_weights(weights.as_dict()))

# %% [markdown]
# ## 3.2 The new head and what is trained
#
# The original classifier is replaced by a new layer with four outputs. `set_unfrozen_stages` freezes the
# backbone except its last stages, and `model2_param_groups` gives the head and the unfrozen stages their own
# learning rates. The table shows which parameters are trained with 0, 1 or 2 stages unfrozen.

# %%
show_source(models.replace_head, models.set_unfrozen_stages, models.model2_param_groups)
print("new head:", models.head_of(model2))
trainable = models.trainable_table(model2, [0, 1, 2])
display(trainable)

# %% [markdown]
# ## 3.3 A first run with hand-picked settings
#
# A baseline with hand-picked settings: the head and the last stages of the backbone train, the head with a
# larger learning rate than the backbone.

# %%
config = recipes.baseline_config("model2", ctx.profile)  # hand-picked; chapter 4 searches around it
say(f"The baseline's settings (`labkit.recipes`): {recipes.describe_settings(config)}.")
models.set_unfrozen_stages(model2, config["unfrozen_stages"])
# the frozen stages run once per patch and view, not every epoch: labkit.features caches their output
with ctx.timer.phase("training"):
    baseline = recipes.train_model("model2", model2, config, nuclei, device=ctx.device, seed=seed, run_dir=ctx.run,
                                   epochs=ctx.profile.epochs_for("model2", len(nuclei.train_idx)),
                                   patience=ctx.profile.patience, name="model2")
ctx.run.save_checkpoint("model2/baseline.pt", model2, arch=weights.arch, config=config,
                        best_epoch=baseline.best_epoch)
ctx.run.save_json("model2/baseline_history.json", baseline.history.to_dict())

# %%
show_figure(diagnostics.curves_figure(baseline.history, f"model2 ({weights.arch}) baseline"), ctx.run,
            "model2_baseline_curves")
h = baseline.history
say(f"model2 ({narrative.model2_name(weights.as_dict())}) reaches **{pct(baseline.best_val_acc)} validation "
    f"accuracy** with the weights it keeps, those of epoch {baseline.best_epoch} (the lowest validation loss); "
    f"{train.describe_stop(baseline, ctx.profile.model2_steps)}. "
    + narrative.describe_training(h, "model2 baseline", baseline.best_epoch)
    + f" One epoch took "
    f"{sum(h.seconds) / len(h.seconds):.1f} s on {ctx.device}. Its budget is {ctx.profile.model2_steps} optimizer "
    f"steps against model1's {ctx.profile.model1_steps}, because each of its steps costs several of model1's; "
    "chapter 7 compares the two models' size and cost.")
