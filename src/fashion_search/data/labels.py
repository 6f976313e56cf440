"""DeepFashion-MultiModal attribute labels: the code tables and the three label files.

The label files are optional in the layout and come from outside, so the reader
distrusts them: a bad line is counted and skipped, never fatal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fashion_search.data.layout import FABRIC_FILE, GARMENT_FILE, PATTERN_FILE, SHAPE_FILE

# Shape columns, in file order; each table is indexed by the code the file holds.
SLEEVE_LENGTH = ("sleeveless", "short-sleeve", "medium-sleeve", "long-sleeve", "not long-sleeve", "NA")
LOWER_LENGTH = ("three-point", "medium short", "three-quarter", "long", "NA")
SOCKS = ("no", "socks", "leggings", "NA")
HAT = ("no", "yes", "NA")
GLASSES = ("no", "eyeglasses", "sunglasses", "have a glasses in hand or clothes", "NA")
NECKWEAR = ("no", "yes", "NA")
WRIST_WEARING = ("no", "yes", "NA")
RING = ("no", "yes", "NA")
WAIST_ACCESSORIES = ("no", "belt", "have a clothing", "hidden", "NA")
NECKLINE = ("V-shape", "square", "round", "standing", "lapel", "suspenders", "NA")
CARDIGAN = ("yes cardigan", "no cardigan", "NA")
COVERS_NAVEL = ("no", "yes", "NA")

SHAPE_COLUMNS = (
    "sleeve_length",
    "lower_length",
    "socks",
    "hat",
    "glasses",
    "neckwear",
    "wrist_wearing",
    "ring",
    "waist_accessories",
    "neckline",
    "cardigan",
    "covers_navel",
)
SHAPE_CODES = (
    SLEEVE_LENGTH,
    LOWER_LENGTH,
    SOCKS,
    HAT,
    GLASSES,
    NECKWEAR,
    WRIST_WEARING,
    RING,
    WAIST_ACCESSORIES,
    NECKLINE,
    CARDIGAN,
    COVERS_NAVEL,
)
SHAPE_INDEX = {name: column for column, name in enumerate(SHAPE_COLUMNS)}

# Texture files: one code per garment, in this order.
GARMENTS = ("upper", "lower", "outer")
FABRIC = ("denim", "cotton", "leather", "furry", "knitted", "chiffon", "other", "NA")
PATTERN = ("floral", "graphic", "striped", "pure color", "lattice", "other", "color block", "NA")
# Garment colours (upper, lower, outer): only the synthetic source has them; DeepFashion-MultiModal does not.
COLOUR = ("white", "black", "grey", "red", "blue", "navy", "green", "yellow", "pink", "purple", "brown", "beige",
          "orange", "NA")
LOWER_TYPE = ("skirt", "trousers", "NA")  # what the lower garment is (synthetic source only)
GARMENT_TABLES = (COLOUR, COLOUR, COLOUR, LOWER_TYPE)  # upper, lower, outer colour; lower type


@dataclass(frozen=True)
class ImageLabels:
    """All three label files' codes for one image; construction checks every code."""

    shape: tuple[int, ...]
    fabric: tuple[int, ...]  # upper, lower, outer
    pattern: tuple[int, ...]  # upper, lower, outer

    def __post_init__(self) -> None:
        for codes, tables in (
            (self.shape, SHAPE_CODES),
            (self.fabric, (FABRIC,) * len(GARMENTS)),
            (self.pattern, (PATTERN,) * len(GARMENTS)),
        ):
            if not _codes_fit(codes, tables):
                raise ValueError(f"codes {codes} do not fit tables of sizes {[len(t) for t in tables]}")

    def shape_code(self, column: str) -> int:
        """The code of a shape column by name, so callers never hard-code positions."""
        return self.shape[SHAPE_INDEX[column]]


@dataclass(frozen=True)
class LabelsReadResult:
    """Labels of images present in all three files, plus what had to be dropped."""

    labels: dict[str, ImageLabels] = field(default_factory=dict)
    malformed_lines: int = 0
    missing_names: int = 0


