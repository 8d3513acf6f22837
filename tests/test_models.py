"""labkit.models: layer counting and its limit, model2's weights policy, freezing and parameter groups."""
import warnings

import pytest
import torch
import torchvision
from torch import nn

from labkit import N_CLASSES, models
from labkit.artifacts import sha256_file
from labkit.models import (
    LayerLimitError,
    MissingWeightsError,
    Model1,
    WeightsError,
    build_model1,
    build_model2,
    count_layers,
    head_of,
    model2_param_groups,
    set_unfrozen_stages,
)


# -- model1 -----------------------------------------------------------------------------------------
def test_model1_counts_conv_and_linear_as_weight_layers():
    model = Model1(channels=(8, 16, 32), hidden=0)
    count = count_layers(model)
    assert count.weight_layers == 4  # 3 conv + 1 linear
    assert count.by_type["Conv2d"] == 3 and count.by_type["Linear"] == 1
    assert count.by_type["BatchNorm2d"] == 3 and count.by_type["MaxPool2d"] == 3
    assert count.all_layers > count.weight_layers
    assert model(torch.randn(2, 3, 100, 100)).shape == (2, N_CLASSES)


def test_model1_hidden_layer_and_no_batch_norm():
    model = Model1(channels=(8, 16), hidden=32, batch_norm=False, pool="max")
    count = count_layers(model)
    assert count.weight_layers == 4 and "BatchNorm2d" not in count.by_type
    assert model(torch.randn(1, 3, 100, 100)).shape == (1, N_CLASSES)


def test_model1_at_the_limit_works_on_100px_patches():
    model = Model1(channels=(4,) * 7)  # 7 convs + 1 linear = 8; the image shrinks to 1x1, no error
    assert count_layers(model).weight_layers == 8
    assert model(torch.randn(2, 3, 100, 100)).shape == (2, N_CLASSES)


@pytest.mark.parametrize("channels, hidden", [((4,) * 8, 0), ((4,) * 7, 16)])
def test_model1_refuses_more_than_eight_weight_layers(channels, hidden):
    with pytest.raises(LayerLimitError, match="9 weight layers"):
        Model1(channels=channels, hidden=hidden)


def test_model1_pools_before_relu_with_the_textbook_blocks_outputs_and_gradients():
    # the order is only a speed-up if it is the same network: same logits, same gradients, bit for bit,
    # with batch norm in training mode and the 25 -> 13 pooling whose last window is cut by the border
    torch.manual_seed(0)
    model = Model1(channels=(8, 16, 32), dropout=0.0, relu_first=False)
    assert [type(m) for m in list(model.features)[:4]] == [nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.ReLU]
    textbook = Model1(channels=(8, 16, 32), dropout=0.0, relu_first=True)
    assert [type(m) for m in list(textbook.features)[:4]] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d]
    assert model.state_dict().keys() == textbook.state_dict().keys()  # checkpoints load into either
    textbook.load_state_dict(model.state_dict())
    x, y = torch.randn(6, 3, 100, 100), torch.tensor([0, 1, 2, 3, 0, 1])
    logits = {}
    for name, net in (("ours", model), ("textbook", textbook)):
        logits[name] = net(x)
        nn.functional.cross_entropy(logits[name], y).backward()
    assert torch.equal(logits["ours"], logits["textbook"])
    for (name, ours), theirs in zip(model.named_parameters(), textbook.parameters()):
        assert torch.equal(ours.grad, theirs.grad), name


@pytest.mark.parametrize("bf16, relu_first", [(True, True), (False, False)])
def test_model1s_block_order_follows_the_cpus_precision(monkeypatch, bf16, relu_first):
    import labkit.train as train_module

    monkeypatch.delenv("LABKIT_FP32", raising=False)
    monkeypatch.setattr(train_module, "_cpu_has_bf16", lambda: bf16)
    second = type(list(Model1(channels=(8,)).features)[2])
    assert second is (nn.ReLU if relu_first else nn.MaxPool2d)
    monkeypatch.setenv("LABKIT_FP32", "1")  # the stand-in for a CPU without bf16 gets that CPU's order
    assert type(list(Model1(channels=(8,)).features)[2]) is nn.MaxPool2d


def test_build_model1_ignores_keys_it_does_not_know():
    model = build_model1({"channels": [8, 16], "dropout": 0.1, "lr": 3e-3, "epochs": 4})
    assert count_layers(model).weight_layers == 3
    assert model.classifier[1].p == 0.1


# -- model2 weights ---------------------------------------------------------------------------------
class FakeWeights:
    """Stands in for a torchvision weights enum whose URL carries the hash prefix of a file we wrote."""

    def __init__(self, url):
        self.url = url

    def __str__(self):
        return "ResNet18_Weights.TEST"


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory):
    """A real resnet18 state_dict saved by the test, and its SHA-256."""
    path = tmp_path_factory.mktemp("weights") / "resnet18-state.pth"
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    return path, sha256_file(path)


@pytest.fixture
def offline(monkeypatch):
    def no_download(url, dest, hash_prefix, timeout=0):
        raise OSError("network is closed (test)")
    monkeypatch.setattr(models, "_download", no_download)


