"""PIL drawing for the synthetic dataset: backgrounds, the subject toy and class objects.

Everything is drawn on a canvas `SUPERSAMPLE` times larger than the output and scaled
down with a Lanczos filter, so edges are smooth at 64 px. Pure functions of their inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw

SUPERSAMPLE = 4
RGB = tuple[int, int, int]

BACKGROUND_COLOURS: dict[str, RGB] = {
    "blue": (70, 110, 200),
    "green": (80, 160, 90),
    "grey": (140, 140, 140),
    "beige": (225, 205, 165),
    "purple": (130, 90, 170),
    "white": (240, 240, 235),
}
BackgroundStyle = Literal["plain", "striped", "checkered", "gradient", "speckled"]
BACKGROUND_STYLES: tuple[BackgroundStyle, ...] = (
    "plain",
    "striped",
    "checkered",
    "gradient",
    "speckled",
)


@dataclass(frozen=True)
class Placement:
    """Where and how a sprite goes on the canvas (fractions of the canvas size)."""

    centre_x: float
    centre_y: float
    scale: float
    """Sprite height as a fraction of the canvas height."""
    angle: float
    """Counter-clockwise rotation in degrees."""


def background(
    size: int, colour: RGB, style: BackgroundStyle, rng: np.random.Generator
) -> Image.Image:
    """A `size`-pixel square background of one colour family in the given style."""
    base = np.array(colour, dtype=np.float32)
    darker = np.clip(base * 0.7, 0, 255)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    if style == "plain":
        mix = np.zeros((size, size), dtype=np.float32)
    elif style == "striped":
        mix = (np.floor((xx + yy) * 8) % 2).astype(np.float32)
    elif style == "checkered":
        mix = ((np.floor(xx * 6) + np.floor(yy * 6)) % 2).astype(np.float32)
    elif style == "gradient":
        mix = yy
    else:
        mix = rng.random((size, size), dtype=np.float32) * 0.6
    pixels = base * (1 - mix[..., None]) + darker * mix[..., None]
    return Image.fromarray(pixels.round().astype(np.uint8), mode="RGB")


def subject_sprite(size: int) -> Image.Image:
    """The subject ("sks toy"): a red robot with yellow stripes, big eyes and a blue antenna."""
    sprite = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(sprite)
    unit = size / 16
    body = (3 * unit, 6 * unit, 13 * unit, 15 * unit)
    draw.rounded_rectangle(
        body, radius=2 * unit, fill=(205, 35, 40), outline=(60, 10, 10), width=max(1, int(unit / 2))
    )
    for row in (10, 12.5):
        draw.rectangle((3.5 * unit, row * unit, 12.5 * unit, (row + 1) * unit), fill=(250, 210, 40))
    head = (4 * unit, 2 * unit, 12 * unit, 7.5 * unit)
    draw.rounded_rectangle(
        head,
        radius=1.5 * unit,
        fill=(225, 60, 50),
        outline=(60, 10, 10),
        width=max(1, int(unit / 2)),
    )
    for eye_x in (6, 10):
        draw.ellipse(
            ((eye_x - 1.3) * unit, 3.3 * unit, (eye_x + 1.3) * unit, 5.9 * unit), fill="white"
        )
        draw.ellipse(
            ((eye_x - 0.6) * unit, 4.0 * unit, (eye_x + 0.6) * unit, 5.2 * unit), fill="black"
        )
    draw.line(
        (8 * unit, 2 * unit, 8 * unit, 0.9 * unit), fill=(60, 10, 10), width=max(1, int(unit / 2))
    )
    draw.ellipse((7.1 * unit, 0.1 * unit, 8.9 * unit, 1.9 * unit), fill=(40, 90, 230))
    return sprite


ClassShape = Literal["ball", "block", "pyramid", "ring", "star"]
CLASS_SHAPES: tuple[ClassShape, ...] = ("ball", "block", "pyramid", "ring", "star")
CLASS_COLOURS: dict[str, RGB] = {
    "green": (40, 170, 70),
    "orange": (240, 140, 30),
    "yellow": (235, 215, 40),
    "pink": (235, 120, 180),
    "teal": (30, 160, 160),
    "brown": (140, 90, 50),
}


def class_sprite(size: int, shape: ClassShape, colour: RGB) -> Image.Image:
    """A generic toy of the same broad class as the subject: one plain coloured shape."""
    sprite = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(sprite)
    edge = tuple(int(c * 0.5) for c in colour)
    width = max(1, size // 32)
    margin = size * 0.12
    box = (margin, margin, size - margin, size - margin)
    if shape == "ball":
        draw.ellipse(box, fill=colour, outline=edge, width=width)
    elif shape == "block":
        draw.rectangle(box, fill=colour, outline=edge, width=width)
    elif shape == "pyramid":
        draw.polygon(
            [(size / 2, margin), (size - margin, size - margin), (margin, size - margin)],
            fill=colour,
            outline=edge,
        )
    elif shape == "ring":
        draw.ellipse(box, fill=colour, outline=edge, width=width)
        inner = size * 0.32
        draw.ellipse((inner, inner, size - inner, size - inner), fill=(0, 0, 0, 0))
    else:
        centre = size / 2
        points = []
        for index in range(10):
            radius = (size / 2 - margin) * (1.0 if index % 2 == 0 else 0.45)
            angle = np.pi / 2 + index * np.pi / 5
            points.append((centre + radius * np.cos(angle), centre - radius * np.sin(angle)))
        draw.polygon(points, fill=colour, outline=edge)
    return sprite


def compose(canvas: Image.Image, sprite: Image.Image, placement: Placement) -> Image.Image:
    """Paste `sprite`, scaled, rotated and centred as `placement` says, onto `canvas`."""
    size = canvas.size[0]
    target = max(2, round(size * placement.scale))
    scaled = sprite.resize((target, target), Image.Resampling.LANCZOS)
    rotated = scaled.rotate(placement.angle, resample=Image.Resampling.BICUBIC, expand=True)
    left = round(placement.centre_x * size - rotated.size[0] / 2)
    top = round(placement.centre_y * size - rotated.size[1] / 2)
    result = canvas.copy()
    result.paste(rotated, (left, top), rotated)
    return result


def downsample(image: Image.Image, resolution: int) -> Image.Image:
    """Scale a supersampled canvas down to the output resolution."""
    return image.resize((resolution, resolution), Image.Resampling.LANCZOS)
