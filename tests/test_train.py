"""labkit.train on a small synthetic task: the class is the colour of a blob in a noisy patch."""
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from labkit.models import Model1, model2_param_groups, unfreeze_schedule
from labkit.train import History, evaluate, fit, pick_device

torch.set_num_threads(2)


def blob_data(n, seed, flip_labels=False):
    """[n, 3, 100, 100] noise with a 40x40 blob somewhere, bright in red, green, blue or all channels
    for labels 0..3; labels balanced."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 4
    colours = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [1.0, 1.0, 1.0]])
    images = torch.randn(n, 3, 100, 100, generator=g) * 0.5
    corners = torch.randint(0, 60, (n, 2), generator=g).tolist()
    for i, label in enumerate(labels.tolist()):
        top, left = corners[i]
        images[i, :, top:top + 40, left:left + 40] += 1.5 * colours[label].view(3, 1, 1)
    if flip_labels:  # a training set that teaches the wrong answer for the validation set
        labels = (labels + 1) % 4
    return TensorDataset(images, labels)


def loaders(n_train=128, n_val=64, flip_labels=False):
    train = DataLoader(blob_data(n_train, 0, flip_labels), batch_size=32, shuffle=True,
                       generator=torch.Generator().manual_seed(0))
    val = DataLoader(blob_data(n_val, 1), batch_size=64)
    return train, val


def small_model1():
    torch.manual_seed(0)
    return Model1(channels=(8, 16), dropout=0.1)


@pytest.mark.parametrize("optimizer, schedule, lr, min_acc", [("adamw", "onecycle", 1e-2, 0.6),
                                                              ("sgd", "cosine", 0.1, 0.4)])
def test_fit_lowers_the_loss_and_beats_chance(optimizer, schedule, lr, min_acc):
    train, val = loaders()
    lines = []
    result = fit(small_model1(), train, val, epochs=3, lr=lr, optimizer=optimizer, schedule=schedule,
                 label_smoothing=0.05, class_weights=torch.ones(4), log=lines.append, name="model1")
    h = result.history
    assert h.epoch == [1, 2, 3] and len(lines) == 3
    assert h.train_loss[-1] < h.train_loss[0]
    assert result.best_val_acc > min_acc  # chance is 0.25
    assert lines[0].startswith("model1 epoch 1/3  train loss") and "val loss" in lines[0] and "lr" in lines[0]


def test_early_stopping_restores_the_best_weights():
    # trained on shifted labels, the model gets worse on validation as it learns: the best epoch is early
    train, val = loaders(flip_labels=True)
    model = small_model1()
    reports = []
    result = fit(model, train, val, epochs=8, lr=5e-3, patience=2, log=None, amp=False,  # exact val loss
                 report=lambda epoch, metrics: reports.append(metrics))
    h = result.history
    assert len(h) == result.best_epoch + 2 < 8  # stopped two epochs after the best one
    assert result.best_val_loss == min(h.val_loss) < h.val_loss[-1]
    assert [r["epoch"] for r in reports] == h.epoch
    # the model holds the best epoch's weights, not the last epoch's
    for key, value in model.state_dict().items():
        assert torch.equal(value, result.best_state[key]), key
    preds = evaluate(model, val)
    loss = nn.functional.cross_entropy(torch.log(torch.from_numpy(preds.probs)), torch.from_numpy(preds.labels))
    assert loss.item() == pytest.approx(result.best_val_loss, rel=1e-4)


def test_fit_is_reproducible_with_a_seed():
    runs = [fit(small_model1(), *loaders(64, 32), epochs=1, log=None, seed=3).history.train_loss
            for _ in range(2)]
    assert runs[0] == runs[1]


def test_fit_reports_a_diverging_loss():
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        fit(small_model1(), *loaders(64, 32), epochs=1, lr=1e30, optimizer="sgd", schedule="none", log=None)


def test_unfreeze_schedule_trains_the_head_first():
    torch.manual_seed(0)
    import torchvision

    model = torchvision.models.resnet18(weights=None, num_classes=4)
    train = DataLoader(TensorDataset(torch.randn(8, 3, 16, 16), torch.arange(8) % 4), batch_size=8)
    snapshots = []

    def snapshot(epoch, metrics):
        snapshots.append((model.layer4[1].conv2.weight.clone(), model.layer1[0].conv1.weight.clone()))

    start = (model.layer4[1].conv2.weight.clone(), model.layer1[0].conv1.weight.clone())
    fit(model, train, train, epochs=2, param_groups=model2_param_groups(model, 1e-3, 1e-4, 1e-4),
        on_epoch_start=unfreeze_schedule(model, stages=1, head_epochs=1), report=snapshot, log=None)
    assert torch.equal(snapshots[0][0], start[0])      # epoch 1: head only
    assert not torch.equal(snapshots[1][0], start[0])  # epoch 2: layer4 trains
    assert torch.equal(snapshots[1][1], start[1])      # layer1 never does


def test_evaluate_tta_averages_flips_and_rotations():
    data = blob_data(12, 2)
    loader = DataLoader(data, batch_size=5)
    torch.manual_seed(0)
    invariant = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 4))  # ignores orientation
    # float32 (amp=False): the averages below are compared to the last digits
    plain, tta = evaluate(invariant, loader, amp=False), evaluate(invariant, loader, tta=True, amp=False)
    np.testing.assert_allclose(plain.probs, tta.probs, atol=1e-6)
    np.testing.assert_array_equal(plain.labels, data.tensors[1].numpy())
    np.testing.assert_allclose(plain.probs.sum(1), 1, atol=1e-5)
    # a model that looks at where the blob is: TTA's average over 8 views differs, and is the mean
    sided = nn.Sequential(nn.Flatten(), nn.Linear(3 * 100 * 100, 4))
    views = [torch.rot90(v, k, (-2, -1)) for v in (data.tensors[0], data.tensors[0].flip(-1)) for k in range(4)]
    with torch.no_grad():
        expected = torch.stack([sided(v).softmax(1) for v in views]).mean(0).numpy()
    np.testing.assert_allclose(evaluate(sided, loader, tta=True, amp=False).probs, expected, atol=1e-5)
    assert not np.allclose(evaluate(sided, loader, amp=False).probs, expected, atol=1e-3)


def test_evaluate_measures_in_the_precision_fit_validated_in():
    # chapter 5's confusion matrix and chapter 7's accuracy come from evaluate, the training curves from fit's
    # validation pass: in one precision (bfloat16 on a CPU that has it) they quote the same accuracy
    train, val = blob_data(64, 0), blob_data(40, 1, flip_labels=True)
    val_loader = DataLoader(val, batch_size=16)
    torch.manual_seed(0)
    model = Model1()
    result = fit(model, DataLoader(train, batch_size=16), val_loader, epochs=2, amp=True, log=None)
    model.load_state_dict(result.best_state)
    same = evaluate(model, val_loader, amp=True)
    assert (same.preds == same.labels).mean() == pytest.approx(result.best_val_acc)
    full = evaluate(model, val_loader, amp=False)
    assert not np.array_equal(same.probs, full.probs)  # bfloat16 logits differ from float32 ones


def test_history_round_trips_through_a_dict():
    h = History()
    h.append(epoch=1, train_loss=1.0, train_acc=0.5, val_loss=0.9, val_acc=0.6, lr=1e-3, seconds=2.0)
    assert History.from_dict(h.to_dict()) == h
    assert list(h.to_frame().columns) == ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"]


def test_pick_device():
    assert pick_device("cpu").type == "cpu"
    assert pick_device("auto").type in ("cpu", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="--device cpu"):
            pick_device("cuda")


def test_fit_runs_with_mixed_precision_and_channels_last_on_cpu():
    result = fit(small_model1(), *loaders(32, 16), epochs=1, amp=True, channels_last=True, log=None)
    assert np.isfinite(result.best_val_loss)
    assert all(v.dtype != torch.bfloat16 for v in result.best_state.values())  # weights stay float32


@pytest.mark.parametrize("value, forced", [("1", True), ("yes", True), ("0", False), ("", False)])
def test_labkit_fp32_turns_mixed_precision_off(monkeypatch, value, forced):
    import labkit.train as train_module

    monkeypatch.setattr(train_module, "_cpu_has_bf16", lambda: True)  # as on a CPU with avx512_bf16
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))  # an H200
    monkeypatch.setenv("LABKIT_FP32", value)
    assert train_module.default_amp(torch.device("cpu")) is (not forced)
    assert train_module.default_amp(torch.device("cuda")) is (not forced)
    assert train_module.default_channels_last(torch.device("cpu"))  # unchanged: not a precision setting


@pytest.mark.parametrize("capability, dtype, scaled, name", [
    ((9, 0), torch.bfloat16, False, "bfloat16 autocast"),                     # H100, H200
    ((8, 0), torch.bfloat16, False, "bfloat16 autocast"),                     # A100 (Ampere)
    ((7, 5), torch.float16, True, "float16 autocast with loss scaling"),      # Kaggle's T4
    ((7, 0), torch.float16, True, "float16 autocast with loss scaling"),      # V100
    ((6, 0), None, False, "float32"),                                         # Kaggle's P100
])
def test_precision_follows_the_gpus_capability(monkeypatch, capability, dtype, scaled, name):
    import labkit.train as train_module

    monkeypatch.delenv("LABKIT_FP32", raising=False)
    asked = []
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: asked.append(device) or capability)
    cuda = torch.device("cuda")
    assert train_module.autocast_dtype(cuda) == dtype
    assert train_module.needs_loss_scaling(train_module.autocast_dtype(cuda), cuda) is scaled
    assert train_module.precision_name("cuda") == name
    assert asked  # decided at run time, from the device itself


def test_precision_on_cpus_with_and_without_bf16(monkeypatch):
    import labkit.train as train_module

    monkeypatch.delenv("LABKIT_FP32", raising=False)
    monkeypatch.setattr(train_module, "_cpu_has_bf16", lambda: True)
    assert train_module.autocast_dtype("cpu") == torch.bfloat16
    assert train_module.precision_name("cpu") == "bfloat16 autocast"
    assert not train_module.needs_loss_scaling(torch.bfloat16, "cpu")
    monkeypatch.setattr(train_module, "_cpu_has_bf16", lambda: False)
    assert train_module.autocast_dtype("cpu") is None and train_module.precision_name("cpu") == "float32"


def test_fit_uses_a_grad_scaler_only_for_float16(monkeypatch):
    """fit on a (mocked) T4 asks for a GradScaler; on an H200 or a CPU it does not. The GradScaler is only
    constructed here (enabled on a CPU device it would refuse to run), so the loop runs on the CPU."""
    import labkit.train as train_module

    made = []

    class RecordingScaler(torch.amp.GradScaler):
        def __init__(self, device="cuda", enabled=True, **kw):
            made.append(enabled)
            super().__init__("cpu", enabled=False)

    monkeypatch.setattr(torch.amp, "GradScaler", RecordingScaler)
    for dtype, expected in ((torch.float16, True), (torch.bfloat16, False), (None, False)):
        monkeypatch.setattr(train_module, "_amp_dtype", lambda device, amp, dtype=dtype: dtype)
        monkeypatch.setattr(train_module, "needs_loss_scaling", lambda d, device: d == torch.float16)
        made.clear()
        fit(small_model1(), *loaders(32, 16), epochs=1, log=None, channels_last=False)
        assert made == [expected]


def test_evaluate_gives_the_same_predictions_in_either_memory_format():
    _, val = loaders(n_val=16)
    model = small_model1().eval()
    nchw = evaluate(model, val, tta=True, channels_last=False)
    nhwc = evaluate(model, val, tta=True, channels_last=True)
    assert np.array_equal(nchw.labels, nhwc.labels)
    assert np.allclose(nchw.probs, nhwc.probs, atol=1e-5)


# --- no host syncs in the inner loop --------------------------------------------------------------

SYNCING = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__")


def count_labkit_syncs(monkeypatch):
    """Counts calls that make the CPU wait for the device (reading a value, copying to the host), made
    from labkit's own code (torch's CPU optimizer reads its step counter, which a GPU run keeps on the host)."""
    import sys

    counts = []
    for name in SYNCING:
        original = getattr(torch.Tensor, name)

        def wrapper(self, *args, _original=original, _name=name, **kwargs):
            caller = sys._getframe(1).f_code.co_filename
            if "/labkit/" in caller:
                counts.append((_name, caller, sys._getframe(1).f_code.co_name))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, wrapper)
    return counts


def nuclei_loaders(n_train, n_val=16, batch=8):
    from labkit.data import NucleiDataset, make_loader

    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n_train + n_val, 3, 100, 100), dtype=torch.uint8, generator=g)
    labels = torch.arange(n_train + n_val) % 4
    stats = {"mean": [0.5] * 3, "std": [0.25] * 3}
    train = NucleiDataset(images[:n_train], labels[:n_train], augment=True, **stats)
    val = NucleiDataset(images[n_train:], labels[n_train:], **stats)
    return make_loader(train, batch, shuffle=True), make_loader(val, batch, shuffle=False)


def test_fit_reads_the_device_once_per_epoch_not_once_per_step(monkeypatch):
    """The syncs labkit makes in an epoch do not grow with its number of steps: 4 steps and 12 steps an
    epoch read the device equally often (the losses and counts are summed on the device)."""
    per_epoch = []
    for n_train in (32, 96):  # 4 and 12 steps of 8
        loaders_ = nuclei_loaders(n_train)
        counts = count_labkit_syncs(monkeypatch)
        fit(small_model1(), *loaders_, epochs=2, log=None, amp=False, channels_last=False)
        monkeypatch.undo()
        per_epoch.append(len(counts) / 2)
    assert per_epoch[0] == per_epoch[1], per_epoch
    assert per_epoch[0] <= 8  # the epoch's sums, the validation sums, the kept weights


def test_evaluate_copies_back_once_not_once_per_batch(monkeypatch):
    from labkit.train import evaluate

    syncs = []
    for n_val in (16, 64):
        _, val = nuclei_loaders(8, n_val=n_val, batch=8)
        counts = count_labkit_syncs(monkeypatch)
        evaluate(small_model1(), val, tta=True)
        monkeypatch.undo()
        syncs.append(len(counts))
    assert syncs[0] == syncs[1], syncs


def test_a_diverging_loss_is_caught_within_the_check_interval(monkeypatch):
    import labkit.train as train_module

    monkeypatch.setattr(train_module, "FINITE_CHECK_STEPS", 3)
    train, val = nuclei_loaders(96)  # 12 steps an epoch
    steps = []

    class Exploding(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = small_model1()

        def forward(self, x):
            steps.append(1)
            out = self.inner(x)
            return out * float("inf") if len(steps) >= 2 else out  # the loss becomes non-finite at step 2

    with pytest.raises(FloatingPointError) as error:
        fit(Exploding(), train, val, epochs=1, lr=0.02, log=None, name="model1 trial 3", amp=False)
    assert len(steps) == 3  # stopped at the first check after step 2, not at the end of the epoch
    message = str(error.value)
    assert "model1 trial 3" in message and "epoch 1" in message and "peak lr 0.02" in message
    assert "lower the learning rate" in message
