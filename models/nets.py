"""Network factories (tiny CNN, DenseNet-121, ResNet-50; 1-channel stem) and weight loading."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from models.checkpoints import _unloadable

ARCHS: tuple[str, ...] = ("tiny", "densenet121", "resnet50")


class TinyNet(nn.Module):
    """A four-block CNN for tests and smoke runs: seconds per epoch on a laptop CPU."""

    def __init__(self, num_labels: int, width: int = 16) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 1
        for i in range(4):
            out = width * 2**i
            layers += [
                nn.Conv2d(channels, out, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(inplace=True),
            ]
            channels = out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_labels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


def create_model(arch: str, num_labels: int) -> nn.Module:
    """A freshly initialised network with a 1-channel input and `num_labels` logits."""
    if arch == "tiny":
        return TinyNet(num_labels)
    import torchvision

    if arch == "densenet121":
        model = torchvision.models.densenet121(weights=None, num_classes=num_labels)
        model.features.conv0 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
        return model
    if arch == "resnet50":
        model = torchvision.models.resnet50(weights=None, num_classes=num_labels)
        model.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
        return model
    raise ValueError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHS)}")


@dataclass
class InitReport:
    """What `load_init` took from a weights file and what it left out (with the reason)."""

    path: str
    loaded: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (key, reason)
    missing: list[str] = field(default_factory=list)  # model keys the file did not provide
    adapted: list[tuple[str, str]] = field(default_factory=list)  # loaded after a change (how)

    def summary(self) -> str:
        adapted = "".join(f"; {key}: {how}" for key, how in self.adapted)
        return (
            f"{self.path}: loaded {len(self.loaded)} tensors, skipped {len(self.skipped)}, "
            f"{len(self.missing)} left at their initial values{adapted}"
        )


class WeightsError(Exception):
    """A weights file cannot be used as asked."""


def read_state_dict(path: Path | str, trust_pickle: bool = False) -> dict[str, torch.Tensor]:
    """The tensors of a weights file: a cxrbank checkpoint, a plain state dict, or (trusted
    only) a pickled module such as torchxrayvision's published DenseNet weights."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        why = _unloadable(path, exc)
        if "objects other than tensors" not in why:
            raise WeightsError(f"{path}: not a weights file ({why})") from None
        if not trust_pickle:
            raise WeightsError(
                f"{path}: not a plain state dict (a pickled model?); loading it runs code from "
                "the file, so pass --trust-init only for a file you trust"
            ) from exc
        try:
            obj = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc2:
            raise WeightsError(f"{path}: unreadable weights file: {exc2}") from exc2
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    elif isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path}: holds no state dict")
    return {_strip_prefix(k): v for k, v in obj.items()}


# torchvision's published DenseNet weights use the names of its first release
# ("denselayer1.norm.1.weight" for "denselayer1.norm1.weight"); torchvision renames them so.
_LEGACY_DENSENET = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$"
)


def _strip_prefix(key: str) -> str:
    for prefix in ("module.", "_orig_mod.", "model."):
        while key.startswith(prefix):
            key = key[len(prefix):]
    legacy = _LEGACY_DENSENET.match(key)
    return legacy.group(1) + legacy.group(2) if legacy else key


def _to_one_channel(tensor: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor | None:
    """An RGB stem's weights summed over colour, for a 1-channel stem (a grey image fed as R=G=B
    gives the same output); None when the shapes differ otherwise."""
    if tensor.dim() == 4 and tensor.shape[1] == 3 and shape == (tensor.shape[0], 1, *tensor.shape[2:]):
        return tensor.sum(dim=1, keepdim=True)
    return None


def load_init(model: nn.Module, path: Path | str, trust_pickle: bool = False) -> InitReport:
    """Copy every tensor whose name and shape match into `model`; report the rest."""
    source = read_state_dict(path, trust_pickle=trust_pickle)
    target = model.state_dict()
    report = InitReport(path=str(path))
    usable: dict[str, torch.Tensor] = {}
    for key, tensor in source.items():
        if key not in target:
            report.skipped.append((key, "not in this network"))
            continue
        shape = tuple(target[key].shape)
        if tuple(tensor.shape) != shape:
            grey = _to_one_channel(tensor, shape)
            if grey is None:
                report.skipped.append((key, f"shape {tuple(tensor.shape)} != {shape}"))
                continue
            tensor = grey
            report.adapted.append((key, "RGB weights summed into the 1-channel stem"))
        usable[key] = tensor
        report.loaded.append(key)
    report.missing = [k for k in target if k not in usable]
    if not usable:
        raise WeightsError(f"{path}: no tensor matches this network by name and shape")
    if len(report.skipped) > len(report.loaded):
        key, why = report.skipped[0]
        raise WeightsError(f"{path}: only {len(report.loaded)} of {len(source)} tensors match "
                           f"this network by name and shape (first left out: {key}: {why}); "
                           "are these weights for another architecture?")
    model.load_state_dict(usable, strict=False)
    return report
