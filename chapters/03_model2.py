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
# # 3. Model 2: a torchvision ResNet with a new head
#
# The second model is torchvision's ResNet-18 with its 1000-class ImageNet classifier replaced by a new
# 4-class layer. The idea is transfer learning: trained on ImageNet's photographs, a ResNet's early stages
# detect edges, blobs and textures that also occur in H&E patches, so it needs fewer patches to learn the
# classes than a network that starts from nothing.

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

from labkit import conclusions, configuration, evidence, narrative, recipes
from labkit.diagnostics import curves_figure
from labkit.models import head_of, trainable_table
from labkit.notebook import chapter_parameters, pct, say, show_figure, start_chapter
from labkit.train import describe_stop

ctx = start_chapter("03_model2", **chapter_parameters(globals()))
nuclei = ctx.data

# %% [markdown]
# ## 3.1 The torchvision model and its weights
#
# The weights come through torchvision's weights API (its cache, then a download) or from a given file.
# torchvision publishes the first digits of each file's SHA-256 in its name, so the file can be checked.

# %%
# %load labkit.models.build_model2
# %load labkit.models.replace_head

# %%
with warnings.catch_warnings():  # the warning is shown once, as the note below
    warnings.simplefilter("ignore")
    model2, weights = build_model2(weights_file=ctx.weights_file or None, allow_random=ctx.is_stub)
ctx.run.save_json("model2/weights.json", weights.as_dict())
print(weights.arch, "starts from:", narrative.weights_start(weights.as_dict()))
print("new head:", head_of(model2))

# %% tags=["report"]
configuration.note(ctx.run, pretrained=weights.pretrained)
# the record leaves out the file's path and the loader's message: they name folders of the building machine
evidence.record("model2_pretrained",
                f"{weights.arch}, starting from: {narrative.weights_start(weights.as_dict())}; "
                f"pretrained={weights.pretrained}, verified={weights.verified}",
                model="model2", **{k: v for k, v in weights.as_dict().items() if k not in ("path", "message")})
say(narrative.describe_weights(weights.as_dict()))

# %% [markdown] tags=["if:pretrained"]
# ## 3.2 What is trained
#
# model2 starts from the loaded weights, so its early stages stay frozen and the last ones train with a
# smaller learning rate than the new head: the loaded features are adjusted rather than overwritten.
# `set_unfrozen_stages` and `model2_param_groups` do this; the table counts the parameters trained with 0, 1,
# 2 or all stages unfrozen.

# %% [markdown] tags=["if:not-pretrained"]
# ## 3.2 What is trained
#
# Without pretrained weights, frozen stages would only pass on random features, so every stage trains, at
# the head's learning rate: model2 is then a deep network trained from scratch on these patches, not
# transfer learning. The functions below freeze stages and split the learning rates where pretrained
# weights are loaded; the table counts the parameters each number of unfrozen stages would train.

# %%
# %load labkit.models.backbone_stages
# %load labkit.models.set_unfrozen_stages
# %load labkit.models.model2_param_groups

# %%
display(trainable_table(model2, [0, 1, 2, -1]))

# %% [markdown] tags=["if:pretrained"]
# ## 3.3 A first run with hand-picked settings
#
# `train_model` trains model2 with the same `fit` as model1. The frozen stages give the same output every
# epoch, so on a CPU that output is computed once per patch and view and cached, and only the trained
# stages run at every step.

# %% [markdown] tags=["if:not-pretrained"]
# ## 3.3 A first run with hand-picked settings
#
# `train_model` trains model2 with the same `fit` as model1, every stage at every step.

# %%
# %load labkit.recipes.train_model

# %%
config = recipes.baseline_config("model2", ctx.profile, pretrained=weights.pretrained)
set_unfrozen_stages(model2, config["unfrozen_stages"])
trained = sum(p.numel() for p in model2.parameters() if p.requires_grad)
print(f"settings: {recipes.describe_settings(config)}")
print(f"{trained:,} of {sum(p.numel() for p in model2.parameters()):,} parameters trained")
with ctx.timer.phase("training"):
    baseline = train_model("model2", model2, config, nuclei, device=ctx.device, seed=seed, run_dir=ctx.run,
                           epochs=ctx.profile.epochs_for("model2", len(nuclei.train_idx)),
                           patience=ctx.profile.patience, name="model2")

# %%
show_figure(curves_figure(baseline.history, f"model2 ({weights.arch}) baseline: loss and accuracy per epoch"),
            ctx.run, "model2_baseline_curves")

# %% tags=["report"]
ctx.run.save_checkpoint("model2/baseline.pt", model2, arch=weights.arch, config=config,
                        best_epoch=baseline.best_epoch)
ctx.run.save_json("model2/baseline_history.json", baseline.history.to_dict())
h = baseline.history
evidence.record("curves_model2", f"loss and accuracy curves over {len(h.epoch)} epoch(s)", model="model2",
                epochs=len(h.epoch), best_val_acc=baseline.best_val_acc)
conclusions.decide(ctx.run, "training_model2", best_val_acc=baseline.best_val_acc, best_epoch=baseline.best_epoch,
                   planned_epochs=baseline.planned_epochs, **narrative.training_record(h, baseline.best_epoch))
stopped_early = len(h.epoch) < baseline.planned_epochs
say(f"The baseline reaches **{pct(baseline.best_val_acc)} validation accuracy** with the weights of epoch "
    f"{baseline.best_epoch} of {len(h.epoch)}" + (f"; {describe_stop(baseline)}. " if stopped_early else ". ")
    + narrative.describe_training(h, "model2 baseline", baseline.best_epoch)
    + narrative.describe_spikes(h))
