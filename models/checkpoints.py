"""Checkpoints: written atomically, read back with tensors and plain values only (nothing is
unpickled as code), and refused with one clear line when a file is not a cxrbank checkpoint."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from cxrbank.collection import atomic_write_bytes
from models.data import DataError

CHECKPOINT_KEYS = {"model": dict, "config": dict, "labels": list}


def load_checkpoint(path: Path | str) -> dict[str, Any]:
    """A cxrbank checkpoint (tensors and plain values only; nothing is unpickled as code).

    DataError "PATH: not a cxrbank checkpoint (why)" for anything else: text, an empty file,
    a pickle of other objects, a bare state dict.
    """
    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except Exception as exc:  # torch/pickle raise many types (EOFError, KeyError, Unpickling…)
        raise DataError(f"{path}: not a cxrbank checkpoint ({_unloadable(path, exc)})") from None
    if not isinstance(state, dict):
        raise DataError(f"{path}: not a cxrbank checkpoint (holds a {type(state).__name__})")
    wrong = [key for key, kind in CHECKPOINT_KEYS.items() if not isinstance(state.get(key), kind)]
    if wrong:
        raise DataError(f"{path}: not a cxrbank checkpoint (no {', '.join(wrong)})")
    return state


RESUME_KEYS = {"optimizer": dict, "epoch": int}


def check_resumable(state: dict[str, Any], path: Path | str) -> dict[str, Any]:
    """The checkpoint when a run can continue from it (optimizer state and epoch), else
    DataError saying how to start from its weights instead."""
    wrong = [key for key, kind in RESUME_KEYS.items() if not isinstance(state.get(key), kind)]
    if wrong:
        raise DataError(f"{path}: cannot resume from it (no {', '.join(wrong)}; resume from a "
                        f"last.pt written by `cxrbank train`), or start a new run from its "
                        f"weights with --init {path}")
    return state


def _unloadable(path: Path | str, exc: BaseException) -> str:
    """Why torch.load failed on a file, in a few words."""
    with open(path, "rb") as handle:
        head = handle.read(4)
    if not head:
        return "empty file"
    if not head.startswith(b"PK\x03\x04") and not head.startswith(b"\x80"):
        return "not a PyTorch file"
    if "Weights only load failed" in str(exc):
        return "it holds objects other than tensors and plain values"
    text = (str(exc).strip().splitlines() or [""])[0][:150]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write a checkpoint atomically (a crash leaves the old file or the new one, whole)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())
