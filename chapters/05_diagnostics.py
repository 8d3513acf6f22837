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
# # 5. Results: confusion matrices, and a fix for the worst confusion
#
# This chapter evaluates the final model1 and model2 (chapter 4 says which run each is) on the validation
# split: which classes each confuses (confusion matrices, per-class precision, recall and F1), and whether a
# targeted change reduces its worst confusion.

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
from labkit.data import make_loader
from labkit.diagnostics import (
    FixSettings,
    describe_fix,
    describe_pair,
    fix_figure,
    head_fix_experiment,
    misclassified_gallery,
    most_confused_pair,
    per_class_display,
    per_class_table,
)
from labkit.notebook import chapter_parameters, pct, say, show_figure, start_chapter
from labkit.train import evaluate

ctx = start_chapter("05_diagnostics", **chapter_parameters(globals()))
nuclei = ctx.data
model1, model2 = results.load_final(ctx.run, "model1"), results.load_final(ctx.run, "model2")
val_loader = make_loader(nuclei.val_dataset(), ctx.profile.batch_size, shuffle=False, device=ctx.device)

# %% [markdown]
# ## 5.1 Confusion matrices
#
# Rows are the true classes and columns the predictions; each cell gives the count and the share of its row,
# so the diagonal is each class's recall.

# %%
# %load labkit.diagnostics.rates_matrix
# %load labkit.diagnostics._draw_matrix
# %load labkit.diagnostics.confusion_figure

# %%
with ctx.timer.phase("evaluation"):
    pred1 = evaluate(model1, val_loader, device=ctx.device)
show_figure(confusion_figure(pred1.labels, pred1.preds, "model1: validation confusion matrix"), ctx.run,
            "model1_confusion")
display(per_class_display(per_class_table(pred1.labels, pred1.preds), pred1.preds))

# %% tags=["report"]
ctx.run.save_json("diagnostics/model1_val_predictions.json",
                  {"labels": pred1.labels, "preds": pred1.preds, "probs": pred1.probs})
pair1 = most_confused_pair(pred1.labels, pred1.preds)  # None: nothing was misclassified
evidence.record("confusion_model1", f"confusion matrix on {len(pred1.labels)} validation patches; "
                f"worst confusion: {describe_pair(pair1)}", model="model1",
                accuracy=float((pred1.labels == pred1.preds).mean()),
                worst_pair=[pair1.true_class, pair1.predicted_class] if pair1 else None)
say(f"**model1** classifies {pct((pred1.labels == pred1.preds).mean())} of the validation patches correctly. "
    + describe_pair(pair1) + " " + narrative.describe_predicted_mix(
        pred1.preds, pred1.labels, "model1", where="validation patches", reference="actual"))

# %%
with ctx.timer.phase("evaluation"):
    pred2 = evaluate(model2, val_loader, device=ctx.device)
show_figure(confusion_figure(pred2.labels, pred2.preds, "model2: validation confusion matrix"), ctx.run,
            "model2_confusion")
display(per_class_display(per_class_table(pred2.labels, pred2.preds), pred2.preds))

# %% tags=["report"]
ctx.run.save_json("diagnostics/model2_val_predictions.json",
                  {"labels": pred2.labels, "preds": pred2.preds, "probs": pred2.probs})
pair2 = most_confused_pair(pred2.labels, pred2.preds)
evidence.record("confusion_model2", f"confusion matrix on {len(pred2.labels)} validation patches; "
                f"worst confusion: {describe_pair(pair2)}", model="model2",
                accuracy=float((pred2.labels == pred2.preds).mean()),
                worst_pair=[pair2.true_class, pair2.predicted_class] if pair2 else None)
say(f"**model2** classifies {pct((pred2.labels == pred2.preds).mean())} of the validation patches correctly. "
    + describe_pair(pair2) + " " + narrative.describe_predicted_mix(
        pred2.preds, pred2.labels, "model2", where="validation patches", reference="actual"))

