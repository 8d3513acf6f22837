"""labkit.features: cached prefix features give the same logits, gradients and predictions as the full model."""
import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from labkit import N_CLASSES
from labkit.data import NucleiDataset, make_loader
from labkit.features import (
    N_VIEWS,
    FeatureLoader,
    build_cache,
    dihedral_view,
    evaluate_on_features,
    fit_on_features,
    head_inputs,
    save_cache,
    split_model2,
)
from labkit.models import set_unfrozen_stages
from labkit.train import evaluate

torch.set_num_threads(2)
MEAN, STD = [0.6, 0.4, 0.7], [0.2, 0.25, 0.15]


def resnet(seed=0):
    """A resnet18 with a 4-class head and BatchNorm statistics that are not the identity, so that using
    batch instead of stored statistics in the prefix would show."""
    torch.manual_seed(seed)
    model = torchvision.models.resnet18(weights=None, num_classes=N_CLASSES)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    return model


def fake_data(n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 100, 100), dtype=torch.uint8, generator=g)
    labels = torch.arange(n) % N_CLASSES
    return SimpleNamespace(train_images=images, train_labels=labels, mean=MEAN, std=STD, cache_key="")


def test_random_views_are_the_image_pipelines_augmentations():
    images = torch.randint(0, 256, (1, 3, 100, 100), dtype=torch.uint8)
    plain = NucleiDataset(images, mean=MEAN, std=STD)[0][0]
    augmented = NucleiDataset(images, mean=MEAN, std=STD, augment=True)
    views = [dihedral_view(plain, v) for v in range(N_VIEWS)]
    assert len({tuple(v.flatten()[:50].tolist()) for v in views}) == N_VIEWS  # 8 different views
    torch.manual_seed(0)
    seen = set()
    for _ in range(200):
        x = augmented[0][0]
        matches = [v for v in range(N_VIEWS) if torch.equal(x, views[v])]
        assert len(matches) == 1
        seen.add(matches[0])
    assert seen == set(range(N_VIEWS))


@pytest.mark.parametrize("unfrozen", [0, 1, 2])
def test_prefix_then_suffix_is_the_model(unfrozen):
    model = resnet().eval()
    prefix, suffix = split_model2(model, unfrozen)
    x = torch.randn(3, 3, 100, 100)
    with torch.no_grad():
        assert torch.allclose(suffix(prefix(x)), model(x), atol=1e-5)
    # the suffix holds the model's own head, not a copy
    assert any(p is model.fc.weight for p in suffix.parameters())
    assert not any(p is model.fc.weight for p in prefix.parameters())


def test_split_refuses_other_architectures():
    with pytest.raises(ValueError, match="ResNet"):
        split_model2(torchvision.models.mobilenet_v3_small(weights=None), 1)


@pytest.mark.parametrize("unfrozen", [0, 1])
def test_training_on_cached_features_gives_the_same_logits_and_gradients(unfrozen):
    data = fake_data(8)
    full = resnet()
    cached = copy.deepcopy(full)
    # contiguous like the full model below: channels_last would change the rounding, not the arithmetic
    cache = build_cache(cached, data, unfrozen, dtype=torch.float32, lazy=False, channels_last=False, log=None)
    assert cache.features.shape[:2] == (8, N_VIEWS)

    # the full model as fit runs it, except that the frozen prefix keeps BatchNorm in eval mode
    set_unfrozen_stages(full, unfrozen)
    full.train()
    split_model2(full, unfrozen)[0].eval()
    set_unfrozen_stages(cached, unfrozen)
    _, suffix = split_model2(cached, unfrozen)
    suffix.train()

    dataset = NucleiDataset(data.train_images, data.train_labels, mean=MEAN, std=STD)
    x = torch.stack([dataset[i][0] for i in range(8)])
    y = data.train_labels
    for view in (0, 5):
        full.zero_grad()
        suffix.zero_grad()
        full_logits = full(dihedral_view(x, view))
        cached_logits = suffix(cache.features[:, view])
        assert torch.allclose(full_logits, cached_logits, rtol=1e-4, atol=1e-5)
        nn.functional.cross_entropy(full_logits, y).backward()
        nn.functional.cross_entropy(cached_logits, y).backward()
        trainable = [(n, p) for n, p in full.named_parameters() if p.requires_grad]
        assert trainable and len(trainable) == sum(p.requires_grad for p in cached.parameters())
        cached_params = dict(cached.named_parameters())
        for name, p in trainable:
            assert torch.allclose(p.grad, cached_params[name].grad, rtol=1e-3, atol=1e-6), name
        # the frozen part has no gradient in either
        assert all(p.grad is None for p in full.parameters() if not p.requires_grad)


