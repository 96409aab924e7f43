"""An example's images: where they come from, how they are checked and opened, and how logs name them.

An image reference (what `Example.images` holds, JSON-free but picklable):
    str    an absolute file path (a relative path in the data is resolved against the data file's folder)
    bytes  the encoded image (PNG, JPEG ...): from base64 text, raw bytes, or a `datasets` ``Image`` value

`resolve_images(value, base_dir)` turns a row's image field into a list of references and checks that every one
opens (PIL ``verify``): a missing or unreadable image is an `ImageError` naming the image, which the data loader
turns into a bad row (skipped and counted, or an error with ``data.on_bad_row: fail``) before training starts.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
from pathlib import Path
from typing import Any

ImageRef = str | bytes


class ImageError(ValueError):
    """An image of a row is missing, unreadable or of an unsupported kind."""


def _decode_base64(text: str) -> bytes | None:
    if text.startswith("data:"):
        head, _, text = text.partition(",")
        if ";base64" not in head:
            return None
    compact = "".join(text.split())
    if len(compact) < 16 or len(compact) % 4:
        return None
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return None


def _one_ref(value: Any, base_dir: str) -> ImageRef:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, dict):  # a datasets Image feature read without decoding / from parquet
        if value.get("bytes"):
            return bytes(value["bytes"])
        if value.get("path"):
            return _one_ref(str(value["path"]), base_dir)
        raise ImageError("an image dict without 'bytes' or 'path'")
    if hasattr(value, "save") and hasattr(value, "mode"):  # a decoded PIL image (datasets Image feature)
        buffer = io.BytesIO()
        value.save(buffer, format="PNG")
        return buffer.getvalue()
    if isinstance(value, str):
        if not value.strip():
            raise ImageError("an empty image path")
        if value.startswith("data:") or not any(sep in value for sep in "/\\."):
            data = _decode_base64(value)
            if data is not None:
                return data
            if value.startswith("data:"):
                raise ImageError("a data: URL that is not base64")
        path = Path(os.path.expanduser(value))
        if not path.is_absolute():
            path = Path(base_dir) / path
        if not path.is_file():
            data = _decode_base64(value)  # base64 text that happens to contain '/' or '.'
            if data is not None:
                return data
            raise ImageError(f"no image file {str(path)!r}")
        return str(path.resolve())
    raise ImageError(f"an image must be a path, base64 text, bytes or an Image value (got {type(value).__name__})")


def resolve_images(value: Any, base_dir: str = ".") -> list[ImageRef]:
    """A row's image field (one image or a list of them) -> checked references; raises ImageError."""
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if not values:
        raise ImageError("an empty list of images")
    refs = []
    for i, item in enumerate(values):
        where = f"image {i}" if len(values) > 1 else "image"
        try:
            ref = _one_ref(item, base_dir)
            check_image(ref)
        except ImageError as err:
            raise ImageError(f"{where}: {err}") from None
        refs.append(ref)
    return refs


def check_image(ref: ImageRef) -> None:
    """Raise ImageError unless PIL can read ``ref`` (header and data checked by ``Image.verify``)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(ref if isinstance(ref, str) else io.BytesIO(ref)) as img:
            img.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        name = ref if isinstance(ref, str) else f"{len(ref)} bytes"
        raise ImageError(f"unreadable image ({name}): {type(err).__name__}: {str(err)[:120]}") from None


def open_image(ref: ImageRef):
    """The image as an RGB ``PIL.Image`` (decoded now; references stay small until sampling)."""
    from PIL import Image

    with Image.open(ref if isinstance(ref, str) else io.BytesIO(ref)) as img:
        return img.convert("RGB")


def image_label(ref: ImageRef) -> str:
    """How completions.jsonl names an image: its path, or ``sha256:<12 hex>`` of its bytes (never the pixels)."""
    return ref if isinstance(ref, str) else "sha256:" + hashlib.sha256(ref).hexdigest()[:12]
