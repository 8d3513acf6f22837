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
# Learning rate, weight decay, width, dropout and batch size interact, and the best values for these patches
# are not the textbook ones. We search them with **Ray Tune**: each trial trains a model with sampled
# hyperparameters and reports validation loss and accuracy after every epoch; the **ASHA** scheduler stops
# trials that are clearly behind at early checkpoints, so the budget goes to the promising ones. The data is
# placed once in Ray's object store and shared by all trials; no trial decodes an image again. Trials train
# on a subset of the training split with a share of the final runs' training budget (the same rule turns
# budget into epochs), and ASHA judges none of them on its first epoch alone.
# The first trial of each search uses the hand-picked settings of the chapter 2 and 3 baselines, so the
# search is measured against them on equal terms. Finally a model whose search clearly beat its baseline is
# retrained on the full training split with its best configuration.

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

from labkit import evidence, recipes, results, tune, tuning_report
from labkit.notebook import (
    chapter_parameters,
    pct,
    say,
    show_figure,
    show_source,
    start_chapter,
)

ctx = start_chapter("04_tuning", **chapter_parameters(globals()))
nuclei = ctx.data
with ctx.timer.phase("ray start"):
    cluster = tune.init_ray(ctx.ray_address or None)
p = ctx.profile
where = f"the Ray cluster at `{ctx.ray_address}`" if ctx.ray_address else "Ray started on this machine"
n_subset = round(p.tune_subset * len(nuclei.train_idx))
trial_epochs = {kind: p.trial_epochs(kind, n_subset) for kind in recipes.KINDS}
say(f"Profile **{p.name}**: {p.tune_trials} trials per model on {pct(p.tune_subset, 0)} of the training split, each "
    f"with {pct(p.tune_budget_share, 0)} of its model's training budget: at most {trial_epochs['model1']} "
    f"epoch(s) for model1 and {trial_epochs['model2']} for model2. ASHA may stop a trial only after "
    f"{tune.asha_grace_period(trial_epochs['model1'])} (model1) and "
    f"{tune.asha_grace_period(trial_epochs['model2'])} (model2) epoch(s). Trials run on {where} "
    f"({cluster.get('CPU', 0):.0f} CPUs, {cluster.get('GPU', 0):.0f} GPUs).")
val_counts = nuclei.class_counts("val")  # the bar a trial must clear: always predicting the largest class
always_largest = {"majority_rate": val_counts.max() / val_counts.sum(), "majority_class": val_counts.idxmax(),
                  "n_val": int(val_counts.sum())}

# %% [markdown]
# ## 4.1 Search spaces
#
# model1's space covers the optimiser and its learning rate, weight decay, the network's size (how many
# blocks, with how many channels each), dropout and the batch size. Learning rates and weight decay are
# sampled on a log scale, because their effect is about ratios, not differences.

# %%
show_source(recipes.model1_search_space)
display(tuning_report.describe_space(recipes.model1_search_space(p)))

# %% [markdown]
# For model2 we search the learning rates of the new head and of the backbone separately, how many backbone
# stages to unfreeze, weight decay and batch size.

# %%
show_source(recipes.model2_search_space)
display(tuning_report.describe_space(recipes.model2_search_space(p)))

# %% [markdown]
# ## 4.2 The Ray Tune code
#
# `run_search` builds the `Tuner`: the trainable (`_run_trial`, wrapped by `tune.with_parameters` so the image
# tensors go into Ray's object store once), the search space, the ASHA scheduler and Ray's resources per
# trial. `_run_trial` is what each trial runs: it builds the model from the sampled config and trains it with
# the same `fit` as chapters 2 and 3, whose `report` hook passes validation loss and accuracy to
# `tune.report` after every epoch, which is what ASHA reads to stop a trial early.

# %%
show_source(tune.run_search, tune._run_trial, tune.asha_scheduler)

