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
# Both models predict the test set, and the one with the higher validation accuracy, measured the way the
# test set is predicted, provides `submission.csv`. Each prediction file is checked against the data's
# `example.csv` (same header, the same files in the same order, integer labels 0 to 3) when it is written.

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

from labkit import evidence, narrative, results
from labkit.artifacts import atomic_write_bytes
from labkit.data import make_loader
from labkit.notebook import chapter_parameters, pct, say, start_chapter
from labkit.submission import choose_best, class_mix_table, validate_submission

ctx = start_chapter("07_submission", **chapter_parameters(globals()))
nuclei = ctx.data
# the final models, or the fixed ones where chapter 5 adopted a fix
final = {name: results.submission_model(ctx.run, name) for name in ("model1", "model2")}
val_loader = make_loader(nuclei.val_dataset(), ctx.profile.batch_size, shuffle=False, device=ctx.device)
test_loader = make_loader(nuclei.test_dataset(), ctx.profile.batch_size, shuffle=False, device=ctx.device)

# %% [markdown]
# ## 7.1 Test-set predictions
#
# `evaluate` runs a model over an unshuffled loader; with test-time augmentation (TTA) it averages the
# softmax over the eight flips and 90-degree rotations of each patch. TTA is used for a model only where it
# raises that model's validation accuracy.

# %%
# %load labkit.train.evaluate
# %load labkit.submission.predict_test
# %load labkit.submission.write_submission

# %%
def accuracy(predictions):
    return float((predictions.labels == predictions.preds).mean())


tried_tta = ctx.profile.test_time_augmentation  # 8 passes a patch: left out where the budget is small
val_acc, use_tta = {}, {}
with ctx.timer.phase("evaluation"):
    for name, model in final.items():
        scores = {False: accuracy(evaluate(model, val_loader, device=ctx.device))}
        if tried_tta:
            scores[True] = accuracy(evaluate(model, val_loader, device=ctx.device, tta=True))
        use_tta[name] = max(scores, key=lambda tta: (scores[tta], not tta))  # a tie keeps one pass
        val_acc[name] = scores[use_tta[name]]
        print(f"{name}: validation accuracy {pct(scores[False])} in one pass"
              + (f", {pct(scores[True])} with TTA" if tried_tta else ""))
best = choose_best(val_acc)

# %%
with ctx.timer.phase("evaluation"):
    # TTA costs 8 passes a patch: only the submitted model's test predictions pay it
    preds = {name: predict_test(model, test_loader, device=ctx.device, tta=use_tta[name] and name == best)
             for name, model in final.items()}
for name in final:
    write_submission(ctx.run.path(f"submission/submission_{name}.csv"), nuclei.test_files, preds[name],
                     nuclei.layout.example_csv)
chosen = write_submission(ctx.run.path("submission/submission.csv"), nuclei.test_files, preds[best],
                          nuclei.layout.example_csv)
report = validate_submission(chosen, nuclei.layout.example_csv)
print(report)
if ctx.submission_file:  # the hand-in copy (on Kaggle: the working folder, which the Output tab shows)
    atomic_write_bytes(ctx.submission_file, chosen.read_bytes())
display(class_mix_table(preds[best], nuclei.train_labels.numpy()).rename_axis(f"{best} (submitted)"))

# %% tags=["report"]
evidence.record("submission", f"submission.csv from {best} ({report.rows} rows) validated against example.csv",
                model=best, rows=report.rows)
other = next(name for name in final if name != best)
why = "higher" if val_acc[best] > val_acc[other] else f"same (a tie goes to {best})"
say(f"`submission.csv` holds **{best}**'s predictions ({report.rows:,} rows): it has the {why} validation accuracy, "
    f"{pct(val_acc[best])} against {pct(val_acc[other])}"
    + (", with the fixed weights chapter 5 adopted" if results.submission_is_fixed(ctx.run, best) else "")
    + (", predicting with TTA, which raised its validation accuracy" if use_tta[best] else
       (", in one pass a patch: TTA did not raise its validation accuracy" if tried_tta else ""))
    + ". " + narrative.describe_predicted_mix(preds[best], nuclei.train_labels.numpy(), best))

# %% [markdown]
# ## 7.2 Comparing the two models
#
# model1 has far fewer parameters than model2 and has to learn every feature from these patches, whereas model2
# is a much larger torchvision network, designed for photographs and adapted with a new four-class head. I
# compare them on the validation split by accuracy, by macro F1 (which weighs the rare normal and muscle
# classes as much as the common ones), by per-class F1, by their size and by the time one training epoch
# took: the table holds this run's numbers, and the paragraph under it says which model is better and by how
# much.

# %%
with ctx.timer.phase("comparison"):
    comparison = results.comparison_table(ctx.run)
display(comparison)

# %% tags=["report"]
say(results.describe_comparison(comparison, is_stub=ctx.is_stub))
evidence.record("discussion", "model1 and model2 compared on accuracy, per-class F1, size and training time",
                winner=best)

# %% [markdown]
# ## 7.3 Conclusions and limitations

# %% tags=["report"]
weights = ctx.run.load_json("model2/weights.json")
limits = []
if ctx.is_stub:
    limits.append("All numbers here come from **synthetic patches**, not from real slides: they show that the "
                  "method works end to end, not how well the models classify real nuclei.")
if narrative.weights_limitation(weights):  # random or unverified weights: nothing shows transfer learning
    limits.append(narrative.weights_limitation(weights))
for name in ("model1", "model2"):
    fix = ctx.run.load_json(f"diagnostics/fix_{name}.json")
    if fix["adopted"]:
        limits.append(f"{name}'s fix was adopted, but its gain in balanced accuracy "
                      f"({100 * (fix['balanced_after'] - fix['balanced_before']):+.1f} pp, 95% interval "
                      f"{100 * fix['balanced_low']:+.1f} to {100 * fix['balanced_high']:+.1f} pp) rests on one "
                      "validation split.")
limits += [
    (f"The validation split holds {len(nuclei.val_idx):,} patches, so one patch moves accuracy by "
     f"{100 / len(nuclei.val_idx):.2f} percentage points: differences of a point or two are within noise."),
    (f"Tuning ran {ctx.profile.tune_trials} trials per model on a subset of the training split with short runs; a "
     "larger search may find better settings."),
]
if not ctx.is_stub:
    limits.append("The validation patches come from the same data as the training patches: stain and scanner "
                  "differences between hospitals would need stain normalisation or colour augmentation before "
                  "such a model could be trusted elsewhere.")
say("\n".join(f"- {line}" for line in limits))
evidence.record("narrative", "each chapter interprets its results with this run's numbers", chapters=7)
