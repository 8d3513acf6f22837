"""labkit.interpret with tiny models whose true focus is known: the centre, or the border only."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from labkit import interpret as it  # noqa: E402

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
    assert "chance" in text and "centre model looks more at the central nucleus than border model" in text
    assert "concentrates on the central nucleus" in text and "looks mostly at the surroundings" in text

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
    assert "about equally (model1 19.8% vs model2 19.8%)" in text
    assert "spread about as evenly as chance" in text
