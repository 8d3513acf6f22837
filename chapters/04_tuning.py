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
# Learning rate, weight decay, width, dropout and batch size interact, so I search them together with
# **Ray Tune**: each trial reports validation loss and accuracy after every epoch, and the **ASHA** scheduler
# stops trials that are clearly behind. Trials train on a subset of the training split with a share of the
# final budget; the first trial of each search is the baseline's hand-picked settings, so the search is
# measured against them on equal terms.

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

from labkit import evidence, narrative, results, tuning_report
from labkit.diagnostics import curves_figure
from labkit.notebook import chapter_parameters, pct, say, show_figure, start_chapter
from labkit.tune import init_ray, shutdown_ray, train_final

ctx = start_chapter("04_tuning", **chapter_parameters(globals()))
nuclei = ctx.data
with ctx.timer.phase("ray start"):
    cluster = init_ray(ctx.ray_address or None)
ctx.run.save_json("tuning/cluster.json", {"address": ctx.ray_address, "resources": cluster})  # for the appendix
p = ctx.profile
n_val = len(nuclei.val_idx)
val_counts = nuclei.class_counts("val")  # the bar a trial must clear: always predicting the largest class
always_largest = {"majority_rate": val_counts.max() / val_counts.sum(), "majority_class": val_counts.idxmax(),
                  "n_val": n_val}

# %% [markdown]
# ## 4.1 Search spaces
#
# Learning rates and weight decay are sampled on a log scale, because their effect is about ratios, not
# differences. For model2 the head and the backbone have separate learning rates, and the number of unfrozen
# backbone stages is searched too.

# %%
# %load labkit.recipes.model1_search_space
# %load labkit.recipes.model2_search_space

# %%
weights = ctx.run.load_json("model2/weights.json")  # chapter 3: ImageNet weights, or random ones
display(tuning_report.describe_space(model1_search_space(p)).rename_axis("model1"))
display(tuning_report.describe_space(model2_search_space(p, pretrained=weights["pretrained"])).rename_axis("model2"))

# %% [markdown]
# ## 4.2 The Ray Tune code
#
# `run_search` builds the `Tuner` from the trainable `_run_trial` (the image tensors go into Ray's object store
# once, through `tune.with_parameters`), the search space and the ASHA scheduler. Each trial trains with the
# same `fit` as chapters 2 and 3, whose `report` hook passes each epoch's metrics to `tune.report`.

# %%
# %load labkit.tune._run_trial
# %load labkit.tune.run_search

# %% [markdown]
# ## 4.3 Searching model1
#
# A search's best score is the highest of several on the same validation split, so it is slightly optimistic;
# section 4.5 therefore retrains a winner before it is compared with its baseline.

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
say(tuning_report.describe_result(result1, "model1", **always_largest) + " " + tuning_report.describe_cost(result1))

# %% [markdown]
# ## 4.4 Searching model2

# %%
with ctx.timer.phase("tuning"):  # model2's trials share cached features of the frozen stages
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
say(tuning_report.describe_result(result2, "model2", **always_largest) + " " + tuning_report.describe_cost(result2))

# %% [markdown]
# ## 4.5 Retraining with the best configurations, where a search earned it
#
# Where a search's best settings beat the baseline's trial by more than one standard error of the validation
# accuracy, that model is retrained on the whole training split with the full budget, and the better of it
# and its baseline becomes the final model; otherwise the baseline stays final.

# %%
why_not1 = tuning_report.why_not_retrained(result1, n_val)
why_not2 = tuning_report.why_not_retrained(result2, n_val)
shutdown_ray()  # the searches are over: a final run should not share the cores with Ray's idle workers
with ctx.timer.phase("training"):
    final1 = None if why_not1 else train_final("model1", result1.best_config, nuclei, p, device=ctx.device,
                                               seed=seed)
    final2 = None if why_not2 else train_final(
        "model2", result2.best_config, nuclei, p, device=ctx.device, seed=seed, weights_file=ctx.weights_file or None,
        allow_random=ctx.is_stub, run_dir=ctx.run)
verdict1 = results.choose_final(ctx.run, "model1", final1, result1.best_config, kept_because=why_not1)
verdict2 = results.choose_final(ctx.run, "model2", final2, result2.best_config, kept_because=why_not2,
                                arch=weights["arch"])
for name, final in (("model1", final1), ("model2", final2)):  # the curves of a run made here
    if final is not None:
        show_figure(curves_figure(final.fit.history, f"{name}: retrained with the search's best settings"), ctx.run,
                    f"{name}_tuned_curves")

# %% tags=["report"]
say("- " + verdict1 + "\n- " + verdict2)
for name, final in (("model1", final1), ("model2", final2)):
    if final is not None:
        say(narrative.describe_training(final.fit.history, f"the retrained {name}")
            + narrative.describe_spikes(final.fit.history))
