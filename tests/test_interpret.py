"""labkit.interpret with tiny models whose true focus is known: the centre, or the border only."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch import nn

from labkit import interpret as it

torch.set_num_threads(1)
SIZE = 100


class MaskedEvidence(nn.Module):
    """Class 0's logit is the mean brightness inside a fixed pixel mask (the others its negative):
    the output depends on nothing outside the mask, and bright pixels there are evidence for class 0."""

    def __init__(self, mask: torch.Tensor):
        super().__init__()
        self.register_buffer("mask", mask.float())
        self.scale = nn.Parameter(torch.tensor(5.0))  # a parameter, as real models have

    def forward(self, x):
        evidence = (x * self.mask).sum(dim=(1, 2, 3)) / (x.shape[1] * self.mask.sum())
        return self.scale * torch.stack([evidence, -evidence, -evidence, -evidence], dim=1)


def centre_model():
    mask = torch.zeros(SIZE, SIZE)
    mask[40:60, 40:60] = 1  # inside the central disc of radius 25
    return MaskedEvidence(mask)


def border_model():
    return MaskedEvidence(~torch.from_numpy(it.central_mask(SIZE, SIZE, 0.4)))  # outside a radius-40 disc


class TinyConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(inplace=True),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 4))

    def forward(self, x):
        return self.body(x)


def inputs(n=4, seed=0):
    """Bright noisy patches (normalised units): whatever a model sees is evidence for class 0."""
    return 1.0 + 0.3 * torch.randn(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def targets_of(model, x):
    with torch.no_grad():
        return model(x).argmax(1)


@pytest.mark.parametrize("method", it.METHODS)
def test_every_method_gives_one_map_per_input_of_its_shape(method):
    model = TinyConvNet().train()
    x = inputs(3)
    attr = it.attribute(model, x, [0, 1, 3], method, batch_size=16)
    assert attr.shape == (3, SIZE, SIZE)
    assert np.isfinite(attr).all() and np.abs(attr).sum() > 0
    assert model.training  # the caller's mode is restored


def test_central_share_high_for_a_centre_model_and_low_for_a_border_model():
    x = inputs(4)
    area = it.central_area_share(SIZE, SIZE)
    shares = {}
    for name, model in {"centre": centre_model(), "border": border_model()}.items():
        maps = it.explain(model, x, targets_of(model, x), n_samples=2, n_steps=8)
        shares[name] = {m: it.central_share(a) for m, a in maps.items()}
    for method in (it.SALIENCY, it.IG_SMOOTHGRAD):  # gradients are exactly zero where the model never looks
        assert shares["centre"][method] > 0.99
        assert shares["border"][method] < 0.01
    # occlusion windows (16 px) that reach the mask may also cover pixels outside it: a looser bound
    assert shares["centre"][it.OCCLUSION] > 2.5 * area
    assert shares["border"][it.OCCLUSION] < 0.5 * area


def test_central_share_of_uniform_attribution_is_the_area_share():
    uniform = np.ones((2, SIZE, SIZE))
    assert it.central_share(uniform) == pytest.approx(it.central_area_share(SIZE, SIZE))
    assert it.central_area_share(SIZE, SIZE) == pytest.approx(np.pi * 25 ** 2 / SIZE ** 2, rel=0.02)
    negative_only = -np.ones((1, SIZE, SIZE))
    assert np.isnan(it.central_share(negative_only))


def test_pick_examples_one_right_one_wrong_per_class_when_available():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 3])
    preds = np.array([0, 1, 0, 1, 1, 0, 0, 2, 3])
    picked = it.pick_examples(labels, preds, per_class=1)
    # class 0: right and wrong, class 1: right only, class 2: right and wrong, class 3: right only
    assert [int(labels[i]) for i in picked] == [0, 0, 1, 2, 2, 3]
    right = [i for i in picked if labels[i] == preds[i]]
    assert len(right) == 4 and len(picked) - len(right) == 2


def test_table_and_text_compare_with_chance(tmp_path):
    x = inputs(2)
    attributions = {}
    for name, model in {"centre model": centre_model(), "border model": border_model()}.items():
        attributions[name] = it.explain(model, x, targets_of(model, x), n_samples=2, n_steps=4)
    table = it.central_share_table(attributions)
    assert len(table) == 6 and set(table["model"]) == {"centre model", "border model"}
    assert (table["times_chance"] == table["central_share"] / table["area_share"]).all()
    text = it.describe_central_share(table)
    area = f"{table['area_share'].iloc[0]:.1%}"
    assert f"The disc covers {area} of the patch. centre model's maps put more than that inside it by" in text
    assert "border model's maps put no more than that inside it by" in text and text.count("The disc covers") == 1
    # the measure only: no claim about the nucleus, no ranking of the models, no check that was not run
    assert "nucleus" not in text and "looks more" not in text and "randomisation check" not in text
    for _, row in table.iterrows():
        assert f"{row['method']} ({row['central_share']:.1%})" in text

    model = centre_model()
    images_uint8 = (x.clamp(-2, 2) * 60 + 128).to(torch.uint8)
    fig = it.attribution_figure(model, x, images_uint8, [1, 2], targets_of(model, x), "centre model",
                                attributions=attributions["centre model"])
    assert len(fig.axes) == 2 * 4 + 3  # 2 rows x (patch + 3 maps) + one colour bar per method
    fig.savefig(tmp_path / "attr.png")
    plt.close(fig)


def test_bad_targets_are_refused():
    with pytest.raises(ValueError, match="targets"):
        it.attribute(TinyConvNet(), inputs(2), [0], it.SALIENCY)
    with pytest.raises(ValueError, match="method"):
        it.attribute(TinyConvNet(), inputs(2), [0, 1], "GradCAM")


def test_text_for_equal_models_names_both():
    attr = {it.SALIENCY: np.ones((1, SIZE, SIZE))}
    text = it.describe_central_share(it.central_share_table({"model1": attr, "model2": attr}))
    # a map spread evenly puts exactly the disc's area share inside it: not "more than" the area
    assert "model1's maps put no more than that inside it by Saliency (19.8%)" in text
    assert "model2's maps put no more than that inside it by Saliency (19.8%)" in text


class PixelWeights(nn.Module):
    """A linear model on pixels: its saliency map is |weight|, so it changes with the weights."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3 * SIZE * SIZE, 4)
        with torch.no_grad():
            self.linear.weight.zero_()
            self.linear.weight[:, :] = torch.from_numpy(it.central_mask(SIZE, SIZE)).float().flatten().repeat(3)

    def forward(self, x):
        return self.linear(x.flatten(1))