def test_float16_storage_stays_close_to_float32():
    data = fake_data(4)
    model = resnet()
    exact = build_cache(model, data, 1, dtype=torch.float32, lazy=False, log=None)
    half = build_cache(model, data, 1, lazy=False, log=None)
    assert half.features.dtype == torch.float16 and half.nbytes * 2 == exact.nbytes
    _, suffix = split_model2(model.eval(), 1)
    with torch.no_grad():
        a, b = suffix(exact.features[:, 0]), suffix(half.features[:, 0].float())
    assert torch.allclose(a, b, rtol=1e-2, atol=1e-2)
    assert not torch.equal(exact.features, half.features.float())  # it is rounded, not exact


def test_cache_is_saved_to_the_run_folder_and_reused(tmp_path):
    data = fake_data(4)
    model = resnet()
    first = build_cache(model, data, 0, run_dir=tmp_path, log=None)
    first.fill(torch.tensor([0, 1]), torch.tensor([3, 0]))
    assert first.seconds > 0 and int(first.filled.sum()) == 2
    save_cache(first, tmp_path)
    assert list((tmp_path / "features").glob("model2-u0-*.pt"))
    again = build_cache(model, data, 0, run_dir=tmp_path, log=None)
    assert again.seconds == 0 and again.key == first.key and torch.equal(again.filled, first.filled)
    assert torch.equal(again.features[again.filled], first.features[first.filled])
    # other normalisation or other prefix weights: another key, nothing computed yet
    other = build_cache(model, SimpleNamespace(**{**vars(data), "mean": [0.5, 0.5, 0.5]}), 0,
                        run_dir=tmp_path, log=None)
    assert other.key != first.key and not other.filled.any()
    weight = model.layer1[0].conv1.weight
    original = weight.detach().clone()
    with torch.no_grad():
        weight.mul_(1.01)
    assert not build_cache(model, data, 0, run_dir=tmp_path, log=None).filled.any()
    with torch.no_grad():
        weight.copy_(original)
        model.fc.weight.mul_(2)  # a change after the prefix (the head) keeps the cache
    assert int(build_cache(model, data, 0, run_dir=tmp_path, log=None).filled.sum()) == 2


def test_lazy_filling_computes_only_the_drawn_views_and_the_same_values():
    data = fake_data(6)
    model = resnet()
    eager = build_cache(model, data, 1, dtype=torch.float32, lazy=False, log=None)
    lazy = build_cache(model, data, 1, dtype=torch.float32, log=None)
    assert not lazy.filled.any() and lazy.nbytes == 0
    torch.manual_seed(0)
    batches = list(FeatureLoader(lazy, torch.arange(6), 2, shuffle=True, augment=True))
    assert len(batches) == 3 and int(lazy.filled.sum()) == 6  # one view per image drawn in one epoch
    assert torch.allclose(lazy.features[lazy.filled], eager.features[lazy.filled], atol=1e-5)
    for x, y in batches:
        assert x.shape == (2, 256, 7, 7) and x.dtype == torch.float32 and y.dtype == torch.int64


def test_fit_on_features_trains_the_model_in_place_and_evaluates_like_the_full_model():
    data = fake_data(16)
    model = resnet()
    set_unfrozen_stages(model, 1)
    cache = build_cache(model, data, 1, dtype=torch.float32, log=None)
    frozen_before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith(("layer4", "fc"))}
    head_before = model.fc.weight.clone()
    train_idx, val_idx = torch.arange(12), torch.arange(12, 16)
    result = fit_on_features(model, cache, train_idx, val_idx, batch_size=4, epochs=1, lr=1e-3, log=None)
    assert len(result.history) == 1 and np.isfinite(result.best_val_loss)
    assert not torch.equal(model.fc.weight, head_before)
    after = model.state_dict()
    for key, value in frozen_before.items():  # weights and BatchNorm statistics of the prefix
        assert torch.equal(after[key], value), key

    # the trained model, whole, predicts what the cached path predicts, with and without TTA
    dataset = NucleiDataset(data.train_images[val_idx], data.train_labels[val_idx], mean=MEAN, std=STD)
    loader = make_loader(dataset, 4, shuffle=False)
    for tta in (False, True):
        full = evaluate(model, loader, tta=tta, amp=False)  # float32, as the cache computes
        fast = evaluate_on_features(model, cache, val_idx, tta=tta)
        assert np.array_equal(full.labels, fast.labels)
        assert np.allclose(full.probs, fast.probs, atol=1e-4)


