"""--init: weights matched by name and shape, pickled torchxrayvision models only when trusted."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from models.nets import WeightsError, create_model, load_init  # noqa: E402


def test_init_loads_matching_tensors_and_skips_a_different_head(tmp_path):
    source = create_model("tiny", 5)
    torch.save({"model": source.state_dict(), "config": {}}, tmp_path / "five.pt")
    target = create_model("tiny", 2)
    report = load_init(target, tmp_path / "five.pt")
    skipped = dict(report.skipped)
    assert set(skipped) == {"classifier.weight", "classifier.bias"}
    assert "shape" in skipped["classifier.weight"]
    assert report.missing == ["classifier.weight", "classifier.bias"]
    torch.testing.assert_close(target.features[0].weight, source.features[0].weight)


def test_init_strips_ddp_prefixes(tmp_path):
    source = create_model("tiny", 2)
    torch.save({f"module.{k}": v for k, v in source.state_dict().items()}, tmp_path / "ddp.pt")
    report = load_init(create_model("tiny", 2), tmp_path / "ddp.pt")
    assert not report.skipped and not report.missing


def test_pickled_torchxrayvision_densenet_needs_trust_then_loads_its_features(tmp_path):
    xrv = pytest.importorskip("torchxrayvision")
    path = tmp_path / "xrv-densenet121.pt"
    torch.save(xrv.models.DenseNet(weights=None), path)  # how xrv publishes its weights
    model = create_model("densenet121", 3)
    with pytest.raises(WeightsError, match="--trust-init"):
        load_init(model, path)
    report = load_init(model, path, trust_pickle=True)
    skipped = dict(report.skipped)
    assert "features.conv0.weight" in report.loaded  # the 1-channel stem matches
    assert len(report.loaded) > 300
    assert {"classifier.weight", "classifier.bias"} <= set(skipped)
    assert all(not key.startswith("features.") for key in skipped)


def test_init_file_with_nothing_usable_is_an_error(tmp_path):
    torch.save({"unrelated.weight": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(WeightsError, match="no tensor matches"):
        load_init(create_model("tiny", 2), tmp_path / "other.pt")