# %%
weaker, pred = ("model1", pred1) if (pred1.labels == pred1.preds).mean() <= (pred2.labels == pred2.preds).mean() \
    else ("model2", pred2)
show_figure(misclassified_gallery(nuclei.train_images[nuclei.val_idx], pred.labels, pred.preds, pred.probs,
                                  max_images=12), ctx.run, f"{weaker}_misclassified")

# %% tags=["report"]
say(f"Misclassified validation patches of {weaker}, the weaker model, most confident mistakes first. "
    + narrative.describe_gallery(pred.labels, pred.preds, pred.probs, shown=12, name=weaker))

# %% [markdown]
# ## 5.2 A fix for each model's worst confusion
#
# Each model is fine-tuned for a few more epochs with a **balanced sampler**: `pair_sample_weights` gives each
# training patch a weight, and the loader's `BatchIndices` (section 1.1) draws each epoch's patches in
# proportion to them with `torch.multinomial`, so every class is drawn equally often and the true class of the
# model's worst confusion twice as often again. For model2 only the **head** is retrained. The fixed weights replace the
# final model only if, on the same validation split, the targeted confusion falls, balanced accuracy (mean
# recall) rises beyond its paired-bootstrap noise band, and no class's recall collapses.

# %%
# %load labkit.diagnostics.pair_sample_weights
# %load labkit.diagnostics.fix_experiment
# %load labkit.diagnostics.judge_fix

# %%
fix_settings = FixSettings(rebalance="sampler", tta=True, lr=3e-4, batch_size=ctx.profile.batch_size, seed=seed,
                           epochs=max(1, ctx.profile.epochs_for("model1", len(nuclei.train_idx)) // 4))
with ctx.timer.phase("fix"):
    fix1 = fix_experiment(results.load_final(ctx.run, "model1"),  # a fresh copy: the fix trains it in place
                          nuclei.train_dataset(augment=True, seed=seed), nuclei.train_labels[nuclei.train_idx],
                          val_loader, fix_settings, before=pred1, device=ctx.device,
                          fit_kwargs={"name": "model1 (fix)"})
verdict1 = judge_fix(fix1, "model1", seed=seed)
results.save_fix(ctx.run, "model1", fix1.model, verdict1)
show_figure(fix_figure(fix1, model="model1"), ctx.run, "confusion_fix")

# %% tags=["report"]
ctx.run.save_json("diagnostics/fix.json", results.fix_summary(fix1))
evidence.record("confusion_fix", f"{fix1.description} Before/after confusion matrices on the same validation "
                "split.", model="model1", **results.fix_summary(fix1), adopted=verdict1.adopted)
say(describe_fix(fix1, "model1") + "\n\n" + verdict1.text)

# %%
fix2_settings = FixSettings(rebalance="sampler", tta=False, lr=1e-3, batch_size=ctx.profile.batch_size, seed=seed,
                            epochs=max(2, ctx.profile.epochs_for("model2", len(nuclei.train_idx))))
with ctx.timer.phase("fix"):
    fix2 = head_fix_experiment(results.load_final(ctx.run, "model2"), nuclei, fix2_settings, before=pred2,
                               run_dir=ctx.run, device=ctx.device, fit_kwargs={"name": "model2 (head-only fix)"})
verdict2 = judge_fix(fix2, "model2", seed=seed)
results.save_fix(ctx.run, "model2", fix2.model, verdict2)
show_figure(fix_figure(fix2, model="model2"), ctx.run, "confusion_fix_model2")

# %% tags=["report"]
evidence.record("confusion_fix", f"{fix2.description} Head only, on cached backbone features; before/after "
                "confusion matrices on the same validation split.", model="model2", **results.fix_summary(fix2),
                adopted=verdict2.adopted)
say(describe_fix(fix2, "model2") + "\n\n" + verdict2.text)
