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
# # 6. What do the models look at? Interpretation with Captum
#
# Does a model look at the nucleus in the centre, or at something incidental such as the background stain?
# Three **Captum** methods give each pixel a share of a prediction: **Saliency** (the gradient of the class
# score; fast, noisy), **Integrated Gradients** from a patch of the training images' mean colour, averaged
# over noisy copies (**NoiseTunnel**, SmoothGrad), and **Occlusion** (how much the score drops when a square
# of the patch is replaced by that mean colour). Each class has one right and, where there is one, one wrong
# validation patch; under each map is the share of its positive attribution inside the dashed disc.

# %% [markdown] tags=["if:pretrained"]
# model2 started from loaded weights, so its maps show what those weights and the training here hold
# together; nothing in them separates the two.

# %% [markdown] tags=["if:not-pretrained"]
# model2 was trained from random weights on these patches alone, so its maps show what it learned here, as
# model1's do; they cannot show what a network pretrained on ImageNet would look at.

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
import numpy as np
import torch
from IPython.display import display

from labkit import conclusions, evidence, interpret, results
from labkit.notebook import chapter_parameters, say, show_figure, start_chapter
from labkit.train import pick_device

ctx = start_chapter("06_interpretation", **chapter_parameters(globals()))
nuclei = ctx.data
# Captum runs where the models are: on the GPU when there is one
model1, model2 = (results.load_final(ctx.run, name).to(pick_device(ctx.device)) for name in ("model1", "model2"))
val_images = nuclei.train_images[nuclei.val_idx]
val_dataset = nuclei.val_dataset()
captum_settings = ctx.profile.captum_settings()  # noisy copies, integration steps, occlusion window and stride

# %% [markdown]
# ## 6.1 The Captum calls

# %%
# %load labkit.interpret.attribute
# %load labkit.interpret.explain
# %load labkit.interpret.pick_examples
# %load labkit.interpret.attribution_figure

# %%
pred1 = ctx.run.load_json("diagnostics/model1_val_predictions.json")  # chapter 5's predictions
labels1, preds1 = np.asarray(pred1["labels"]), np.asarray(pred1["preds"])
picks1 = pick_examples(labels1, preds1, per_class=ctx.profile.interpret_per_class)
inputs1 = torch.stack([val_dataset[i][0] for i in picks1])
with ctx.timer.phase("captum"):
    attributions1 = explain(model1, inputs1, preds1[picks1], **captum_settings)  # target: the predicted class

# %%
show_figure(attribution_figure(model1, inputs1, val_images[picks1], labels1[picks1], preds1[picks1],
                               title="model1: Captum attributions", attributions=attributions1,
                               probs=np.asarray(pred1["probs"])[picks1]), ctx.run, "model1_captum")

# %% tags=["report"]
evidence.record("captum_model1", f"Saliency, Integrated Gradients + NoiseTunnel and Occlusion on {len(picks1)} "
                "validation patches", model="model1", patches=len(picks1))

# %%
pred2 = ctx.run.load_json("diagnostics/model2_val_predictions.json")
labels2, preds2 = np.asarray(pred2["labels"]), np.asarray(pred2["preds"])
picks2 = pick_examples(labels2, preds2, per_class=ctx.profile.interpret_per_class)
inputs2 = torch.stack([val_dataset[i][0] for i in picks2])
with ctx.timer.phase("captum"):
    attributions2 = explain(model2, inputs2, preds2[picks2], **captum_settings)

# %%
show_figure(attribution_figure(model2, inputs2, val_images[picks2], labels2[picks2], preds2[picks2],
                               title="model2: Captum attributions", attributions=attributions2,
                               probs=np.asarray(pred2["probs"])[picks2]), ctx.run, "model2_captum")

# %% tags=["report"]
evidence.record("captum_model2", f"Saliency, Integrated Gradients + NoiseTunnel and Occlusion on {len(picks2)} "
                "validation patches", model="model2", patches=len(picks2))

# %% [markdown]
# ## 6.2 A number behind the pictures, and a sanity check
#
# Heat maps are easy to over-read, so the table gives each method's share of positive attribution inside the
# disc, averaged over the patches, against the disc's share of the area. The disc holds the nucleus and some
# of its neighbourhood, so a share inside it is not a share on the nucleus. Two checks say whether a method
# explains the model at all: maps recomputed for a copy with re-initialised weights should change (Adebayo et
# al., 2018), and maps of different patches should differ. A method fails when either mean rank correlation
# reaches the threshold printed below, and its shares are then not read.

# %%
# %load labkit.interpret.randomised_copy
# %load labkit.interpret.randomisation_check

# %%
print("a method fails the check at a rank correlation of", interpret.RANDOMISATION_SIMILAR, "or more")
with ctx.timer.phase("captum"):
    randomisation = {
        "model1": randomisation_check(model1, inputs1, preds1[picks1], attributions1, seed=seed, **captum_settings),
        "model2": randomisation_check(model2, inputs2, preds2[picks2], attributions2, seed=seed, **captum_settings)}
table = interpret.central_share_table({"model1": attributions1, "model2": attributions2}, randomisation=randomisation,
                                     across_patches=True)
ctx.run.save_frame("diagnostics/central_share.csv", table)
display(table.style.format({"central_share": "{:.1%}", "area_share": "{:.1%}", "times_chance": "{:.2f}x",
                            "similarity_to_random": "{:.2f}", "similarity_across_patches": "{:.2f}"},
                           na_rep="not run").hide(axis="index"))

# %% tags=["report"]
conclusions.decide(ctx.run, "captum", rows=table.to_dict(orient="records"))
say(interpret.describe_central_share(table))