def _codes_fit(codes: tuple[int, ...], tables: tuple[tuple[str, ...], ...]) -> bool:
    return len(codes) == len(tables) and all(0 <= code < len(table) for code, table in zip(codes, tables))


def write_labels(root: Path, labels: dict[str, ImageLabels]) -> None:
    """Write the three label files under `root` in the real set's format, names sorted."""
    names = sorted(labels)
    for relative, codes_of in (
        (SHAPE_FILE, lambda item: item.shape),
        (FABRIC_FILE, lambda item: item.fabric),
        (PATTERN_FILE, lambda item: item.pattern),
    ):
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = (" ".join([name, *map(str, codes_of(labels[name]))]) for name in names)
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def _read_codes(path: Path, tables: tuple[tuple[str, ...], ...]) -> tuple[dict[str, tuple[int, ...]], int]:
    """Parse one label file into name -> codes; returns the codes and the malformed-line count.

    A repeated name is malformed too: which of its lines is right cannot be known.
    """
    if not path.is_file():
        return {}, 0
    parsed: dict[str, tuple[int, ...]] = {}
    repeated: set[str] = set()
    malformed = 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        fields = line.split()
        if not fields:
            continue
        codes = _parse_codes(fields[1:], tables)
        if codes is None or fields[0] in repeated:
            malformed += 1
        elif fields[0] in parsed:
            malformed += 2
            repeated.add(fields[0])
            del parsed[fields[0]]
        else:
            parsed[fields[0]] = codes
    return parsed, malformed


def _parse_codes(fields: list[str], tables: tuple[tuple[str, ...], ...]) -> tuple[int, ...] | None:
    try:
        codes = tuple(int(value) for value in fields)
    except ValueError:
        return None
    return codes if _codes_fit(codes, tables) else None


def read_labels(root: Path) -> LabelsReadResult:
    """Read the three label files under `root`; absent files read as empty."""
    shapes, bad_shape = _read_codes(root / SHAPE_FILE, SHAPE_CODES)
    fabrics, bad_fabric = _read_codes(root / FABRIC_FILE, (FABRIC,) * len(GARMENTS))
    patterns, bad_pattern = _read_codes(root / PATTERN_FILE, (PATTERN,) * len(GARMENTS))
    complete = shapes.keys() & fabrics.keys() & patterns.keys()
    seen = shapes.keys() | fabrics.keys() | patterns.keys()
    labels = {
        name: ImageLabels(shape=shapes[name], fabric=fabrics[name], pattern=patterns[name])
        for name in sorted(complete)
    }
    return LabelsReadResult(
        labels=labels,
        malformed_lines=bad_shape + bad_fabric + bad_pattern,
        missing_names=len(seen - complete),
    )


def attribute_names(labels: ImageLabels) -> dict[str, str]:
    """Human names of the attributes that per-attribute retrieval metrics group on."""
    upper, lower = GARMENTS.index("upper"), GARMENTS.index("lower")
    return {
        "sleeve_length": SLEEVE_LENGTH[labels.shape_code("sleeve_length")],
        "lower_length": LOWER_LENGTH[labels.shape_code("lower_length")],
        "upper_pattern": PATTERN[labels.pattern[upper]],
        "upper_fabric": FABRIC[labels.fabric[upper]],
        "lower_pattern": PATTERN[labels.pattern[lower]],
        "lower_fabric": FABRIC[labels.fabric[lower]],
    }


def write_garments(root: Path, garments: dict[str, tuple[int, ...]]) -> None:
    """The garment file (upper, lower, outer colour and lower type codes per image) in the label
    files' format, names sorted."""
    path = root / GARMENT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = (" ".join([name, *map(str, garments[name])]) for name in sorted(garments))
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def read_garments(root: Path) -> tuple[dict[str, tuple[int, ...]], int]:
    """Garment codes (GARMENT_TABLES) by image name and the malformed-line count; an absent file reads as empty."""
    return _read_codes(root / GARMENT_FILE, GARMENT_TABLES)