def test_file_with_matching_hash_is_verified(resnet18_file, monkeypatch, tmp_path):
    path, sha = resnet18_file
    named = tmp_path / f"resnet18-{sha[:8]}.pth"
    named.write_bytes(path.read_bytes())
    monkeypatch.setattr(models, "default_weights",
                        lambda arch: FakeWeights(f"https://download.pytorch.org/models/resnet18-{sha[:8]}.pth"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a verified load must not warn
        model, info = build_model2("resnet18", weights_file=named)
    assert info.verified and info.pretrained and info.source == "file" and info.sha256 == sha
    assert "verified" in info.message
    # the backbone holds the file's weights; the head is new and has 4 outputs
    saved = torch.load(path, weights_only=True)
    assert torch.equal(model.layer1[0].conv1.weight, saved["layer1.0.conv1.weight"])
    assert head_of(model).out_features == N_CLASSES


def test_file_with_other_hash_loads_but_is_not_verified(resnet18_file):
    path, sha = resnet18_file
    assert not sha.startswith("f37072fd")  # torchvision's real prefix for resnet18
    with pytest.warns(UserWarning, match="NOT verified"):
        _model, info = build_model2("resnet18", weights_file=path)
    assert info.pretrained and not info.verified and info.sha256 == sha
    assert info.as_dict()["weights"] == "ResNet18_Weights.IMAGENET1K_V1"


def test_cached_file_is_found_by_torchvisions_file_name(resnet18_file, tmp_path, offline):
    path, _ = resnet18_file
    (tmp_path / "resnet18-f37072fd.pth").write_bytes(path.read_bytes())
    with pytest.warns(UserWarning, match="NOT verified"):  # the test's file is not torchvision's
        _, info = build_model2("resnet18", cache_dir=tmp_path)
    assert info.source == "cache" and info.pretrained and not info.verified


def test_file_of_another_architecture_is_refused(resnet18_file):
    path, _ = resnet18_file
    with pytest.raises(WeightsError, match="not a state_dict of torchvision's resnet34"):
        build_model2("resnet34", weights_file=path)


def test_missing_weights_file_is_named(tmp_path):
    with pytest.raises(MissingWeightsError, match="nope.pth"):
        build_model2("resnet18", weights_file=tmp_path / "nope.pth")


def test_offline_stub_build_goes_on_with_random_init_and_a_warning(tmp_path, offline):
    with pytest.warns(UserWarning, match="RANDOMLY INITIALISED"):
        model, info = build_model2("resnet18", cache_dir=tmp_path, allow_random=True)
    assert not info.pretrained and not info.verified and info.source == "random" and info.sha256 is None
    assert "resnet18-f37072fd.pth" in info.message
    assert model(torch.randn(1, 3, 100, 100)).shape == (1, N_CLASSES)


def test_offline_real_data_build_stops_with_file_name_and_folder(tmp_path, offline):
    with pytest.raises(MissingWeightsError) as err:
        build_model2("resnet18", cache_dir=tmp_path, allow_random=False)
    assert "resnet18-f37072fd.pth" in str(err.value) and str(tmp_path) in str(err.value)


def test_download_gives_up_at_once_when_unreachable(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "_reachable", lambda url, timeout: False)
    with pytest.raises(OSError, match="cannot reach"):
        models._download("https://download.pytorch.org/models/x-abc.pth", tmp_path / "x-abc.pth", "abc")
    assert not any(tmp_path.iterdir())


def test_unknown_architecture_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown torchvision classification model"):
        build_model2("resnet_9000")


# -- freezing and parameter groups --------------------------------------------------------------------
@pytest.fixture
def resnet(offline, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_model2("resnet18", cache_dir=tmp_path)[0]


def trainable(module: nn.Module) -> bool:
    return all(p.requires_grad for p in module.parameters())


def frozen(module: nn.Module) -> bool:
    return not any(p.requires_grad for p in module.parameters())


def test_unfrozen_stages_count_from_the_head(resnet):
    set_unfrozen_stages(resnet, 0)
    assert trainable(resnet.fc) and frozen(resnet.layer4) and frozen(resnet.conv1)
    set_unfrozen_stages(resnet, 2)
    assert trainable(resnet.layer4) and trainable(resnet.layer3) and frozen(resnet.layer2)
    set_unfrozen_stages(resnet, -1)
    assert trainable(resnet)


def test_param_groups_cover_every_parameter_once(resnet):
    groups = model2_param_groups(resnet, head_lr=1e-3, backbone_lr=1e-4, weight_decay=0.01)
    assert [g["name"] for g in groups] == ["head", "backbone"]
    assert [g["lr"] for g in groups] == [1e-3, 1e-4]
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(resnet.parameters()))
    assert {id(p) for p in groups[0]["params"]} == {id(p) for p in resnet.fc.parameters()}


def test_other_architectures_get_a_new_head(offline, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, _info = build_model2("mobilenet_v3_small", cache_dir=tmp_path)
    assert model.classifier[-1].out_features == N_CLASSES and head_of(model) is model.classifier
    set_unfrozen_stages(model, 1)
    assert trainable(model.features[-1]) and frozen(model.features[0])
