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
# # 5. Results: learning curves, confusion matrices, and a fix for the worst confusion
#
# This chapter evaluates the two tuned models on the validation split: how training went (loss and accuracy
# curves), which classes each model confuses (confusion matrices, per-class precision, recall and F1), and
# whether a targeted change reduces the worst confusion.

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

from labkit import data, diagnostics, evidence, narrative, results, train
from labkit.notebook import (
    chapter_parameters,
    pct,
    say,
    show_figure,
    show_source,
    start_chapter,
)

ctx = start_chapter("05_diagnostics", **chapter_parameters(globals()))
nuclei = ctx.data
final = {name: results.load_final(ctx.run, name) for name in ("model1", "model2")}
history = {name: results.tuned_history(ctx.run, name) for name in final}  # chapter 4's runs, not the baselines
val_loader = data.make_loader(nuclei.val_dataset(), ctx.profile.batch_size, shuffle=False, device=ctx.device)

# %% [markdown]
# ## 5.1 Learning curves
#
# Training and validation loss and accuracy per epoch of chapter 4's runs with the tuned settings, or of the
# baseline where chapter 4 trained no such run (the sentence under each figure says which). A validation
# loss that rises while the training loss keeps falling means overfitting; a training loss still falling at
# the last epoch means the model was still learning. The checkpoint kept is the epoch with the lowest
# validation loss.

# %%
for name in ("model1", "model2"):
    h = history[name]
    title = ("retrained with the tuned settings (chapter 4)" if results.was_retrained(ctx.run, name)
             else f"the baseline (chapter {2 if name == 'model1' else 3}), kept after the search")
    with ctx.timer.phase("figures"):
        show_figure(diagnostics.curves_figure(h, f"{name}: {title}"), ctx.run, f"{name}_final_curves")
    evidence.record(f"curves_{name}", f"loss and accuracy curves over {len(h.epoch)} epoch(s)", model=name,
                    epochs=len(h.epoch), best_val_acc=train.kept_val_acc(h))
    say(narrative.describe_training(h, name) + " " + results.describe_final_choice(ctx.run, name))

# %%
show_figure(diagnostics.comparison_figure(history), ctx.run, "comparison_curves")

# %% [markdown]
# ## 5.2 Confusion matrices
#
# Rows are the true classes and columns the predictions; each cell gives the count and the share of its row,
# so the diagonal is each class's recall. The predictions come from `train.evaluate`:

# %%
show_source(train.evaluate)

# %%
with ctx.timer.phase("evaluation"):
    predictions = {name: train.evaluate(model, val_loader, device=ctx.device) for name, model in final.items()}
for name, pred in predictions.items():
    with ctx.timer.phase("figures"):
        show_figure(diagnostics.confusion_figure(pred.labels, pred.preds, f"{name}: validation confusion matrix"),
                    ctx.run, f"{name}_confusion")
    display(diagnostics.per_class_display(diagnostics.per_class_table(pred.labels, pred.preds), pred.preds))
    pair = diagnostics.most_confused_pair(pred.labels, pred.preds)  # None: nothing was misclassified
    worst = f"'{pair.true_name}' taken for '{pair.predicted_name}'" if pair else "none"
    evidence.record(f"confusion_{name}", f"confusion matrix on {len(pred.labels)} validation patches; "
                    f"worst confusion: {worst}", model=name, accuracy=float((pred.labels == pred.preds).mean()),
                    worst_pair=[pair.true_class, pair.predicted_class] if pair else None)
    say(f"**{name}** classifies {pct((pred.labels == pred.preds).mean())} of the validation patches correctly. "
        + diagnostics.describe_pair(pair) + " "
        + narrative.describe_predicted_mix(pred.preds, pred.labels, name, where="validation patches",
                                           reference="actual"))
    ctx.run.save_json(f"diagnostics/{name}_val_predictions.json",
                      {"labels": pred.labels, "preds": pred.preds, "probs": pred.probs})

