"""Draw Parley's app icons and favicon (a white speech bubble on Parley's green) with Pillow.

Run once after changing the mark; the PNGs and the .ico under app/static/icons/ are committed:
    .venv/bin/python tools/make_icons.py
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

GREEN = (7, 193, 96, 255)  # --accent in app/static/css/app.css
WHITE = (255, 255, 255, 255)
OUT = Path(__file__).resolve().parent.parent / "app/static/icons"
SUPERSAMPLE = 4


def mark(size: int, *, full_bleed: bool) -> Image.Image:
    """The mark at `size` pixels. A maskable icon is full-bleed green with the bubble inside the
    central safe circle (80% of the width); the others are a rounded square with clear corners."""
    big = size * SUPERSAMPLE
    image = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    if full_bleed:
        draw.rectangle((0, 0, big, big), fill=GREEN)
        scale = 0.56  # the bubble fits well inside the safe zone
    else:
        draw.rounded_rectangle((0, 0, big - 1, big - 1), radius=big * 0.22, fill=GREEN)
        scale = 0.68
    # The bubble: a rounded rectangle with a tail at the lower left, centred optically.
    width = big * scale
    height = width * 0.74
    left = (big - width) / 2
    top = (big - height) / 2 - big * 0.03
    box = (left, top, left + width, top + height)
    draw.rounded_rectangle(box, radius=height * 0.36, fill=WHITE)
    tail = [
        (left + width * 0.20, top + height * 0.80),
        (left + width * 0.12, top + height * 1.22),
        (left + width * 0.46, top + height * 0.92),
    ]
    draw.polygon(tail, fill=WHITE)
    # Three dots: someone is talking.
    radius = width * 0.065
    for step in (-1, 0, 1):
        cx = big / 2 + step * width * 0.24
        cy = top + height / 2
        draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=GREEN)
    return image.resize((size, size), Image.Resampling.LANCZOS)


def badge(size: int) -> Image.Image:
    """The small monochrome mark Android shows in the status bar: the bubble alone, white on clear."""
    image = mark(size, full_bleed=True)
    alpha = Image.eval(image.convert("L"), lambda value: 255 if value > 200 else 0)
    clear = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    return Image.composite(Image.new("RGBA", (size, size), WHITE), clear, alpha)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for size in (192, 512):
        mark(size, full_bleed=False).save(OUT / f"icon-{size}.png", optimize=True)
    mark(512, full_bleed=True).save(OUT / "maskable-512.png", optimize=True)
    mark(32, full_bleed=False).save(OUT / "favicon-32.png", optimize=True)
    mark(180, full_bleed=True).convert("RGB").save(OUT / "apple-touch-icon.png", optimize=True)
    badge(96).save(OUT / "badge-96.png", optimize=True)
    mark(64, full_bleed=False).save(OUT / "favicon.ico", sizes=[(16, 16), (32, 32), (48, 48), (64, 64)])


if __name__ == "__main__":
    main()