def test_randomised_copy_changes_the_weights_not_the_original_or_the_random_stream():
    model = PixelWeights()
    before = model.linear.weight.clone()
    torch.manual_seed(7)
    expected_next = torch.rand(1)
    torch.manual_seed(7)
    copy = it.randomised_copy(model, seed=1)
    assert torch.equal(torch.rand(1), expected_next)
    assert torch.equal(model.linear.weight, before)
    assert not torch.allclose(copy.linear.weight, before)


def test_map_similarity_is_rank_correlation_of_magnitudes():
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(3, SIZE, SIZE))
    assert it.map_similarity(maps, maps) == pytest.approx(1.0)
    assert it.map_similarity(maps, -maps) == pytest.approx(1.0)  # a sign flip is the same explanation
    assert abs(it.map_similarity(maps, rng.normal(size=(3, SIZE, SIZE)))) < 0.1
    with pytest.raises(ValueError, match="shapes differ"):
        it.map_similarity(maps, maps[:2])


def test_randomisation_check_passes_a_map_that_depends_on_the_weights():
    model, x = PixelWeights(), inputs(2)
    targets = [0, 0]
    attributions = {it.SALIENCY: it.attribute(model, x, targets, it.SALIENCY)}
    similarity = it.randomisation_check(model, x, targets, attributions)
    assert similarity[it.SALIENCY] < 0.2


