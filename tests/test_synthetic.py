"""The synthetic dataset: reproducible, in the real set's layout, and showing what it says."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fashion_search.data.labels import (
    FABRIC,
    PATTERN,
    SHAPE_COLUMNS,
    ImageLabels,
    attribute_names,
    read_labels,
    write_labels,
)
from fashion_search.data.layout import (
    CAPTIONS_FILE,
    FABRIC_FILE,
    IMAGES_DIR,
    PATTERN_FILE,
    SHAPE_FILE,
    item_id_from_image_name,
)
from fashion_search.data.synthetic import Look, ViewParams, draw_items, generate_synthetic, render_person

N_ITEMS = 24
SEED = 3
REAL_NAME = re.compile(r"^(MEN|WOMEN)-[A-Za-z_]+-id_\d{8}-\d{2}_\d_(front|side|back|full|additional)\.jpg$")


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    generate_synthetic(root, n_items=N_ITEMS, seed=SEED)
    return root


def _digests(root: Path) -> dict[str, str]:
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _proxy_tokens(caption: str) -> int:
    return len(re.findall(r"\w+|[^\w\s]", caption)) + 2


# ---------------------------------------------------------------- the files


def test_same_seed_gives_byte_identical_files(generated: Path, tmp_path: Path) -> None:
    generate_synthetic(tmp_path, n_items=N_ITEMS, seed=SEED)
    assert _digests(tmp_path) == _digests(generated)


def test_another_seed_gives_other_files(generated: Path, tmp_path: Path) -> None:
    generate_synthetic(tmp_path, n_items=N_ITEMS, seed=SEED + 1)
    assert set(_digests(tmp_path).values()).isdisjoint(_digests(generated).values())


def test_names_follow_the_real_pattern_and_group_views_by_item(generated: Path) -> None:
    names = sorted(path.name for path in (generated / IMAGES_DIR).iterdir())
    assert all(REAL_NAME.match(name) for name in names)
    views_per_item = Counter(item_id_from_image_name(name) for name in names)
    assert len(views_per_item) == N_ITEMS
    assert all(2 <= count <= 5 for count in views_per_item.values())
    assert {item_id_from_image_name(name) for name in names if name.endswith("_front.jpg")} == set(views_per_item)


def test_every_image_has_a_caption_and_labels_shared_by_its_views(generated: Path) -> None:
    names = {path.name for path in (generated / IMAGES_DIR).iterdir()}
    text = (generated / CAPTIONS_FILE).read_text(encoding="utf-8")
    captions = json.loads(text)
    result = read_labels(generated)
    assert text == json.dumps(captions, sort_keys=True, ensure_ascii=False)
    assert set(captions) == names == set(result.labels)
    assert (result.malformed_lines, result.missing_names) == (0, 0)
    by_item: dict[str, set] = {}
    for name in names:
        by_item.setdefault(item_id_from_image_name(name), set()).add((captions[name], result.labels[name]))
    assert all(len(shared) == 1 for shared in by_item.values())


def test_summary_counts_what_was_written(tmp_path: Path) -> None:
    summary = generate_synthetic(tmp_path, n_items=5, seed=0, image_size=(64, 96))
    images = list((tmp_path / IMAGES_DIR).iterdir())
    assert (summary.n_items, summary.n_images, summary.n_captions) == (5, len(images), len(images))


# ---------------------------------------------------------------- labels and captions


@pytest.fixture(scope="module")
def items() -> list:
    return draw_items(400, seed=11)


def test_captions_say_what_the_labels_say(items: list) -> None:
    for item in items:
        caption, labels, look = item.caption, item.look.labels, item.look
        names = attribute_names(labels)
        assert names["sleeve_length"] in caption
        assert names["lower_length"] in caption
        for pattern, fabric in zip(labels.pattern, labels.fabric):
            if PATTERN[pattern] != "NA":
                assert f"{PATTERN[pattern]} patterns" in caption
                assert f"{FABRIC[fabric]} fabric" in caption
        assert look.upper_colours[0] in caption and look.lower_colours[0] in caption
        mentions = {
            "hat": r"\bhat\b", "waist_accessories": r"\bbelt\b", "ring": r"\bring\b",
            "wrist_wearing": r"\b(wrist|bracelet)\b", "neckwear": r"\b(neck|scarf|tie)\b",
        }  # fmt: skip
        for column, pattern in mentions.items():
            assert (labels.shape_code(column) == 1) == bool(re.search(pattern, caption)), (column, caption)
        assert (labels.shape_code("socks") == 1) == ("socks" in caption)
        assert (labels.shape_code("glasses") == 1) == bool(re.search(r"\bglasses\b", caption))
        assert (labels.shape_code("glasses") == 2) == ("sunglasses" in caption)


def test_categories_agree_with_labels(items: list) -> None:
    for item in items:
        look, length = item.look, item.look.code("lower_length")
        if item.category in ("Dresses", "Skirts"):
            assert look.skirt
        if item.category in ("Pants", "Leggings"):
            assert not look.skirt and length >= 2
        if item.category == "Shorts":
            assert not look.skirt and length <= 1
        if item.category in ("Cardigans", "Jackets_Coats", "Jackets_Vests"):
            assert look.code("cardigan") == 0
        assert (look.code("cardigan") == 0) == (look.labels.fabric[2] != FABRIC.index("NA"))


def test_label_draws_cover_the_code_tables(items: list) -> None:
    labels = [item.look.labels for item in items]
    assert {label.shape_code("sleeve_length") for label in labels} >= {0, 1, 2, 3}
    assert {label.shape_code("lower_length") for label in labels} >= {0, 1, 2, 3}
    assert {label.pattern[0] for label in labels} >= set(range(7))
    assert {code for label in labels for code in label.fabric[:2]} >= set(range(7))
    accessories = {"hat": 1, "neckwear": 1, "wrist_wearing": 1, "ring": 1, "waist_accessories": 1, "socks": 1}
    for column, present in accessories.items():
        assert 0.1 <= np.mean([label.shape_code(column) == present for label in labels]) <= 0.4, column
    assert 0.1 <= np.mean([label.shape_code("glasses") in (1, 2) for label in labels]) <= 0.4


def test_a_few_captions_run_past_the_clip_context(items: list) -> None:
    lengths = [_proxy_tokens(item.caption) for item in items for _ in item.views]
    assert 0 < np.mean(np.array(lengths) > 77) < 0.15
    assert len({item.caption for item in items}) / len(items) > 0.7


# ---------------------------------------------------------------- pictures


def _plain_look(**shape: int) -> Look:
    codes = dict.fromkeys(SHAPE_COLUMNS, 0) | {"sleeve_length": 1, "lower_length": 3, "neckline": 2}
    codes |= {"cardigan": 1, "covers_navel": 1} | shape
    labels = ImageLabels(
        shape=tuple(codes[column] for column in SHAPE_COLUMNS),
        fabric=(FABRIC.index("cotton"), FABRIC.index("cotton"), FABRIC.index("NA")),
        pattern=(PATTERN.index("pure color"), PATTERN.index("pure color"), PATTERN.index("NA")),
    )
    return Look(
        gender="WOMEN", labels=labels, upper_colours=("red", "white"), lower_colours=("navy", "yellow"),
        outer_colours=("green", "black"), accessory_colour="orange", skirt=False, one_piece=False,
        skin=(224, 172, 134), hair=(30, 22, 18), long_hair=False, texture_seed=1,
    )  # fmt: skip


VIEW = ViewParams(
    view="front", scale=0.9, offset=0.0, arm_angles=(12.0, 12.0), leg_spread=4.0,
    background=((236, 236, 236), (226, 226, 226)), noise_seed=0,
)  # fmt: skip


def _changed(a: Look, b: Look) -> np.ndarray:
    """Where two renders of the same pose differ by more than the noise could."""
    first, second = (np.asarray(render_person(look, VIEW), dtype=np.int16) for look in (a, b))
    return np.abs(first - second).max(axis=2) > 40


def _zone(x0: float, x1: float, y0: float, y1: float) -> tuple[slice, slice]:
    """A box in body coordinates of VIEW (x from the body centre, both in person heights)."""
    height = VIEW.scale * 192
    top, centre = (192 - height) * 0.55, 64
    rows = slice(int(top + y0 * height), int(top + y1 * height))
    return rows, slice(int(centre + x0 * height), int(centre + x1 * height))


def test_render_has_the_requested_size() -> None:
    image = render_person(_plain_look(), VIEW, (128, 192))
    assert image.size == (128, 192) and image.mode == "RGB"


def test_sleeve_length_shows_on_the_arms_only() -> None:
    changed = _changed(_plain_look(sleeve_length=0), _plain_look(sleeve_length=3))
    arms = np.zeros_like(changed)
    for side in (_zone(-0.3, -0.1, 0.15, 0.6), _zone(0.1, 0.3, 0.15, 0.6)):
        arms[side] = True
    assert changed[arms].sum() > 400
    assert changed[~arms].sum() < 0.1 * changed.sum()


def test_upper_pattern_shows_on_the_torso_only() -> None:
    plain = _plain_look()
    stripes = (PATTERN.index("striped"), *plain.labels.pattern[1:])
    striped = replace(plain, labels=replace(plain.labels, pattern=stripes))
    changed = _changed(plain, striped)
    assert changed[_zone(-0.08, 0.08, 0.22, 0.46)].mean() > 0.3
    assert not changed[_zone(-0.15, 0.15, 0.6, 1.0)].any()


def test_lower_length_shows_on_the_legs() -> None:
    changed = _changed(_plain_look(lower_length=0), _plain_look(lower_length=3))
    assert changed[_zone(-0.12, 0.12, 0.7, 0.9)].mean() > 0.3
    assert not changed[_zone(-0.3, 0.3, 0.0, 0.4)].any()


def test_accessories_show_where_they_are_worn() -> None:
    hat = _changed(_plain_look(), _plain_look(hat=1))
    assert hat[_zone(-0.1, 0.1, -0.02, 0.06)].sum() > 100 and not hat[_zone(-0.3, 0.3, 0.2, 1.0)].any()
    glasses = _changed(_plain_look(), _plain_look(glasses=2))
    assert glasses[_zone(-0.05, 0.05, 0.06, 0.1)].sum() > 40 and not glasses[_zone(-0.3, 0.3, 0.15, 1.0)].any()


# ---------------------------------------------------------------- reading labels


def _labels(sleeve: int) -> ImageLabels:
    return ImageLabels(shape=(sleeve, 3, 0, 0, 0, 0, 0, 0, 0, 2, 1, 1), fabric=(1, 0, 7), pattern=(3, 3, 7))


def test_labels_round_trip(tmp_path: Path) -> None:
    written = {"a.jpg": _labels(0), "b.jpg": _labels(3)}
    write_labels(tmp_path, written)
    result = read_labels(tmp_path)
    assert result.labels == written and (result.malformed_lines, result.missing_names) == (0, 0)
    assert attribute_names(written["b.jpg"]) == {
        "sleeve_length": "long-sleeve", "lower_length": "long", "upper_pattern": "pure color",
        "upper_fabric": "cotton", "lower_pattern": "pure color", "lower_fabric": "denim",
    }  # fmt: skip


def test_bad_label_lines_are_counted_not_fatal(tmp_path: Path) -> None:
    write_labels(tmp_path, {"a.jpg": _labels(0), "b.jpg": _labels(1)})
    with (tmp_path / SHAPE_FILE).open("a") as shape:
        shape.write("short.jpg 1 2 3\n")  # wrong column count
        shape.write("word.jpg x 3 0 0 0 0 0 0 0 2 1 1\n")  # not an integer
        shape.write("range.jpg 9 3 0 0 0 0 0 0 0 2 1 1\n")  # sleeve code out of range
        shape.write("\n")  # blank lines are not errors
    with (tmp_path / FABRIC_FILE).open("a") as fabric:
        fabric.write("range.jpg 1 1 99\n")
        fabric.write("texture_only.jpg 1 1 7\n")
    with (tmp_path / PATTERN_FILE).open("a") as pattern:
        pattern.write("texture_only.jpg 3 3 7\n")
        pattern.write("b.jpg 3 3 7\n")  # a repeated name: both of its lines are distrusted
    result = read_labels(tmp_path)
    assert set(result.labels) == {"a.jpg"}
    assert result.malformed_lines == 6
    assert result.missing_names == 2  # texture_only.jpg has no shape line; b.jpg lost its pattern line


def test_absent_label_files_read_as_empty(tmp_path: Path) -> None:
    result = read_labels(tmp_path)
    assert (result.labels, result.malformed_lines, result.missing_names) == ({}, 0, 0)


def test_labels_reject_codes_outside_the_tables() -> None:
    with pytest.raises(ValueError):
        ImageLabels(shape=(6,) + (0,) * 11, fabric=(1, 1, 7), pattern=(3, 3, 7))
    with pytest.raises(ValueError):
        ImageLabels(shape=(0,) * 12, fabric=(1, 1), pattern=(3, 3, 7))
