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
# A high accuracy does not tell whether a model looks at the nucleus in the centre of the patch or at
# something incidental, such as the stain of the background. Attribution methods from **Captum** assign each
# input pixel a share of the responsibility for a prediction:
#
# - **Saliency**: the gradient of the class score with respect to the pixels; fast but noisy.
# - **Integrated Gradients with NoiseTunnel** (SmoothGrad): gradients integrated along a path from a plain
#   patch of the training images' mean colour (zero after normalisation) to the patch, averaged over noisy
#   copies of it; steadier than plain gradients.
# - **Occlusion**: covers the patch with a sliding square of the mean colour and measures how much the
#   score drops; slow, but it needs no gradients and is easy to explain.
#
# For every class we show one correctly and one wrongly classified validation patch when the model made
# such an error.

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

from labkit import evidence, interpret, results
from labkit.notebook import (
    chapter_parameters,
    say,
    show_figure,
    show_source,
    start_chapter,
)

ctx = start_chapter("06_interpretation", **chapter_parameters(globals()))
nuclei = ctx.data
final = {name: results.load_final(ctx.run, name) for name in ("model1", "model2")}
val_images = nuclei.train_images[nuclei.val_idx]
val_dataset = nuclei.val_dataset()

# %% [markdown]
# The Captum calls, from `labkit.interpret`:

# %%
show_source(interpret.attribute)

# %%
captum_settings = ctx.profile.captum_settings()  # what the profile spends on each patch
window, stride = captum_settings["window"], captum_settings["stride"]
positions = interpret.occlusion_positions(val_images.shape[-1], window, stride) ** 2
say(f"This build's settings ({ctx.profile.name} profile): IG + SmoothGrad averages "
    f"{captum_settings['n_samples']} noisy copies x {captum_settings['n_steps']} integration steps per patch; "
    f"Occlusion covers a {window}-pixel square every {stride} pixels ({positions} positions per patch).")
attributions, checked_inputs = {}, {}
for name, model in final.items():
    pred = ctx.run.load_json(f"diagnostics/{name}_val_predictions.json")
    labels, preds = np.asarray(pred["labels"]), np.asarray(pred["preds"])
    picks = interpret.pick_examples(labels, preds, per_class=ctx.profile.interpret_per_class)
    inputs = torch.stack([val_dataset[i][0] for i in picks])
    with ctx.timer.phase("captum"):
        attributions[name] = interpret.explain(model, inputs, preds[picks], **captum_settings)
    checked_inputs[name] = (inputs, preds[picks])
    with ctx.timer.phase("figures"):
        fig = interpret.attribution_figure(model, inputs, val_images[picks], labels[picks], preds[picks],
                                           title=f"{name}: Captum attributions", attributions=attributions[name],
                                           probs=np.asarray(pred["probs"])[picks])
        show_figure(fig, ctx.run, f"{name}_captum")
    evidence.record(f"captum_{name}", f"Saliency, Integrated Gradients + NoiseTunnel and Occlusion on "
                    f"{len(picks)} validation patches", model=name, patches=len(picks))

# %% [markdown]
# ## 6.1 A number behind the pictures, and a sanity check
#
# Heat maps are easy to over-read. As a check we measure, for each method and model, the share of positive
# attribution that falls in the central region of the patch where the nucleus to classify sits. If a model
# looked everywhere equally, that share would equal the central region's share of the area.
#
# A heat map can also look convincing while explaining nothing: some methods mostly redraw the patch's edges
# and dark blobs, whatever the model learned. The standard sanity check (Adebayo et al., 2018, "Sanity
# checks for saliency maps") computes the same maps for a copy of the model with re-initialised weights. A
# method whose maps barely change (a high rank correlation) is not explaining the model.

# %%
show_source(interpret.randomisation_check)
randomisation = {}
for name, model in final.items():
    picks_inputs, picks_targets = checked_inputs[name]
    with ctx.timer.phase("captum"):
        randomisation[name] = interpret.randomisation_check(model, picks_inputs, picks_targets, attributions[name],
                                                            seed=seed, **captum_settings)
table = interpret.central_share_table(attributions, randomisation=randomisation)
ctx.run.save_frame("diagnostics/central_share.csv", table)
display(table.style.format({"central_share": "{:.1%}", "area_share": "{:.1%}", "times_chance": "{:.2f}x",
                            "similarity_to_random": "{:.2f}"}, na_rep="not run").hide(axis="index"))
say(interpret.describe_central_share(table))
