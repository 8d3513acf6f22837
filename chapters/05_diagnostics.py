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
# Both final models of chapter 4 are scored on the validation split: which classes each confuses, and whether
# retraining aimed at its worst confusion removes it.

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

from labkit import evidence, results
from labkit.data import make_loader
from labkit.diagnostics import (
    FixSettings,
    describe_pair,
    fix_figure,
    head_fix_experiment,
    misclassified_gallery,
    most_confused_pair,
    per_class_display,
    per_class_table,
)
from labkit.notebook import chapter_parameters, say, show_figure, start_chapter
from labkit.train import evaluate

ctx = start_chapter("05_diagnostics", **chapter_parameters(globals()))
nuclei = ctx.data
model1, model2 = results.load_final(ctx.run, "model1"), results.load_final(ctx.run, "model2")
val_loader = make_loader(nuclei.val_dataset(), ctx.profile.batch_size, shuffle=False, device=ctx.device)

# %% [markdown]
# ## 5.1 Confusion matrices
#
# Rows are the true classes and columns the predictions; each cell gives the count and the share of its row,
# so the diagonal is each class's recall. The table under each matrix adds precision and F1, which matter
# here because accuracy is dominated by the two large classes.

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
def state_confusion(name, pred):
    """Save the predictions for chapter 6, the evidence record, and one sentence of what the matrix shows."""
    ctx.run.save_json(f"diagnostics/{name}_val_predictions.json",
                      {"labels": pred.labels, "preds": pred.preds, "probs": pred.probs})
    pair = most_confused_pair(pred.labels, pred.preds)  # None: nothing was misclassified
    correct = int((pred.labels == pred.preds).sum())
    evidence.record(f"confusion_{name}", f"confusion matrix on {len(pred.labels)} validation patches; "
                    f"worst confusion: {describe_pair(pair)}", model=name, correct=correct,
                    patches=len(pred.labels), accuracy=correct / len(pred.labels),
                    worst_pair=pair.as_dict() if pair else None)
    worst = (f"its worst confusion is '{pair.true_name}' taken for '{pair.predicted_name}', {pair.count} of "
             f"{pair.support} ({pair.rate:.1%})" if pair else "it confuses no class")
    say(f"**{name}** gets {correct} of the {len(pred.labels)} validation patches right "
        f"({correct / len(pred.labels):.1%}); {worst}.")


state_confusion("model1", pred1)

# %%
with ctx.timer.phase("evaluation"):
    pred2 = evaluate(model2, val_loader, device=ctx.device)
show_figure(confusion_figure(pred2.labels, pred2.preds, "model2: validation confusion matrix"), ctx.run,
            "model2_confusion")
display(per_class_display(per_class_table(pred2.labels, pred2.preds), pred2.preds))

# %% tags=["report"]
state_confusion("model2", pred2)

# %% [markdown]
# Below are each model's misclassified validation patches, the most confident mistakes first. A mistake made
# with high confidence is a pattern the model has learnt wrongly; one made at low confidence is a patch it
# could not place.

# %%
for name, pred in (("model1", pred1), ("model2", pred2)):
    show_figure(misclassified_gallery(nuclei.train_images[nuclei.val_idx], pred.labels, pred.preds, pred.probs,
                                      max_images=6, title=f"{name}: misclassified validation patches"),
                ctx.run, f"{name}_misclassified")

# %% [markdown]
# ## 5.2 A fix for each model's worst confusion
#
# Each model is trained further with a **balanced sampler**: `pair_sample_weights` weights each
# training patch so that the loader's `BatchIndices` (section 1.1) draws every class equally often, and the true
# class of the model's worst confusion twice as often again. model1 is fine-tuned whole; for model2 only the
# **head** is retrained.
#
# The fixed weights are adopted only if the targeted confusion falls, no class's recall collapses, and the 95%
# interval of the change in balanced accuracy (mean recall), from a paired bootstrap over the validation
# patches, lies above zero. That split also reports the result, so an adopted fix's numbers there are slightly
# optimistic.

# %%
# %load labkit.diagnostics.pair_sample_weights
# %load labkit.diagnostics.fix_experiment
# %load labkit.diagnostics.judge_fix

# %%
fix_settings = FixSettings(rebalance="sampler", tta=False, lr=3e-4, batch_size=ctx.profile.batch_size, seed=seed,
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
evidence.record("confusion_fix", f"{fix1.description} Before/after confusion matrices on the same validation "
                "split.", model="model1", **results.fix_summary(fix1), adopted=verdict1.adopted)
say(verdict1.text)

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
evidence.record("confusion_fix", f"{fix2.description} Head only; before/after confusion matrices on the same "
                "validation split.", model="model2", **results.fix_summary(fix2), adopted=verdict2.adopted)
say(verdict2.text)
