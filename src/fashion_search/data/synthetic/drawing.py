"""Pictures of a look: a person drawn large enough that every label survives a 64x64 model input."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from fashion_search.data.labels import FABRIC, NECKLINE, PATTERN
from fashion_search.data.synthetic.looks import PALETTE, RGB, Look, ViewParams

_SHOES: RGB = (40, 34, 32)
_METAL: RGB = (212, 172, 48)

# A unit of pattern size: pixels of a person drawn 192 pixels tall.
_PATTERN_UNIT = 192.0


@dataclass(frozen=True)
class _Frame:
    """Maps body coordinates (fractions of the person's height, x from the body centre) to pixels."""

    cx: float
    top: float
    height: float
    squeeze: float  # horizontal body scale: narrower in the side view

    def xy(self, x: float, y: float) -> tuple[float, float]:
        return self.cx + x * self.squeeze * self.height, self.top + y * self.height

    def box(self, x0: float, y0: float, x1: float, y1: float) -> tuple[float, float, float, float]:
        return (*self.xy(x0, y0), *self.xy(x1, y1))

    def poly(self, points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        return [self.xy(x, y) for x, y in points]


@dataclass(frozen=True)
class _Limb:
    """An arm or a leg: a tapered segment from a joint, in body coordinates."""

    start: tuple[float, float]
    end: tuple[float, float]
    width_start: float
    width_end: float

    def part(self, frame: _Frame, t0: float, t1: float, grow: float = 1.0) -> list[tuple[float, float]]:
        """The polygon of the stretch between fractions t0 and t1 of the limb's length."""
        (x0, y0), (x1, y1) = frame.xy(*self.start), frame.xy(*self.end)
        length = math.hypot(x1 - x0, y1 - y0) or 1.0
        nx, ny = -(y1 - y0) / length, (x1 - x0) / length
        points = []
        for t, side in ((t0, 1), (t1, 1), (t1, -1), (t0, -1)):
            half = grow * frame.height * (self.width_start + t * (self.width_end - self.width_start)) / 2
            px, py = x0 + t * (x1 - x0), y0 + t * (y1 - y0)
            points.append((px + side * nx * half, py + side * ny * half))
        return points


_TORSO = [(-0.115, 0.17), (0.115, 0.17), (0.095, 0.44), (0.105, 0.52), (-0.105, 0.52), (-0.095, 0.44)]
_SLEEVE_REACH = (0.0, 0.3, 0.62, 0.97)  # fraction of the arm a sleeve covers, by sleeve code
_TROUSER_REACH = (0.2, 0.42, 0.72, 1.0)  # fraction of the leg trousers cover, by length code
_SKIRT_HEM = (0.60, 0.69, 0.81, 0.93)  # skirt hem height, by length code
_WAIST, _HIP, _ANKLE = 0.45, 0.5, 0.92


def _limbs(view: ViewParams) -> tuple[list[_Limb], list[_Limb]]:
    arms, legs = [], []
    for side, angle in zip((-1, 1), view.arm_angles):
        radians = math.radians(angle)
        start = (side * 0.1, 0.19)
        hand = (start[0] + side * 0.36 * math.sin(radians), start[1] + 0.36 * math.cos(radians))
        arms.append(_Limb(start, hand, 0.052, 0.04))
        reach = side * (_ANKLE - _HIP) * math.tan(math.radians(view.leg_spread))
        legs.append(_Limb((side * 0.052, _HIP), (side * 0.052 + reach, _ANKLE), 0.07, 0.045))
    return arms, legs


class _Canvas:
    """The picture being drawn, with the shared body geometry and texture coordinates."""

    def __init__(self, look: Look, view: ViewParams, size: tuple[int, int]) -> None:
        width, height = size
        person = view.scale * height
        self.look, self.view = look, view
        squeeze = 0.62 if view.view == "side" else 1.0
        self.frame = _Frame(width * (0.5 + view.offset), (height - person) * 0.55, person, squeeze)
        self.arms, self.legs = _limbs(view)
        xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
        unit = person / _PATTERN_UNIT
        self.u = (xs - self.frame.cx) / (unit * self.frame.squeeze)
        self.v = (ys - self.frame.top) / unit
        self.rng = np.random.default_rng(view.noise_seed)
        self.image = Image.fromarray(_background(view, size))
        self.draw = ImageDraw.Draw(self.image)

    @property
    def front(self) -> bool:
        return self.view.view != "back"

    def mask(self) -> tuple[Image.Image, ImageDraw.ImageDraw]:
        mask = Image.new("L", self.image.size, 0)
        return mask, ImageDraw.Draw(mask)

    def paint(self, mask: Image.Image, garment: int, anchor: tuple[float, float]) -> None:
        """Lay a garment's texture through its mask, with an outline so pale garments show.

        The texture is computed only inside the mask's bounding box: most of the cost of a picture.
        """
        fabric = FABRIC[self.look.labels.fabric[garment]]
        if fabric == "furry":
            mask = self._fuzz(mask)
        box = mask.getbbox()
        if box is None:
            return
        mask = mask.crop(box)
        region = (slice(box[1], box[3]), slice(box[0], box[2]))
        texture = _garment_texture(self.look, garment, self.u[region], self.v[region], anchor, self.rng)
        pixels = np.clip(texture, 0, 255).astype(np.uint8)
        opacity = mask.point(lambda value: value * 7 // 10) if fabric == "chiffon" else mask
        self.image.paste(Image.fromarray(pixels), box[:2], opacity)
        self.image.paste(Image.fromarray(pixels // 2), box[:2], Image.fromarray(_outline(np.asarray(mask))))

    def _fuzz(self, mask: Image.Image) -> Image.Image:
        """Ragged, hairy edges for furry fabric."""
        blurred = np.asarray(mask.filter(ImageFilter.GaussianBlur(2.0)))
        noise = self.rng.random(blurred.shape, np.float32) * 255
        return Image.fromarray(np.where(blurred > noise, 255, 0).astype(np.uint8))


def _outline(mask: np.ndarray) -> np.ndarray:
    """The mask's border pixels (inside, next to outside), as a 0/255 mask."""
    inside = mask > 127
    core = inside.copy()
    core[1:] &= inside[:-1]
    core[:-1] &= inside[1:]
    core[:, 1:] &= inside[:, :-1]
    core[:, :-1] &= inside[:, 1:]
    return np.where(inside & ~core, 255, 0).astype(np.uint8)


def _background(view: ViewParams, size: tuple[int, int]) -> np.ndarray:
    width, height = size
    top, bottom = (np.array(c, dtype=np.float32) for c in view.background)
    t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    return np.broadcast_to(top + t * (bottom - top), (height, width, 3)).astype(np.uint8)


def _pattern_texture(
    u: np.ndarray, v: np.ndarray, pattern: int, colours: tuple[str, str], anchor: tuple[float, float], seed: int
) -> np.ndarray:
    """A pattern in body coordinates (u, v), so it moves and scales with the body."""
    primary, accent = (np.array(PALETTE[c], dtype=np.float32) for c in colours)
    name = PATTERN[pattern]
    au, av = anchor[0] * _PATTERN_UNIT, anchor[1] * _PATTERN_UNIT
    if name == "striped":
        on = (v % 16) < 8
    elif name == "lattice":
        on = ((np.floor(u / 15) + np.floor(v / 15)) % 2) == 1
    elif name == "color block":
        on = (u - au) + 0.6 * (v - av) > 0
    elif name == "floral":
        on = _flowers(u, v, seed)
    elif name == "graphic":
        on = _graphic(u - au, v - av, seed)
    elif name == "other":
        on = _dots_or_zigzag(u, v, seed)
    else:
        on = np.zeros(u.shape, dtype=bool)
    return np.where(on[..., None], accent, primary)


def _flowers(u: np.ndarray, v: np.ndarray, seed: int) -> np.ndarray:
    """Five-petal flowers on a jittered 20-unit grid."""
    cell = 20.0
    i, j = np.floor(u / cell), np.floor(v / cell)
    jitter_u = ((i * 73 + j * 151 + seed) % 7 - 3).astype(np.float32)
    jitter_v = ((i * 37 + j * 101 + seed) % 7 - 3).astype(np.float32)
    du, dv = u - (i + 0.5) * cell - jitter_u, v - (j + 0.5) * cell - jitter_v
    radius, angle = np.hypot(du, dv), np.arctan2(dv, du)
    return radius < 7.0 * (0.55 + 0.45 * np.cos(5 * angle))


def _graphic(du: np.ndarray, dv: np.ndarray, seed: int) -> np.ndarray:
    """One large print centred on the anchor: a disc, ring, star or diamond."""
    radius, angle = np.hypot(du, dv), np.arctan2(dv, du)
    shapes = (
        radius < 17,
        (radius < 19) & (radius > 10),
        radius < 20 * (0.55 + 0.45 * np.cos(5 * angle + np.pi / 2)),
        np.abs(du) + np.abs(dv) < 19,
    )
    return shapes[seed % len(shapes)]


def _dots_or_zigzag(u: np.ndarray, v: np.ndarray, seed: int) -> np.ndarray:
    if seed % 2:
        return np.hypot(u % 12 - 6, v % 12 - 6) < 3.5
    wave = 4 * np.abs((u / 12) % 2 - 1)
    return ((v + wave) % 14) < 6


def _fabric_finish(
    texture: np.ndarray, fabric: int, u: np.ndarray, v: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """How the fabric changes the look of the pattern."""
    u, v, name = u[..., None], v[..., None], FABRIC[fabric]
    if name == "denim":
        texture = 0.7 * texture + 0.3 * np.array((60, 90, 150), dtype=np.float32)
        return np.where(((u + v) % 6) < 2, texture * 0.8, texture)
    if name == "leather":
        shine = 120 * np.exp(-(((u % 34) - 10) ** 2) / 18)
        return texture * 0.7 + shine
    if name == "furry":
        coarse = 30 * rng.standard_normal((texture.shape[0] // 3 + 1, texture.shape[1] // 3 + 1, 1), np.float32)
        coarse = np.repeat(np.repeat(coarse, 3, axis=0), 3, axis=1)[: texture.shape[0], : texture.shape[1]]
        return texture + coarse + 12 * rng.standard_normal(texture.shape, np.float32)
    if name == "knitted":
        return np.where((u % 7) < 2.5, texture * 0.75, texture)
    if name == "chiffon":
        return texture * 0.6 + 255 * 0.4
    if name == "other":
        return texture + 10 * rng.standard_normal(texture.shape, np.float32)
    return texture


def _garment_texture(
    look: Look, garment: int, u: np.ndarray, v: np.ndarray, anchor: tuple[float, float], rng: np.random.Generator
) -> np.ndarray:
    colours = (look.upper_colours, look.lower_colours, look.outer_colours)[garment]
    texture = _pattern_texture(u, v, look.labels.pattern[garment], colours, anchor, look.texture_seed + garment)
    return _fabric_finish(texture, look.labels.fabric[garment], u, v, rng)


def _draw_body(canvas: _Canvas) -> None:
    frame, draw, look = canvas.frame, canvas.draw, canvas.look
    if look.long_hair and canvas.front:
        draw.rounded_rectangle(frame.box(-0.068, 0.04, 0.068, 0.25), radius=6, fill=look.hair)
    for leg in canvas.legs:
        draw.polygon(leg.part(frame, 0, 1), fill=look.skin)
    for arm in canvas.arms:
        draw.polygon(arm.part(frame, 0, 1), fill=look.skin)
        draw.ellipse(_circle(frame, arm.end, 0.027), fill=look.skin)
    draw.polygon(frame.poly(_TORSO), fill=look.skin)
    draw.rectangle(frame.box(-0.024, 0.11, 0.024, 0.18), fill=look.skin)
    for leg in canvas.legs:
        draw.ellipse(_circle(frame, (leg.end[0], leg.end[1] + 0.035), 0.036, squash=0.55), fill=_SHOES)


def _circle(frame: _Frame, centre: tuple[float, float], radius: float, squash: float = 1.0) -> tuple[float, ...]:
    cx, cy = frame.xy(*centre)
    r = radius * frame.height
    return (cx - r, cy - r * squash, cx + r, cy + r * squash)


def _draw_head(canvas: _Canvas) -> None:
    """Drawn after the garments: from the back, long hair falls over them and hides the face."""
    frame, draw, look = canvas.frame, canvas.draw, canvas.look
    draw.ellipse(frame.box(-0.052, 0.006, 0.052, 0.138), fill=look.hair)
    if not canvas.front:
        if look.long_hair:
            draw.rounded_rectangle(frame.box(-0.066, 0.05, 0.066, 0.26), radius=6, fill=look.hair)
        return
    draw.ellipse(frame.box(-0.046, 0.032, 0.046, 0.138), fill=look.skin)
    for x in (0.025,) if canvas.view.view == "side" else (-0.02, 0.02):
        draw.ellipse(_circle(canvas.frame, (x, 0.078), 0.008), fill=(40, 30, 30))
    mouth = [frame.xy(-0.012, 0.112), frame.xy(0.012, 0.112)]
    draw.line(mouth, fill=(150, 60, 60), width=max(1, round(frame.height / 110)))


def _draw_lower(canvas: _Canvas) -> None:
    mask, draw = canvas.mask()
    _lower_shape(canvas, draw)
    canvas.paint(mask, 1, anchor=(-0.05, 0.62))


def _lower_shape(canvas: _Canvas, draw: ImageDraw.ImageDraw) -> None:
    frame, look = canvas.frame, canvas.look
    length = look.code("lower_length")
    if look.skirt:
        hem = _SKIRT_HEM[length]
        flare = 0.105 + (hem - _WAIST) * 0.4
        draw.polygon(frame.poly([(-0.105, _WAIST), (0.105, _WAIST), (flare, hem), (-flare, hem)]), fill=255)
    else:
        draw.polygon(frame.poly([(-0.105, _WAIST), (0.105, _WAIST), (0.112, 0.56), (-0.112, 0.56)]), fill=255)
        for leg in canvas.legs:
            draw.polygon(leg.part(frame, 0, _TROUSER_REACH[length], grow=1.2), fill=255)


def _draw_upper(canvas: _Canvas) -> None:
    frame, look = canvas.frame, canvas.look
    neckline, has_outer = NECKLINE[look.code("neckline")], look.code("cardigan") == 0
    hem = 0.52 if look.code("covers_navel") else 0.38
    mask, draw = canvas.mask()
    top = 0.25 if neckline == "suspenders" else 0.168
    body = [(-0.118, top), (0.118, top), (0.098, 0.44), (0.112, hem), (-0.112, hem), (-0.098, 0.44)]
    draw.polygon(frame.poly(body), fill=255)
    if neckline == "suspenders":
        for x in (-0.07, 0.05):
            draw.rectangle(frame.box(x, 0.165, x + 0.022, 0.26), fill=255)
    if not has_outer:
        _draw_sleeves(canvas, draw)
    if look.one_piece:
        _lower_shape(canvas, draw)
    if canvas.front:
        _cut_neckline(canvas, draw, neckline)
    canvas.paint(mask, 0, anchor=(0.0, 0.31))
    if canvas.front and neckline == "lapel":
        dark = tuple(int(c * 0.6) for c in PALETTE[look.upper_colours[0]])
        for side in (-1, 1):
            flap = [(side * 0.046, 0.168), (side * 0.012, 0.27), (side * 0.085, 0.2)]
            canvas.draw.polygon(frame.poly(flap), fill=dark)


def _draw_sleeves(canvas: _Canvas, draw: ImageDraw.ImageDraw) -> None:
    reach = _SLEEVE_REACH[canvas.look.code("sleeve_length")]
    if reach:
        for arm in canvas.arms:
            draw.polygon(arm.part(canvas.frame, -0.05, reach, grow=1.25), fill=255)


def _cut_neckline(canvas: _Canvas, draw: ImageDraw.ImageDraw, neckline: str) -> None:
    """Cut the neckline out of the upper garment's mask (a standing collar adds to it instead)."""
    frame = canvas.frame
    if neckline in ("V-shape", "lapel"):
        draw.polygon(frame.poly([(-0.046, 0.166), (0.046, 0.166), (0.0, 0.275)]), fill=0)
    elif neckline == "square":
        draw.rectangle(frame.box(-0.05, 0.166, 0.05, 0.228), fill=0)
    elif neckline == "round":
        draw.ellipse(frame.box(-0.05, 0.12, 0.05, 0.215), fill=0)
    elif neckline == "standing":
        draw.rectangle(frame.box(-0.032, 0.128, 0.032, 0.18), fill=255)


def _draw_outer(canvas: _Canvas) -> None:
    frame = canvas.frame
    mask, draw = canvas.mask()
    if canvas.front:  # open at the front: two panels at the torso's sides
        left = [(-0.125, 0.165), (-0.055, 0.165), (-0.06, 0.6), (-0.135, 0.6)]
        panels = [left, [(-x, y) for x, y in left]]
    else:
        panels = [[(-0.125, 0.165), (0.125, 0.165), (0.135, 0.6), (-0.135, 0.6)]]
    for panel in panels:
        draw.polygon(frame.poly(panel), fill=255)
    _draw_sleeves(canvas, draw)
    canvas.paint(mask, 2, anchor=(-0.09, 0.33))


def _draw_accessories(canvas: _Canvas) -> None:
    frame, draw, look = canvas.frame, canvas.draw, canvas.look
    colour = PALETTE[look.accessory_colour]
    if look.code("socks") == 1:
        for leg in canvas.legs:
            draw.polygon(leg.part(frame, 0.84, 1.0, grow=1.15), fill=colour)
            draw.ellipse(_circle(frame, (leg.end[0], leg.end[1] + 0.035), 0.036, squash=0.55), fill=_SHOES)
    if look.code("waist_accessories") == 1:
        draw.rectangle(frame.box(-0.108, 0.448, 0.108, 0.49), fill=colour, outline=(30, 30, 30))
        draw.rectangle(frame.box(-0.018, 0.452, 0.018, 0.486), fill=_METAL)
    if look.code("wrist_wearing") == 1:
        draw.polygon(canvas.arms[1].part(frame, 0.8, 0.92, grow=1.4), fill=_METAL)
    if look.code("ring") == 1:
        draw.ellipse(_circle(frame, canvas.arms[0].end, 0.012), fill=_METAL)
    if look.code("neckwear") == 1:
        _draw_neckwear(canvas, colour)
    if look.code("hat") == 1:
        draw.rectangle(frame.box(-0.05, -0.012, 0.05, 0.04), fill=colour, outline=(30, 30, 30))
        draw.rectangle(frame.box(-0.09, 0.03, 0.09, 0.052), fill=colour, outline=(30, 30, 30))
    if look.code("glasses") in (1, 2) and canvas.front:
        _draw_glasses(canvas, look.code("glasses") == 2)


def _draw_neckwear(canvas: _Canvas, colour: RGB) -> None:
    frame, draw = canvas.frame, canvas.draw
    draw.rectangle(frame.box(-0.045, 0.135, 0.045, 0.185), fill=colour, outline=(30, 30, 30))
    if not canvas.front:
        return
    if canvas.look.gender == "MEN":
        tie = [(-0.016, 0.18), (0.016, 0.18), (0.024, 0.37), (0.0, 0.4), (-0.024, 0.37)]
        draw.polygon(frame.poly(tie), fill=colour)
    else:
        draw.rectangle(frame.box(0.012, 0.18, 0.045, 0.33), fill=colour)


def _draw_glasses(canvas: _Canvas, sunglasses: bool) -> None:
    frame, draw = canvas.frame, canvas.draw
    lens_fill = (20, 20, 24) if sunglasses else (200, 225, 235)
    width = max(1, round(frame.height / 60))
    eyes = (0.025,) if canvas.view.view == "side" else (-0.022, 0.022)
    for x in eyes:
        lens = frame.box(x - 0.02, 0.066, x + 0.02, 0.092)
        draw.rectangle(lens, fill=lens_fill, outline=(15, 15, 15), width=width)
    draw.line([frame.xy(-0.046, 0.072), frame.xy(0.046, 0.072)], fill=(15, 15, 15), width=width)


def render_person(look: Look, view: ViewParams, image_size: tuple[int, int] = (128, 192)) -> Image.Image:
    """Draw one view of a look: body, lower garment, upper garment, outer layer, accessories."""
    canvas = _Canvas(look, view, image_size)
    _draw_body(canvas)
    if not look.one_piece:
        _draw_lower(canvas)
    _draw_upper(canvas)
    if look.code("cardigan") == 0:
        _draw_outer(canvas)
    _draw_head(canvas)
    _draw_accessories(canvas)
    noise = 3 * canvas.rng.standard_normal((image_size[1], image_size[0], 3), np.float32)
    pixels = np.asarray(canvas.image, dtype=np.float32) + noise
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