# %% [markdown]
# ## 4.3 Searching model1

# %%
with ctx.timer.phase("tuning"):
    result1 = tune.run_search("model1", nuclei, p, device=ctx.device, seed=seed, ray_address=ctx.ray_address or None,
                              storage_dir=ctx.run.path("tuning/ray"))
result1.save(ctx.run, "model1")
display(tuning_report.trials_table(result1))
with ctx.timer.phase("figures"):
    show_figure(tuning_report.trials_figure(result1), ctx.run, "tuning_model1_trials")
    show_figure(tuning_report.score_figure(result1), ctx.run, "tuning_model1_scores")
evidence.record("tuning_model1",
                f"Ray Tune with ASHA: {len(result1.table)} trials, best validation accuracy "
                f"{pct(result1.best_score)}", model="model1", trials=len(result1.table),
                failed=len(result1.failed), best_config=result1.best_config)
say(tuning_report.describe_result(result1, "model1", **always_largest) + " " + tuning_report.describe_cost(result1))

# %% [markdown]
# ## 4.4 Searching model2

# %%
with ctx.timer.phase("tuning"):  # model2's trials share cached prefix features (labkit.features)
    result2 = tune.run_search("model2", nuclei, p, device=ctx.device, seed=seed, ray_address=ctx.ray_address or None,
                              storage_dir=ctx.run.path("tuning/ray"), weights_file=ctx.weights_file or None,
                              allow_random=ctx.is_stub, run_dir=ctx.run)
result2.save(ctx.run, "model2")
display(tuning_report.trials_table(result2))
with ctx.timer.phase("figures"):
    show_figure(tuning_report.trials_figure(result2), ctx.run, "tuning_model2_trials")
    show_figure(tuning_report.score_figure(result2), ctx.run, "tuning_model2_scores")
evidence.record("tuning_model2",
                f"Ray Tune with ASHA: {len(result2.table)} trials, best validation accuracy "
                f"{pct(result2.best_score)}", model="model2", trials=len(result2.table),
                failed=len(result2.failed), best_config=result2.best_config)
say(tuning_report.describe_result(result2, "model2", **always_largest) + " " + tuning_report.describe_cost(result2))

# %% [markdown]
# ## 4.5 Retraining with the best configurations, where a search earned it
#
# The searches ranked settings on short runs over a subset. Where a search's best settings beat the baseline's
# trial by more than the noise of the validation split (one standard error of its accuracy), that model is
# now trained on the whole training split with the full training budget and those settings, and compared
# with its baseline from chapter 2 or 3, trained with the same budget: the better of the two becomes the
# final model, whose curves, confusion matrices and predictions the following chapters show. A smaller lead
# is no evidence, and a full run costs as much as the baseline's: the baseline then stays final.

# %%
n_val = always_largest["n_val"]
why_not1 = tuning_report.why_not_retrained(result1, n_val)
with ctx.timer.phase("training"):
    final1 = None if why_not1 else tune.train_final("model1", result1.best_config, nuclei, p, device=ctx.device,
                                                    seed=seed)
verdict1 = results.choose_final(ctx.run, "model1", final1, result1.best_config, kept_because=why_not1)

# %%
weights = ctx.run.load_json("model2/weights.json")
why_not2 = tuning_report.why_not_retrained(result2, n_val)
with ctx.timer.phase("training"):
    final2 = None if why_not2 else tune.train_final(
        "model2", result2.best_config, nuclei, p, device=ctx.device, seed=seed, weights_file=ctx.weights_file or None,
        allow_random=ctx.is_stub, run_dir=ctx.run)
verdict2 = results.choose_final(ctx.run, "model2", final2, result2.best_config, kept_because=why_not2,
                                arch=weights["arch"])

# %%
say("Tuned against the hand-picked baselines of chapters 2 and 3:\n\n- " + verdict1 + "\n- " + verdict2)
tune.shutdown_ray()
