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
# # 1. Introduction, data and preprocessing
#
# Pathologists grade colon cancer by the cell nuclei in tissue stained with haematoxylin and eosin (H&E):
# haematoxylin colours nuclei purple-blue, eosin colours cytoplasm and fibres pink. I classify 100x100-pixel
# patches, each centred on one nucleus, into four types:
#
# | label | class | what it looks like |
# |---|---|---|
# | 0 | normal epithelial | oval, medium-sized, evenly stained nuclei in regular rows |
# | 1 | cancer epithelial | large, irregular, crowded, dark nuclei with coarse chromatin |
# | 2 | muscle | long thin "cigar" nuclei in pink fibrous tissue |
# | 3 | immune | small, round, very dark nuclei, often in clusters |
#
# **model1** is a small ConvNet of my own, **model2** a torchvision ResNet with a new head. Both are tuned
# with Ray Tune, diagnosed with confusion matrices and interpreted with Captum.

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
import torch
from IPython.display import display

from labkit import conclusions, evidence, exploration, narrative
from labkit.data import read_labels
from labkit.notebook import chapter_parameters, pct, say, show_figure, start_chapter

ctx = start_chapter("01_data", **chapter_parameters(globals()))
nuclei = ctx.data

# %% [markdown]
# ## 1.1 Reading the data, and the Dataset
#
# `train.csv` lists each image's file name and label. Each PNG is decoded once into a uint8 tensor cached on
# disk, not once per epoch and tuning trial. The tensor is copied once to the training device, and each batch
# is made there: `BatchIndices` draws its indices, and the `Dataset`'s `__getitems__` gathers, flips, rotates
# and normalises those patches together.

# %%
# %load labkit.data._decode
# %load labkit.data.NucleiDataset
# %load labkit.data.BatchIndices
# %load labkit.data.make_loader

# %%
train_csv = read_labels(nuclei.layout.train_csv)  # Filename, Label; checked row by row
images = _decode(nuclei.layout.train_dir, train_csv.Filename.tolist()[:8], nuclei.layout.train_csv)
assert torch.equal(images, nuclei.train_images[:8])  # the cache holds exactly these pixels
display(train_csv.head(3))

# %% tags=["report"]
conclusions.decide(ctx.run, "data", labelled=len(nuclei.train_labels), test=len(nuclei.test_files),
                   shape=list(nuclei.train_images.shape[1:]))
say(f"**{len(nuclei.train_labels):,}** labelled and **{len(nuclei.test_files):,}** unlabelled test patches, "
    f"each {' x '.join(map(str, nuclei.train_images.shape[1:]))} (channels, height, width): "
    f"{narrative.describe_data_source(nuclei.layout.root, is_stub)}.")

# %% [markdown]
# ## 1.2 Class mix
#
# Where one class dominates, always answering it already scores well, so the mix decides how far accuracy
# can be trusted. The figure counts every labelled patch, before the split.

# %%
show_figure(exploration.class_mix_figure(nuclei.train_labels), ctx.run, "class_mix")

# %% tags=["report"]
conclusions.decide(ctx.run, "class_mix", **narrative.class_mix_record(nuclei.class_counts()))
say(narrative.describe_class_mix(nuclei.class_counts()))

# %% [markdown]
# ## 1.3 What the patches look like
#
# One row per class; the nucleus to classify sits in the centre, among its neighbours.

# %%
show_figure(exploration.example_grid(nuclei.train_images, nuclei.train_labels, per_class=6, seed=seed),
            ctx.run, "examples")

# %% [markdown]
# ## 1.4 Train/validation split and normalisation
#
# The validation split is stratified, so each class keeps its share on both sides, and seeded, so every
# chapter gets the same one. Normalisation uses the training part's per-channel mean and standard deviation
# only, so nothing leaks from the validation patches.

# %%
# %load labkit.data.stratified_split

# %%
train_idx, val_idx = stratified_split(nuclei.train_labels, ctx.profile.val_fraction, seed)
assert torch.equal(train_idx, nuclei.train_idx) and torch.equal(val_idx, nuclei.val_idx)  # what every chapter uses
display(exploration.split_table(nuclei.train_labels, train_idx, val_idx))
print("training-split statistics (RGB, 0..1): mean", [round(m, 3) for m in nuclei.mean],
      "std", [round(s, 3) for s in nuclei.std])

# %% tags=["report"]
evidence.record("validation_split",
                f"stratified {pct(ctx.profile.val_fraction, 0)} validation split: {len(train_idx)} "
                f"train, {len(val_idx)} validation patches (seed {seed})",
                n_train=len(train_idx), n_val=len(val_idx), seed=seed)

# %% [markdown]
# ## 1.5 Augmentation
#
# A nucleus has no natural orientation, so training draws one of the eight flips and 90-degree rotations
# below at random for each patch. I avoid colour jitter, which changes the stain cues that separate the
# classes, and arbitrary rotations, which blur and crop the corners.

# %%
show_figure(exploration.augmentation_preview(nuclei.train_images[train_idx[0]]), ctx.run, "augmentation")

# %%
train_ds = NucleiDataset(nuclei.train_images[train_idx], nuclei.train_labels[train_idx],
                         mean=nuclei.mean, std=nuclei.std, augment=True)
loader = make_loader(train_ds, batch_size=ctx.profile.batch_size, shuffle=True, device=ctx.device)
images, labels = next(iter(loader))
print(f"one batch: images {tuple(images.shape)} {images.dtype} (mean {images.mean():.2f}, std {images.std():.2f}),"
      f" labels {tuple(labels.shape)}; {len(loader)} batches an epoch")

# %% tags=["report"]
evidence.record("data_loader",
                f"custom Dataset NucleiDataset over a decode-once uint8 cache; DataLoader batches of "
                f"{tuple(images.shape)}", batch_shape=list(images.shape), n_train=len(train_ds))