def test_text_discounts_a_method_that_fails_the_randomisation_check():
    centre, border = np.zeros((2, SIZE, SIZE)), np.zeros((2, SIZE, SIZE))
    centre[:, 45:55, 45:55] = 1
    border[:, :10, :] = 1
    table = it.central_share_table(
        {"model1": {it.SALIENCY: centre, it.OCCLUSION: border}, "model2": {it.SALIENCY: border, it.OCCLUSION: centre}},
        randomisation={"model1": {it.SALIENCY: 0.9, it.OCCLUSION: 0.1}, "model2": {it.SALIENCY: 0.2, it.OCCLUSION: 0.1}})
    assert list(table["similarity_to_random"]) == [0.9, 0.1, 0.2, 0.1]
    text = it.describe_central_share(table)
    assert ("For model1, Saliency fails the randomisation check (rank correlation with a re-initialised copy's "
            "maps up to 0.90)") in text
    assert "model2" not in text.split("fails")[0]  # model2 passes: nothing is said against it
    # model1's centred Saliency maps fail the check, so only its border-bound Occlusion is read
    assert "model1's maps that pass put no more than that inside it by Occlusion (0.0%)." in text
    assert "model1's maps that pass put more" not in text
    # every map of model2 passes, so its sentence needs no "that pass"
    assert "model2's maps put more than that inside it by Occlusion (100.0%), but no more by Saliency (0.0%)." in text
    assert "2 patches per model make these shares an indication" in text


def test_captum_costs_less_in_cheaper_profiles():
    from labkit.profiles import get_profile

    def passes(profile):  # forward-pass equivalents per patch: IG's are forward and backward
        s = get_profile(profile).captum_settings()
        return 3 * s["n_samples"] * s["n_steps"] + it.occlusion_positions(100, s["window"], s["stride"]) ** 2

    assert passes("quick") < passes("standard") < passes("full")
    assert it.occlusion_positions(100, 16, 12) == 8 and it.occlusion_positions(100, 25, 25) == 4


def test_maps_that_are_the_same_for_every_patch_are_not_trusted():
    """The issue's model2 Saliency: one centred, grid-textured blob for all 8 patches. Passing the
    randomisation check is not enough: such maps explain no single prediction."""
    rng = np.random.default_rng(0)
    blob = rng.random((SIZE, SIZE))
    same = np.stack([blob + 0.01 * rng.random((SIZE, SIZE)) for _ in range(6)])
    varied = rng.random((6, SIZE, SIZE))
    assert it.patch_similarity(same) > 0.9 and abs(it.patch_similarity(varied)) < 0.1
    table = it.central_share_table({"model2": {it.SALIENCY: same, it.OCCLUSION: varied}},
                                   randomisation={"model2": {it.SALIENCY: 0.1, it.OCCLUSION: 0.1}},
                                   across_patches=True)
    text = it.describe_central_share(table)
    assert "For model2, Saliency draws nearly the same map for every patch" in text
    assert "by Occlusion" in text and "by Saliency" not in text  # the failing method's share is not read


def test_the_figure_shows_each_map_s_central_share_and_its_first_column_has_a_header():
    labels, preds = np.array([0, 3]), np.array([0, 1])
    occlusion = np.zeros((2, SIZE, SIZE))
    occlusion[0, 45:55, 45:55] = 1    # row 1: all inside the disc
    occlusion[1, :10, :] = 1          # row 2: all outside it
    model = centre_model()
    x = inputs(2)
    fig = it.attribution_figure(model, x, (x * 0 + 128).to(torch.uint8), labels, preds, "t",
                                attributions={it.OCCLUSION: occlusion})
    assert "patch" in [t.get_text() for t in fig.axes[0].texts]
    assert fig.axes[0].get_title().startswith("row 1: true normal epithelial")
    assert fig.axes[1].get_xlabel() == "in the disc: 100%" and fig.axes[3].get_xlabel() == "in the disc: 0%"
    plt.close(fig)
