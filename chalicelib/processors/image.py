"""Image processors: a visible watermark, and an invisible one that can be read back.

Pillow is imported inside the functions so that it costs nothing at cold start.
The blind watermark hides a UTF-8 text in the least significant bit of every
colour channel, behind a 32-bit length; it survives only lossless formats, so
the target is always written as PNG.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from pydantic import ConfigDict, Field

from chalicelib.processors.sdk import Context, PermanentError, processor
from chalicelib.validation import Schema

if TYPE_CHECKING:
    from PIL.Image import Image

    from chalicelib.model import Task

_LENGTH_BITS = 32
MAX_PIXELS = 40_000_000  # a 4-channel copy of this is 160 MB, within the worker's 1 GB


class WatermarkInput(Schema):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=200)
    opacity: int = Field(default=128, ge=0, le=255)


class BlindWatermarkInput(Schema):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=1000)


def _open(data: bytes) -> Image:
    from PIL import Image, UnidentifiedImageError

    # A small file can declare a huge canvas (a decompression bomb): refuse it before
    # decoding, far below what would exhaust the worker's memory.
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        image = Image.open(io.BytesIO(data))
        if image.width * image.height > MAX_PIXELS:
            raise PermanentError(
                f"the image is {image.width}x{image.height} pixels; at most {MAX_PIXELS} are read"
            )
        image.load()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise PermanentError(f"the source object is not a readable image: {exc}") from exc
    return image


def _png(image: Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@processor("image/watermark", input=WatermarkInput, needs_source=True, needs_target=True)
def watermark(task: Task, ctx: Context) -> dict[str, Any]:
    from PIL import Image, ImageDraw, ImageFont

    params: WatermarkInput = ctx.input  # type: ignore[assignment]
    image = _open(ctx.read_source()).convert("RGBA")
    ctx.progress(1, 3, "source decoded")
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    font = ImageFont.load_default()
    left, top, right, bottom = draw.textbbox((0, 0), params.text, font=font)
    position = (
        max(0, image.width - (right - left) - 10),
        max(0, image.height - (bottom - top) - 10),
    )
    draw.text(position, params.text, fill=(255, 255, 255, params.opacity), font=font)
    stamped = Image.alpha_composite(image, overlay).convert("RGB")
    ctx.progress(2, 3, "watermark drawn")
    ctx.write_target(_png(stamped), "image/png")
    return {"width": stamped.width, "height": stamped.height}


def embed_text(image: Image, text: str) -> Image:
    payload = text.encode("utf-8")
    bits = [(len(payload) >> (_LENGTH_BITS - 1 - i)) & 1 for i in range(_LENGTH_BITS)]
    bits += [(byte >> (7 - i)) & 1 for byte in payload for i in range(8)]
    rgb = image.convert("RGB")
    channels = bytearray(rgb.tobytes())
    if len(bits) > len(channels):
        raise PermanentError(
            f"the image is too small to hold {len(payload)} bytes of text "
            f"(room for {max(0, len(channels) - _LENGTH_BITS) // 8})"
        )
    for i, bit in enumerate(bits):
        channels[i] = (channels[i] & 0xFE) | bit
    from PIL import Image as PILImage

    return PILImage.frombytes("RGB", rgb.size, bytes(channels))


def extract_text(image: Image) -> str:
    channels = image.convert("RGB").tobytes()
    if len(channels) < _LENGTH_BITS:
        raise PermanentError("the image is too small to carry a blind watermark")
    length = 0
    for i in range(_LENGTH_BITS):
        length = (length << 1) | (channels[i] & 1)
    end = _LENGTH_BITS + length * 8
    if length == 0 or end > len(channels):
        raise PermanentError("no blind watermark found in the image")
    payload = bytearray()
    for start in range(_LENGTH_BITS, end, 8):
        byte = 0
        for offset in range(8):
            byte = (byte << 1) | (channels[start + offset] & 1)
        payload.append(byte)
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        raise PermanentError("no blind watermark found in the image") from None


@processor("image/blindwatermark", input=BlindWatermarkInput, needs_source=True, needs_target=True)
def blind_watermark(task: Task, ctx: Context) -> dict[str, Any]:
    params: BlindWatermarkInput = ctx.input  # type: ignore[assignment]
    image = _open(ctx.read_source())
    ctx.progress(1, 2, "source decoded")
    marked = embed_text(image, params.text)
    ctx.write_target(_png(marked), "image/png")
    return {"embedded_bytes": len(params.text.encode("utf-8"))}


@processor("image/deblindwatermark", needs_source=True)
def deblind_watermark(task: Task, ctx: Context) -> str:
    return extract_text(_open(ctx.read_source()))