def test_a_cache_that_would_freeze_trainable_stages_is_refused():
    data = fake_data(4)
    model = resnet()
    cache = build_cache(model, data, 0, log=None)
    set_unfrozen_stages(model, 1)  # layer4 trainable, but the cache has run it already
    with pytest.raises(ValueError, match="require gradients"):
        fit_on_features(model, cache, torch.arange(2), torch.arange(2, 4), batch_size=2, epochs=1, log=None)


def test_feature_loader_views():
    data = fake_data(5)
    cache = build_cache(resnet(), data, 0, dtype=torch.float32, lazy=False, log=None)
    (x, y), = list(FeatureLoader(cache, [2, 4], 8))
    assert torch.equal(x, cache.features[[2, 4], 0]) and y.tolist() == [2, 0]
    (x, _), = list(FeatureLoader(cache, [2], 8, all_views=True))
    assert x.shape == (1, N_VIEWS, 512)
    assert len(FeatureLoader(cache, range(5), 2, shuffle=True)) == 2  # training drops the incomplete batch
    assert len(FeatureLoader(cache, range(5), 2)) == 3
    torch.manual_seed(0)
    augmented = FeatureLoader(cache, [1], 1, augment=True)
    seen = set()
    for _ in range(100):
        (x, _), = list(augmented)
        seen.add(next(v for v in range(N_VIEWS) if torch.equal(x[0], cache.features[1, v])))
    assert seen == set(range(N_VIEWS))


def test_a_subset_for_the_trials_holds_only_its_rows_and_draws_among_its_computed_views():
    data = fake_data(6)
    cache = build_cache(resnet(), data, 0, dtype=torch.float32, log=None)
    cache.fill_at_least([1, 3], 2, seed=0)
    assert cache.filled[[1, 3]].sum(1).tolist() == [2, 2] and int(cache.filled.sum()) == 4
    cache.fill(torch.tensor([5]), torch.tensor([3]))
    shared = cache.subset([1, 3, 5])  # what the object store carries: 3 rows, no prefix, no images
    assert shared.prefix is None and shared.images is None and len(shared) == 3
    assert torch.equal(shared.features[0], cache.features[1]) and shared.labels.tolist() == [1, 3, 1]
    torch.manual_seed(0)
    drawn = set()
    for _ in range(50):
        for x, _ in FeatureLoader(shared, [0, 1], 2, shuffle=True, augment=True):
            for row, features in zip((0, 1), x):  # shuffled: find which row and view each sample is
                matches = [(r, v) for r in (0, 1) for v in range(N_VIEWS)
                           if shared.filled[r, v] and torch.equal(features, shared.features[r, v])]
                assert len(matches) == 1
                drawn.add(matches[0])
    assert drawn == {(r, v) for r in (0, 1) for v in range(N_VIEWS) if shared.filled[r, v]}  # all, and only those
    with pytest.raises(RuntimeError, match="no prefix"):  # a view not computed cannot be computed there
        list(FeatureLoader(shared, [2], 1))  # row 2 (image 5) has view 3 only, not the identity view


def test_fill_at_least_uses_the_views_already_computed():
    data = fake_data(4)
    cache = build_cache(resnet(), data, 1, log=None)
    cache.fill(torch.tensor([0, 0, 0, 1]), torch.tensor([2, 5, 7, 3]))
    cache.fill_at_least([0, 1, 2], 2, seed=0)
    assert cache.filled.sum(1).tolist() == [3, 2, 2, 0]  # row 0 already had 3: nothing new for it


def test_head_inputs_give_the_models_predictions():
    data = fake_data(6)
    model = resnet().eval()
    cache = build_cache(model, data, 1, dtype=torch.float32, channels_last=False, log=None)
    cache.fill(torch.arange(6), torch.zeros(6, dtype=torch.int64))
    heads = head_inputs(model, cache)
    assert heads.unfrozen_stages == 0 and heads.features.shape == (6, N_VIEWS, 512)
    through_layer4 = evaluate_on_features(model, cache, torch.arange(6))
    from_heads = evaluate_on_features(model, heads, torch.arange(6))
    assert np.allclose(through_layer4.probs, from_heads.probs, atol=1e-5)


