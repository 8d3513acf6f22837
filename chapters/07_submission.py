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
# # 7. Predictions, comparison of the two models, and conclusions
#
# Both tuned models predict the test set, and the one with the higher validation accuracy provides
# `submission.csv`; its predictions average each patch over its eight flips and rotations (test-time
# augmentation) except in the quick profile. Each prediction file is checked against the data's `example.csv`
# (same header, same files in the same order, integer labels 0 to 3) before it is written.

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
from pathlib import Path

from IPython.display import display

from labkit import data, evidence, narrative, results, submission
from labkit.artifacts import atomic_write_bytes
from labkit.notebook import chapter_parameters, pct, say, show_source, start_chapter

ctx = start_chapter("07_submission", **chapter_parameters(globals()))
nuclei = ctx.data
# the final models, or the fixed ones where chapter 5 adopted a fix
final = {name: results.submission_model(ctx.run, name) for name in ("model1", "model2")}
test_loader = data.make_loader(nuclei.test_dataset(), ctx.profile.batch_size, shuffle=False, device=ctx.device)

# %% [markdown]
# ## 7.1 Test-set predictions
#
# `predict_test` runs the model over the unshuffled test loader (through `train.evaluate`, shown in chapter 5);
# `write_submission` writes one row per row of `example.csv`, in its order, and checks the file it wrote.

# %%
show_source(submission.predict_test, submission.write_submission)

# %%
val_acc = {name: results.submission_val_acc(ctx.run, name) for name in final}  # kept checkpoint or fixed weights
best = submission.choose_best(val_acc)
other = next(name for name in final if name != best)
why_best = ("the higher validation accuracy" if val_acc[best] > val_acc[other]
            else f"the same validation accuracy as {other}, and a tie goes to {best}")
if ctx.profile.test_time_augmentation:
    say(f"**{best}** has {why_best}, so its predictions are the ones submitted: they average the eight flips "
        "and 90-degree rotations of each test patch (test-time augmentation, 8 passes a patch). "
        f"{other}'s predictions take one pass a patch: they are here to compare the class mix.")
for name, model in final.items():
    with ctx.timer.phase("evaluation"):
        preds = submission.predict_test(model, test_loader, device=ctx.device,
                                        tta=ctx.profile.test_time_augmentation and name == best)
    path = submission.write_submission(ctx.run.path(f"submission/submission_{name}.csv"), nuclei.test_files,
                                       preds, nuclei.layout.example_csv)
    submission.validate_submission(path, nuclei.layout.example_csv)
    print(f"{path.name}: {len(preds)} rows, valid")
    display(submission.class_mix_table(preds, nuclei.train_labels.numpy()).rename_axis(name))
    say(narrative.describe_predicted_mix(preds, nuclei.train_labels.numpy(), name))

chosen = ctx.run.path("submission/submission.csv")
chosen.write_bytes(ctx.run.path(f"submission/submission_{best}.csv").read_bytes())
report = submission.validate_submission(chosen, nuclei.layout.example_csv)
if ctx.submission_file:  # where this run's hand-in copy goes (on Kaggle: the working folder's Output tab)
    atomic_write_bytes(ctx.submission_file, chosen.read_bytes())
    print(f"submission.csv written to {Path(ctx.submission_file).resolve()}")
evidence.record("submission", f"submission.csv from {best} ({report.rows} rows) validated against example.csv",
                model=best, rows=report.rows)
fixed = {name: results.submission_is_fixed(ctx.run, name) for name in final}
say(f"`submission.csv` holds **{best}**'s predictions ({report.rows:,} rows), chosen because it has {why_best}: "
    f"{pct(val_acc[best])}"
    + (", that of the fixed weights chapter 5 adopted." if fixed[best] else ", that of its kept checkpoint."))

# %% [markdown]
# ## 7.2 Comparing the two models

# %%
with ctx.timer.phase("comparison"):
    comparison = results.comparison_table(ctx.run)
display(comparison)
say(results.describe_comparison(comparison, is_stub=ctx.is_stub))
evidence.record("discussion", "model1 and model2 compared on accuracy, per-class F1, size and training time",
                winner=best)

# %% [markdown]
# ## 7.3 Conclusions and limitations

# %%
weights = ctx.run.load_json("model2/weights.json")
limits = []
if ctx.is_stub:
    limits.append("All numbers in this build come from a **synthetic stub** of the data: they show that the "
                  "pipeline works, not how well the models classify real nuclei. Rebuild with `--data` to get "
                  "the real results.")
if narrative.weights_limitation(weights):  # random or unverified weights: nothing shows transfer learning
    limits.append(narrative.weights_limitation(weights))
for name in ("model1", "model2"):
    fix = ctx.run.load_json(f"diagnostics/fix_{name}.json")
    limits.append(f"{name}'s fix moved balanced accuracy from {pct(fix['balanced_before'])} to "
                  f"{pct(fix['balanced_after'])} (95% bootstrap interval of the change {100 * fix['balanced_low']:+.1f} "
                  f"to {100 * fix['balanced_high']:+.1f} pp); it was "
                  + ("adopted: the submission uses the fixed model." if fix["adopted"] else
                     "not adopted: the submission uses the final model."))
limits += [
    f"The validation split holds {len(nuclei.val_idx):,} patches, so one patch moves accuracy by "
    f"{100 / len(nuclei.val_idx):.2f} percentage points: differences of a point or two are within noise.",
    f"Tuning ran {ctx.profile.tune_trials} trials per model on a subset with short runs ({ctx.profile.name} "
    "profile); a larger search on a GPU may find better settings.",
    "The patches come from one collection of slides: stain and scanner differences between hospitals would "
    "need stain normalisation or colour augmentation before such a model could be trusted elsewhere.",
]
say("\n".join(f"- {line}" for line in limits))
evidence.record("narrative", "generated interpretation in every chapter, quoting this run's numbers",
                chapters=7)
