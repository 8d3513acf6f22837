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
# the baseline's values. A trial trains on part of the training split for a few epochs and reports, after every
# epoch, its loss and accuracy on one half of the validation split, with a checkpoint at its lowest loss. The
# **ASHA** scheduler stops trials that fall behind, except the one with the baseline's own settings: it runs
# to the end, so the best trial can be compared with it after the same number of epochs.

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

from labkit import conclusions, configuration, evidence, results, tuning_report
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
always_largest = {"majority_rate": val_counts.max() / val_counts.sum(), "majority_class": val_counts.idxmax()}

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
# `run_search` builds the `Tuner` from the trainable `_run_trial`, the search space and the ASHA scheduler
# (`tune.with_parameters` puts the images into Ray's object store once). Each trial trains with chapter 2's
# `fit`, whose `report` hook passes every epoch's metrics and checkpoint to `tune.report`.

# %%
# %load labkit.tune._run_trial
# %load labkit.tune.run_search

# %% [markdown]
# ## 4.3 Searching model1
#
# The best trial is the most accurate of those that ran every epoch. A best of eight flatters itself on the
# patches that chose it, so it is tested against the baseline's trial on the *other* half: McNemar's exact test
# asks whether the patches only one of them gets right split more unevenly than chance. Only a significant
# lead (p < 0.05) earns a full-budget run of its settings; otherwise the baseline from chapter 2 or 3 stays.

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
search1 = conclusions.decide(ctx.run, "search_model1", **tuning_report.search_record(result1, **always_largest))
say(tuning_report.describe_search(search1))

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
search2 = conclusions.decide(ctx.run, "search_model2", **tuning_report.search_record(result2, **always_largest))
say(tuning_report.describe_search(search2))

# %% [markdown] tags=["if:retrained_after_search"]
# ## 4.5 The retrained models
#
# A search's winner, retrained on the whole training split with the full budget, replaces its baseline only
# where McNemar's test on the whole validation split favours it.

# %%
shutdown_ray()  # the searches are over: a final run should not share the cores with Ray's idle workers
with ctx.timer.phase("training"):
    final1 = train_final("model1", result1.best_config, nuclei, p, device=ctx.device,
                         seed=seed) if result1.retrain else None
    final2 = train_final("model2", result2.best_config, nuclei, p, device=ctx.device, seed=seed,
                         weights_file=ctx.weights_file or None, allow_random=ctx.is_stub,
                         run_dir=ctx.run) if result2.retrain else None
configuration.note(ctx.run, retrained_after_search=final1 is not None or final2 is not None)
verdicts = []
for name, result, final in (("model1", result1, final1), ("model2", result2, final2)):
    test = (tuning_report.retrained_against_baseline(ctx.run, name, final, nuclei, device=ctx.device)
            if final is not None else None)
    verdicts.append(results.choose_final(ctx.run, name, final, result.best_config, test=test,
                                         kept_because=tuning_report.why_not_retrained(result),
                                         **({"arch": weights["arch"]} if name == "model2" else {})))
    if final is not None:  # the curves of a run made here
        show_figure(curves_figure(final.fit.history, f"{name}: retrained with the search's best settings"),
                    ctx.run, f"{name}_tuned_curves")

# %% tags=["report"]
say("\n\n".join(filter(None, verdicts)))
