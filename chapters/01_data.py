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
# Pathologists grade colon cancer by looking at the cell nuclei in tissue stained with haematoxylin and
# eosin (H&E): haematoxylin colours nuclei purple-blue, eosin colours cytoplasm and fibres pink. This report
# classifies 100x100-pixel patches, each centred on one nucleus, into four types:
#
# | label | class | what it looks like |
# |---|---|---|
# | 0 | normal epithelial | oval, medium-sized, evenly stained nuclei in regular rows |
# | 1 | cancer epithelial | large, irregular, crowded, dark nuclei with coarse chromatin |
# | 2 | muscle | long thin "cigar" nuclei in pink fibrous tissue |
# | 3 | immune | small, round, very dark nuclei, often in clusters |
#
# Two models are compared: **model1**, a small ConvNet of our own trained from scratch, and **model2**, a
# torchvision network meant to start from ImageNet weights, with a new classifier (chapter 3 says whether
# this build could load and verify those weights). Both are tuned with
# Ray Tune, diagnosed with confusion matrices, interpreted with Captum, and used to predict the test
# set. This chapter loads the data, looks at it, and builds the data loader and the validation split.

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

from labkit import data, evidence, exploration, narrative
from labkit.notebook import (
    chapter_parameters,
    pct,
    say,
    show_figure,
    show_source,
    start_chapter,
)

ctx = start_chapter("01_data", **chapter_parameters(globals()))
nuclei = ctx.data
say(f"This build reads {narrative.describe_data_source(nuclei.layout.root, is_stub)}: "
    f"**{len(nuclei.train_labels):,}** labelled training patches and **{len(nuclei.test_files):,}** "
    f"unlabelled test patches, each {tuple(nuclei.train_images.shape[1:])} (channels, height, width).")

# %% [markdown]
# ## 1.1 Loading the data once
#
# A typical first attempt opens every PNG file with PIL each time the training loop asks for it: thousands of
# decodes per epoch, repeated in every epoch and in every Ray Tune trial. Here `labkit.data.prepare` decodes
# each image exactly once into a uint8 tensor cache on disk, keyed by the data's content, so later chapters
# and tuning trials load the whole set in a fraction of a second. The `Dataset` the models train on reads
# from that tensor, and `make_loader` batches it; this is their code:

# %%
show_source(data.NucleiDataset, data.make_loader)

# %% [markdown]
# ## 1.2 Class mix
#
# How many patches each class has decides how far accuracy alone can be trusted: where one class dominates,
# a model that always answers that class already scores well.

# %%
counts = nuclei.class_counts()
show_figure(exploration.class_mix_figure(nuclei.train_labels), ctx.run, "class_mix")
say(narrative.describe_class_mix(counts))

# %% [markdown]
# ## 1.3 What the patches look like
#
# One row per class. The nucleus to classify sits in the centre; its neighbours and the surrounding tissue
# fill the rest of the patch, and the stain varies from patch to patch.

# %%
show_figure(exploration.example_grid(nuclei.train_images, nuclei.train_labels, per_class=6, seed=seed),
            ctx.run, "examples")

# %% [markdown]
# ## 1.4 Train/validation split and normalisation
#
# We hold out a stratified validation set, seeded so that every chapter and every rebuild uses the same
# split (it is saved in the run folder and reused). The per-channel mean and standard deviation used for
# normalisation are computed on the training part only, so no information leaks from the validation set.

# %%
split = exploration.split_table(nuclei.train_labels, nuclei.train_idx, nuclei.val_idx)
display(split)
evidence.record("validation_split",
                f"stratified {pct(ctx.profile.val_fraction, 0)} validation split: {len(nuclei.train_idx)} "
                f"train, {len(nuclei.val_idx)} validation patches (seed {seed})",
                n_train=len(nuclei.train_idx), n_val=len(nuclei.val_idx), seed=seed)
say("Per-channel statistics of the training split (RGB, 0..1): mean "
    + ", ".join(f"{m:.3f}" for m in nuclei.mean) + "; standard deviation "
    + ", ".join(f"{s:.3f}" for s in nuclei.std) + ".")

# %% [markdown]
# ## 1.5 Augmentation
#
# Nuclei have no natural orientation: a patch flipped or rotated by 90 degrees shows an equally valid nucleus
# of the same class. Training with random flips and 90-degree rotations therefore multiplies the data by
# eight without inventing anything. We avoid colour jitter and arbitrary-angle rotations here: the first
# changes the stain cues that separate the classes, the second blurs and crops the corners.

# %%
patch = nuclei.train_images[nuclei.train_idx[:1]]
augmenting = data.NucleiDataset(patch, mean=nuclei.mean, std=nuclei.std, augment=True)  # what training sees
show_figure(exploration.augmentation_preview(
    patch[0], lambda _: data.denormalise(augmenting[0][0], nuclei.mean, nuclei.std)), ctx.run, "augmentation")

# %%
train_ds = nuclei.train_dataset(augment=True, seed=seed)
loader = data.make_loader(train_ds, batch_size=ctx.profile.batch_size, shuffle=True, device=ctx.device)
images, labels = next(iter(loader))
evidence.record("data_loader",
                f"custom Dataset NucleiDataset over a decode-once uint8 cache; DataLoader batches of "
                f"{tuple(images.shape)}", batch_shape=list(images.shape), n_train=len(train_ds))
say(f"One training batch: images {tuple(images.shape)} of type `{images.dtype}` (normalised, mean "
    f"{images.mean():.2f}, std {images.std():.2f}) and labels {tuple(labels.shape)}. "
    f"{len(loader)} batches make one epoch.")
