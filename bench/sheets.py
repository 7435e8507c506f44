"""Pictures of digits as a model saw them, each with a caption: what the benches show of their
misreadings."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["contact_sheet"]


def contact_sheet(tiles: list[tuple[np.ndarray | None, str]], picture: Path, cols: int = 12,
                  cell: int = 64) -> Path:
    """Write a grid of 28x28 images (floats in [0, 1] or uint8; None leaves the cell blank), each
    with its caption below, to `picture`."""
    rows = max(1, -(-len(tiles) // cols))
    sheet = Image.new("L", (cols * cell, rows * (cell + 14)), 255)
    draw = ImageDraw.Draw(sheet)
    for i, (image, caption) in enumerate(tiles):
        x, y = (i % cols) * cell, (i // cols) * (cell + 14)
        if image is not None:
            pixels = np.asarray(image).reshape(28, 28)
            if pixels.dtype != np.uint8:
                pixels = (pixels * 255).astype(np.uint8)
            tile = Image.fromarray(pixels).resize((cell - 4, cell - 4), Image.NEAREST)
            sheet.paste(tile, (x + 2, y + 2))
        draw.text((x + 2, y + cell - 1), caption, fill=0)
    picture.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(picture)
    return picture
