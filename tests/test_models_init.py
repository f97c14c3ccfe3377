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


def _legacy(key: str) -> str:
    """torchvision's published DenseNet names ("denselayer1.norm1" saved as "norm.1")."""
    for part in ("norm", "relu", "conv"):
        for n in ("1", "2"):
            key = key.replace(f".{part}{n}.", f".{part}.{n}.")
    return key


def test_torchvision_imagenet_densenet_weights_load_with_legacy_names_and_rgb_stem(tmp_path):
    torchvision = pytest.importorskip("torchvision")
    imagenet = torchvision.models.densenet121(weights=None).state_dict()  # 3-channel, 1000 classes
    torch.save({_legacy(k): v for k, v in imagenet.items()}, tmp_path / "densenet121-a639ec97.pth")
    model = create_model("densenet121", 2)
    report = load_init(model, tmp_path / "densenet121-a639ec97.pth")
    assert dict(report.skipped).keys() == {"classifier.weight", "classifier.bias"}
    assert len(report.loaded) == len(imagenet) - 2
    assert report.missing == ["classifier.weight", "classifier.bias"]
    assert report.adapted == [("features.conv0.weight",
                               "RGB weights summed into the 1-channel stem")]
    torch.testing.assert_close(model.features.conv0.weight,
                               imagenet["features.conv0.weight"].sum(1, keepdim=True))
    layer = "features.denseblock1.denselayer1.norm1.weight"
    torch.testing.assert_close(model.state_dict()[layer], imagenet[layer])


def test_init_from_another_architecture_is_refused_not_mostly_skipped(tmp_path):
    tiny = create_model("tiny", 2).state_dict()  # 26 tensors shared with another net's 40
    other = {**tiny, **{f"layer{i}.weight": torch.zeros(2) for i in range(40)}}
    torch.save(other, tmp_path / "other.pt")
    with pytest.raises(WeightsError, match=r"only 26 of 66 tensors match this network by name "
                                           r"and shape \(first left out: layer0.weight: not in "
                                           r"this network\); are these weights for another "
                                           r"architecture\?"):
        load_init(create_model("tiny", 2), tmp_path / "other.pt")


def test_init_from_a_text_or_truncated_file_says_so_without_suggesting_trust(tmp_path):
    (tmp_path / "notes.pt").write_text("not weights\n")
    source = create_model("tiny", 2)
    torch.save(source.state_dict(), tmp_path / "whole.pt")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "whole.pt").read_bytes()[:500])
    with pytest.raises(WeightsError) as text:
        load_init(create_model("tiny", 2), tmp_path / "notes.pt")
    assert str(text.value) == f"{tmp_path / 'notes.pt'}: not a weights file (not a PyTorch file)"
    with pytest.raises(WeightsError) as cut:
        load_init(create_model("tiny", 2), tmp_path / "cut.pt")
    assert "not a weights file" in str(cut.value) and "--trust-init" not in str(cut.value)
