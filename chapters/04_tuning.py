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
# # 4. Hyperparameter search with Ray Tune
#
# For each model I search the two or three settings that most change what it learns and keep the others at
# the baseline's values. A trial trains on part of the training split for a few epochs and reports validation
# loss and accuracy after every epoch, with a checkpoint of its weights at its lowest validation loss. The
# **ASHA** scheduler stops trials that fall behind, except the trial with the baseline's own settings: it always
# runs to the end, so the search's best can be compared with it after the same number of epochs.

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
from IPython.display import display

from labkit import configuration, evidence, narrative, results, tuning_report
from labkit.diagnostics import curves_figure
from labkit.notebook import chapter_parameters, pct, say, show_figure, start_chapter
from labkit.tune import init_ray, shutdown_ray, train_final

ctx = start_chapter("04_tuning", **chapter_parameters(globals()))
nuclei = ctx.data
with ctx.timer.phase("ray start"):
    cluster = init_ray(ctx.ray_address or None)
ctx.run.save_json("tuning/cluster.json", {"address": ctx.ray_address, "resources": cluster})  # for the appendix
p = ctx.profile
val_counts = nuclei.class_counts("val")  # the bar a trial must clear: always predicting the largest class
always_largest = {"majority_rate": val_counts.max() / val_counts.sum(), "majority_class": val_counts.idxmax(),
                  "n_val": len(nuclei.val_idx)}

# %% [markdown]
# ## 4.1 Search spaces
#
# Learning rates and weight decay act by ratios, so they are sampled on a log scale; model1's dropout is
# sampled uniformly.

# %% [markdown] tags=["if:model2_stages_searched"]
# model2's new head and its pretrained backbone get separate learning rates: the backbone's range is lower, so
# that fine-tuning adjusts the ImageNet features rather than overwriting them. The number of backbone stages
# unfrozen from the end is searched as well; weight decay stays the baseline's.

# %% [markdown] tags=["if:not-model2_stages_searched"]
# model2 starts from random weights here, so every stage trains and there is no choice of how many to
# unfreeze. Its search varies the learning rates of the new head and of the backbone, and weight decay.

# %%
# %load labkit.recipes.model1_search_space
# %load labkit.recipes.model2_search_space

# %%
weights = ctx.run.load_json("model2/weights.json")  # chapter 3: ImageNet weights, or random ones
space2 = model2_search_space(p, pretrained=weights["pretrained"])
configuration.note(ctx.run, model2_stages_searched="unfrozen_stages" in space2)
display(tuning_report.describe_space(model1_search_space(p)).rename_axis("model1"))
display(tuning_report.describe_space(space2).rename_axis("model2"))

# %% [markdown]
# ## 4.2 The Ray Tune code
#
# `run_search` builds the `Tuner` from the trainable `_run_trial` (the image tensors go into Ray's object store
# once, through `tune.with_parameters`), the search space and the ASHA scheduler. Each trial trains with the
# same `fit` as chapters 2 and 3; its `report` hook passes each epoch's metrics to `tune.report`, with a
# checkpoint whenever the validation loss is the lowest so far.

# %%
# %load labkit.tune._run_trial
# %load labkit.tune.run_search

# %% [markdown]
# ## 4.3 Searching model1
#
# The best trial is the one with the highest validation accuracy among those that ran every epoch. It is chosen
# on the validation split, so its score is optimistic; what matters is whether it beats the baseline's trial.
# Unless it is that trial, both checkpoints are restored and scored on the same validation patches, and
# McNemar's exact test asks whether the patches only one of them gets right split more unevenly than chance.

# %%
with ctx.timer.phase("tuning"):
    result1 = run_search("model1", nuclei, p, device=ctx.device, seed=seed, ray_address=ctx.ray_address or None,
                         storage_dir=ctx.run.path("tuning/ray"))
result1.save(ctx.run, "model1")
display(tuning_report.trials_table(result1))
with ctx.timer.phase("figures"):
    show_figure(tuning_report.trials_figure(result1), ctx.run, "tuning_model1_trials")
    if len(result1.table) >= tuning_report.MIN_TRIALS_FOR_SCATTER:
        show_figure(tuning_report.score_figure(result1), ctx.run, "tuning_model1_scores")