# %%
weaker = min(predictions, key=lambda n: (predictions[n].labels == predictions[n].preds).mean())
pred = predictions[weaker]
val_images = nuclei.train_images[nuclei.val_idx]
show_figure(diagnostics.misclassified_gallery(val_images, pred.labels, pred.preds, pred.probs, max_images=12),
            ctx.run, f"{weaker}_misclassified")
say(f"Misclassified validation patches of {weaker}, the weaker model, most confident mistakes first. "
    + narrative.describe_gallery(pred.labels, pred.preds, pred.probs, shown=12, name=weaker))

# %% [markdown]
# ## 5.3 A fix for each model's worst confusion
#
# Each model gets a change aimed at its own worst confusion, measured before and after on the same validation
# split. model1 is fine-tuned for a few more epochs with a **balanced sampler** that draws every class equally
# often and the class it gives away twice as often again, so that a mistake on that class is no longer cheap to
# make, and is then evaluated with **test-time augmentation** (averaging the predictions over the eight flips
# and 90-degree rotations of each patch). model2 gets the same sampler, but only its **head** is retrained, on
# its backbone's output for each patch, most of which chapters 3 and 4 computed already; the backbone stays as
# fine-tuned.
#
# A fix is judged by the targeted pair's error rate and by balanced accuracy (the mean recall over the four
# classes), with the noise band a validation split of this size allows (a paired bootstrap of its patches).
# It replaces the final model in the submission only if the targeted confusion falls, balanced accuracy rises
# beyond that band, and no class's recall collapses.

# %%
fix_epochs = max(1, ctx.profile.epochs_for("model1", len(nuclei.train_idx)) // 4)
fix_settings = diagnostics.FixSettings(rebalance="sampler", tta=True, epochs=fix_epochs, lr=3e-4,
                                       batch_size=ctx.profile.batch_size, seed=seed)
with ctx.timer.phase("fix"):
    fix = diagnostics.fix_experiment(
        results.load_final(ctx.run, "model1"),  # a fresh copy: the fix trains it in place
        nuclei.train_dataset(augment=True, seed=seed), nuclei.train_labels[nuclei.train_idx], val_loader,
        fix_settings, before=predictions["model1"], device=ctx.device, fit_kwargs={"name": "model1 (fix)"})
verdict1 = diagnostics.judge_fix(fix, "model1", seed=seed)
results.save_fix(ctx.run, "model1", fix.model, verdict1)
ctx.run.save_json("diagnostics/fix.json", results.fix_summary(fix))
show_figure(diagnostics.fix_figure(fix), ctx.run, "confusion_fix")
evidence.record("confusion_fix", f"{fix.description} Before/after confusion matrices on the same validation "
                "split.", model="model1", **results.fix_summary(fix), adopted=verdict1.adopted)
say(diagnostics.describe_fix(fix) + "\n\n" + verdict1.text)

# %%
fix2_settings = diagnostics.FixSettings(rebalance="sampler", tta=False, lr=1e-3, batch_size=ctx.profile.batch_size,
                                        epochs=max(2, ctx.profile.epochs_for("model2", len(nuclei.train_idx))),
                                        seed=seed)
with ctx.timer.phase("fix"):
    fix2 = diagnostics.head_fix_experiment(results.load_final(ctx.run, "model2"), nuclei, fix2_settings,
                                           run_dir=ctx.run, device=ctx.device,
                                           fit_kwargs={"name": "model2 (head-only fix)"})
verdict2 = diagnostics.judge_fix(fix2, "model2", seed=seed)
results.save_fix(ctx.run, "model2", fix2.model, verdict2)
show_figure(diagnostics.fix_figure(fix2), ctx.run, "confusion_fix_model2")
evidence.record("confusion_fix", f"{fix2.description} Head only, on cached backbone features; before/after "
                "confusion matrices on the same validation split.", model="model2", **results.fix_summary(fix2),
                adopted=verdict2.adopted)
say(diagnostics.describe_fix(fix2) + "\n\n" + verdict2.text)