def test_reusing_views_trains_on_the_computed_ones_and_computes_only_what_is_missing():
    data = fake_data(8)
    model = resnet()
    set_unfrozen_stages(model, 0)
    cache = build_cache(model, data, 0, dtype=torch.float32, log=None)
    cache.fill(torch.arange(6).repeat_interleave(2), torch.tensor([1, 6] * 6))  # images 0-5: views 1 and 6
    fit_on_features(model, cache, torch.arange(6), torch.arange(6, 8), batch_size=2, epochs=3, lr=1e-3,
                    reuse_views=2, log=None)
    # three epochs drew among the two computed views: the only new ones are the validation images' identity views
    assert cache.filled[:6].sum(1).tolist() == [2] * 6 and cache.filled[6:, 0].all()
    assert int(cache.filled.sum()) == 14


def test_model2_runs_share_two_views_per_image_on_a_cpu_and_draw_fresh_ones_on_a_gpu():
    from labkit.features import views_to_reuse

    assert views_to_reuse("cpu") == 2
    assert views_to_reuse(torch.device("cuda", 0)) == 0   # no GPU needed to name one


def test_model2_trains_on_the_cache_on_a_cpu_and_on_device_batches_on_a_gpu(monkeypatch):
    from labkit import features

    model = torchvision.models.resnet18(weights=None, num_classes=4)
    assert features.uses_cache(model, 1, "cpu") and features.uses_cache(model, 0)
    assert not features.uses_cache(model, 1, "cuda")  # the GPU is not fed from the CPU's cache
    monkeypatch.setattr(features, "CACHE_ON_GPU", True)
    assert features.uses_cache(model, 1, "cuda") and not features.uses_cache(model, 2, "cuda")


def test_a_saved_cache_is_found_for_the_same_prefix_only(tmp_path):
    from labkit.features import has_saved_cache

    data, model = fake_data(4), resnet()
    assert not has_saved_cache(model, data, 1, tmp_path)
    cache = build_cache(model, data, 1, run_dir=tmp_path, log=None)
    cache.fill(torch.tensor([0]), torch.tensor([0]))
    save_cache(cache, tmp_path)
    assert has_saved_cache(model, data, 1, tmp_path)
    assert not has_saved_cache(model, data, 0, tmp_path)  # another depth
    with torch.no_grad():
        model.layer3[0].conv1.weight.mul_(1.01)  # a trained prefix: the saved features are stale
    assert not has_saved_cache(model, data, 1, tmp_path)


def fix_data(n=16, n_val=4):
    data = fake_data(n)
    data.train_idx, data.val_idx = torch.arange(n - n_val), torch.arange(n - n_val, n)
    data.val_dataset = lambda: NucleiDataset(data.train_images[data.val_idx], data.train_labels[data.val_idx],
                                             mean=MEAN, std=STD)
    return data


@pytest.mark.parametrize("earlier_cache", [False, True])
def test_the_head_fix_trains_only_the_head_and_measures_the_whole_model(tmp_path, earlier_cache):
    from labkit.diagnostics import FixSettings, head_fix_experiment
    from labkit.features import CACHE_STAGES

    data, model = fix_data(), resnet()
    if earlier_cache:  # chapters 3 and 4 left the frozen prefix's features (ImageNet weights, on a CPU)
        cache = build_cache(model, data, CACHE_STAGES, run_dir=tmp_path, log=None)
        cache.fill(data.train_idx, torch.zeros(len(data.train_idx), dtype=torch.int64))
        save_cache(cache, tmp_path)
    saved = sorted((tmp_path / "features").glob("*")) if earlier_cache else []
    backbone = copy.deepcopy(model.layer4.state_dict())
    head = model.fc.weight.detach().clone()
    val_loader = make_loader(data.val_dataset(), 4, shuffle=False)
    before = evaluate(model, val_loader)
    settings = FixSettings(rebalance="sampler", tta=False, lr=0.05, batch_size=4, epochs=2)
    result = head_fix_experiment(model, data, settings, before=before, run_dir=tmp_path, fit_kwargs={"log": None})

    assert result.before is before  # the chapter's own predictions: one source for the accuracy before
    assert not torch.equal(result.model.fc.weight, head)
    assert all(torch.equal(v, backbone[k]) for k, v in result.model.layer4.state_dict().items())
    after = evaluate(result.model, val_loader)  # what chapter 7 measures of the adopted model
    np.testing.assert_array_equal(result.after.probs, after.probs)
    # a cache is written back only where one was shared: a run that trained every stage leaves none
    if earlier_cache:
        assert sorted((tmp_path / "features").glob("*")) == saved
    else:
        assert not (tmp_path / "features").exists()