# %% tags=["report"]
evidence.record("tuning_model1",
                f"Ray Tune with ASHA: {len(result1.table)} trials, best validation accuracy "
                f"{pct(result1.best_score)}", model="model1", trials=len(result1.table),
                failed=len(result1.failed), best_config=result1.best_config)
say(" ".join(filter(None, (tuning_report.describe_result(result1, "model1", **always_largest),
                           tuning_report.describe_comparison(result1)))))

# %% [markdown]
# ## 4.4 Searching model2

# %%
with ctx.timer.phase("tuning"):  # model2's trials share cached features of frozen stages where there are any
    result2 = run_search("model2", nuclei, p, device=ctx.device, seed=seed, ray_address=ctx.ray_address or None,
                         storage_dir=ctx.run.path("tuning/ray"), weights_file=ctx.weights_file or None,
                         allow_random=ctx.is_stub, run_dir=ctx.run)
result2.save(ctx.run, "model2")
display(tuning_report.trials_table(result2))
with ctx.timer.phase("figures"):
    show_figure(tuning_report.trials_figure(result2), ctx.run, "tuning_model2_trials")
    if len(result2.table) >= tuning_report.MIN_TRIALS_FOR_SCATTER:
        show_figure(tuning_report.score_figure(result2), ctx.run, "tuning_model2_scores")

# %% tags=["report"]
evidence.record("tuning_model2",
                f"Ray Tune with ASHA: {len(result2.table)} trials, best validation accuracy "
                f"{pct(result2.best_score)}", model="model2", trials=len(result2.table),
                failed=len(result2.failed), best_config=result2.best_config)
say(" ".join(filter(None, (tuning_report.describe_result(result2, "model2", **always_largest),
                           tuning_report.describe_comparison(result2)))))

# %% [markdown]
# ## 4.5 The final models
#
# A search earns a full-budget run of its best settings, on the whole training split, only when its best trial
# got significantly more validation patches right than the baseline's trial (p < 0.05). Otherwise the baseline
# that chapter 2 or 3 trained with the full budget stays final, and no minutes are spent on a second run.

# %%
shutdown_ray()  # the searches are over: a final run should not share the cores with Ray's idle workers
with ctx.timer.phase("training"):
    final1 = train_final("model1", result1.best_config, nuclei, p, device=ctx.device,
                         seed=seed) if result1.retrain else None
    final2 = train_final("model2", result2.best_config, nuclei, p, device=ctx.device, seed=seed,
                         weights_file=ctx.weights_file or None, allow_random=ctx.is_stub,
                         run_dir=ctx.run) if result2.retrain else None
verdict1 = results.choose_final(ctx.run, "model1", final1, result1.best_config,
                                kept_because=tuning_report.why_not_retrained(result1))
verdict2 = results.choose_final(ctx.run, "model2", final2, result2.best_config,
                                kept_because=tuning_report.why_not_retrained(result2), arch=weights["arch"])
configuration.note(ctx.run, retrained_after_search=final1 is not None or final2 is not None)
for name, final in (("model1", final1), ("model2", final2)):  # the curves of a run made here
    if final is not None:
        show_figure(curves_figure(final.fit.history, f"{name}: retrained with the search's best settings"), ctx.run,
                    f"{name}_tuned_curves")

# %% [markdown] tags=["if:retrained_after_search"]
# A retrained model is compared with its baseline again, after the same full budget: short trials on a subset
# favour settings that learn fast, and those are not always the settings that end up best.

# %% tags=["report"]
say("- " + verdict1 + "\n- " + verdict2)
for name, final in (("model1", final1), ("model2", final2)):
    if final is not None:
        say(tuning_report.describe_retrained(ctx.run, name, final, nuclei, device=ctx.device)
            + " " + narrative.describe_training(final.fit.history, f"the retrained {name}")
            + narrative.describe_spikes(final.fit.history))
