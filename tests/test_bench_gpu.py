"""bench/gpu.py runs on a CPU with small sizes: the project's path and compute alone, side by side."""
import torch

torch.set_num_threads(2)


def test_bench_gpu_prints_path_compute_and_their_ratio_for_both_models(capsys):
    from bench import gpu

    summary = gpu.main(["--device", "cpu", "--models", "model1", "resnet18", "--images", "16", "--batch", "8",
                        "--epochs", "2", "--rounds", "1"])
    assert set(summary) == {"model1", "resnet18"}
    for figures in summary.values():
        assert figures["path"] > 0 and figures["compute"] > 0 and figures["per_item"] > 0
        assert abs(figures["ratio"] - figures["path"] / figures["compute"]) < 1e-9
    printed = capsys.readouterr().out
    assert "path/compute" in printed and "path/per-item" in printed and "resnet18" in printed
    assert "autocast" in printed or "float32" in printed  # the precision it ran in
