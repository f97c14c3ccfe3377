"""Reading any grey image as 8-bit grey: 16-bit, 32-bit integer and float greys scaled, not clipped."""

from __future__ import annotations

from typing import Any

WIDE_GREYS = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def grey8(image: Any) -> Any:
    """`image` (a PIL image) as mode "L".

    16-bit greys keep the top 8 of the bits in use (PIL's convert("L") clips them to 255, so a
    16-bit radiograph came out near-white); 32-bit integer and float greys are stretched from their
    minimum to their maximum; every other mode is converted as PIL does.
    """
    import numpy as np  # noqa: PLC0415 - heavy imports only where images are read
    from PIL import Image  # noqa: PLC0415

    if image.mode == "L":
        return image
    if image.mode not in WIDE_GREYS:
        return image.convert("L")
    values = np.asarray(image)
    if image.mode.startswith("I;16"):
        return Image.fromarray(top8(values), "L")
    values = values.astype(np.float64)
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    if high <= low:
        return Image.fromarray(np.zeros(values.shape, np.uint8), "L")
    scaled = np.nan_to_num((values - low) * (255.0 / (high - low)), nan=0.0, posinf=255, neginf=0)
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), "L")


def top8(values: Any) -> Any:
    """A 16-bit grey array as uint8: the top 8 of the bits in use (12-bit data, 0-4095, as many
    radiographs are stored, would otherwise keep only 0-15)."""
    import numpy as np  # noqa: PLC0415

    values = np.asarray(values).astype(np.uint16)
    shift = max(0, int(values.max(initial=0)).bit_length() - 8)
    return (values >> shift).astype(np.uint8)
