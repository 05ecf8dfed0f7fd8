#!/usr/bin/env python3
"""Regenerate the display's bundled fonts: subsets of Noto Sans and Noto Sans CJK.

Why two fonts of the Noto family: Noto Sans CJK covers Latin, Greek and Cyrillic only as far as
the East Asian legacy character sets do; it has no č ř š ž ő ł є і (Czech, Polish, Hungarian,
Ukrainian …).  So the display draws with Noto Sans first and falls back to Noto Sans CJK for
every character Noto Sans lacks (display/fonts/__init__.py, ChainFont).  coverage.json, written
here, lists the code points Noto Sans has, so the renderer needs no font parser at run time.

Why subsets: the full Noto Sans CJK collection is ~20 MB per weight with 65,535 glyphs for five
regions; a kiosk needs one region's glyph forms and the characters UI text can contain:
Latin (Basic to Extended Additional), Greek, Cyrillic, punctuation and common symbols, CJK
punctuation, kana, the 2,350 KS X 1001 Hangul syllables, and the ideographs of GB2312
(simplified Chinese) and JIS X 0208 (Japanese, all Jōyō kanji included).

Usage (a one-off build step; fontTools is not a runtime dependency of the display):

    apt-get install -y fonts-noto-core fonts-noto-cjk     # Debian / Raspberry Pi OS
    .venv/bin/pip install fonttools
    .venv/bin/python display/fonts/make_subset.py         # writes next to this script

It writes NotoSans-{Regular,Bold}.subset.ttf, NotoSansCJK-{Regular,Bold}.subset.otf and
coverage.json; the same sources give the same files.  The fonts stay under the SIL Open Font
License 1.1 (OFL.txt beside them); the subsets keep the original name and licence records.
The only Reserved Font Name involved is "Source" (Noto Sans CJK derives from Source Han Sans),
which no family name here uses.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_CJK_SOURCE_DIR = Path("/usr/share/fonts/opentype/noto")  # Debian fonts-noto-cjk
DEFAULT_LATIN_SOURCE_DIR = Path("/usr/share/fonts/truetype/noto")  # Debian fonts-noto-core

# Which region's glyph forms to keep.  Han characters are drawn differently per region; we
# take simplified Chinese forms because GB2312 is the larger ideograph set we keep, and the
# SC face also contains every JIS X 0208 ideograph (with Chinese-style shapes).
DEFAULT_FACE = "Noto Sans CJK SC"

WEIGHTS = ("Regular", "Bold")

# Contiguous Unicode blocks kept whole (whatever of them the source font has).
BLOCKS: tuple[tuple[int, int, str], ...] = (
    (0x0020, 0x007E, "Basic Latin"),
    (0x00A0, 0x00FF, "Latin-1 Supplement"),
    (0x0100, 0x017F, "Latin Extended-A"),
    (0x0180, 0x024F, "Latin Extended-B (Romanian s/t comma etc.)"),
    (0x0300, 0x036F, "Combining Diacritical Marks"),
    (0x0370, 0x03FF, "Greek and Coptic"),
    (0x0400, 0x052F, "Cyrillic + Supplement"),
    (0x1E00, 0x1EFF, "Latin Extended Additional (Vietnamese)"),
    (0x2000, 0x206F, "General Punctuation"),
    (0x20A0, 0x20CF, "Currency Symbols"),
    (0x2100, 0x214F, "Letterlike Symbols"),
    (0x2190, 0x21FF, "Arrows"),
    (0x2200, 0x22FF, "Mathematical Operators"),
    (0x2460, 0x24FF, "Enclosed Alphanumerics"),
    (0x2500, 0x257F, "Box Drawing"),
    (0x2580, 0x259F, "Block Elements"),
    (0x25A0, 0x25FF, "Geometric Shapes"),
    (0x2600, 0x26FF, "Miscellaneous Symbols"),
    (0x2700, 0x27BF, "Dingbats"),
    (0x3000, 0x303F, "CJK Symbols and Punctuation"),
    (0x3040, 0x309F, "Hiragana"),
    (0x30A0, 0x30FF, "Katakana"),
    (0x3130, 0x318F, "Hangul Compatibility Jamo"),
    (0x31F0, 0x31FF, "Katakana Phonetic Extensions"),
    (0xFF00, 0xFFEF, "Halfwidth and Fullwidth Forms"),
)


def _double_byte_chars(codec: str, rows: range, cells: range = range(0xA1, 0xFF)) -> set[int]:
    """Code points of the two-byte characters (row, cell) that decode in an EUC-style codec."""
    found: set[int] = set()
    for row in rows:
        for cell in cells:
            try:
                text = bytes((row, cell)).decode(codec)
            except UnicodeDecodeError:
                continue
            if len(text) == 1:
                found.add(ord(text))
    return found


def gb2312_hanzi() -> set[int]:
    # Rows 0xB0-0xD7 are level 1 (3,755 common hanzi), 0xD8-0xF7 level 2 (3,008 more).
    return _double_byte_chars("gb2312", range(0xB0, 0xF8))


def jis_x_0208_kanji() -> set[int]:
    # EUC-JP rows 0xB0-0xF4 are JIS X 0208 levels 1 and 2 (6,355 kanji, all Jōyō kanji
    # included).  EUC-JP and Shift_JIS encode the same character set; EUC's row/cell layout
    # is simply easier to walk.
    return _double_byte_chars("euc_jp", range(0xB0, 0xF5))


def ks_x_1001_hangul() -> set[int]:
    # EUC-KR rows 0xB0-0xC8 hold the 2,350 precomposed Hangul syllables of KS X 1001.
    return {cp for cp in _double_byte_chars("euc_kr", range(0xB0, 0xC9)) if 0xAC00 <= cp <= 0xD7A3}


def block_code_points() -> set[int]:
    cps: set[int] = set()
    for first, last, _name in BLOCKS:
        cps.update(range(first, last + 1))
    return cps


def wanted_code_points() -> set[int]:
    return block_code_points() | gb2312_hanzi() | jis_x_0208_kanji() | ks_x_1001_hangul()


def code_point_ranges(cps: set[int]) -> list[list[int]]:
    """[[first, last], …] runs: coverage.json stays a few kB instead of a list of thousands."""
    ranges: list[list[int]] = []
    for cp in sorted(cps):
        if ranges and cp == ranges[-1][1] + 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    return ranges


def _load_face(path: Path, face: str):
    from fontTools.ttLib import TTCollection, TTFont

    if path.suffix.lower() == ".ttc":
        for font in TTCollection(str(path)).fonts:
            if font["name"].getDebugName(1) == face:
                return font
        raise SystemExit(f"error: no face named {face!r} in {path}")
    return TTFont(str(path))


def subset_one(source: Path, face: str | None, out: Path, code_points: set[int]) -> set[int]:
    """Write the subset of source to out; returns the code points it maps."""
    from fontTools import subset
    from fontTools.ttLib import TTFont

    font = _load_face(source, face) if face else TTFont(str(source))
    options = subset.Options()
    # Only the horizontal-text features a kiosk needs.  "*" would also keep 'locl', 'vert',
    # 'jp78' ... whose alternates (other regions' forms, vertical punctuation) nearly double
    # the glyph count: 23.7k glyphs / 6 MB instead of 13.7k / 3.3 MB per weight.
    options.layout_features = ["ccmp", "kern", "liga", "calt", "mark", "mkmk"]
    options.name_IDs = ["*"]  # keep copyright/licence records (OFL condition 2)
    options.name_languages = ["*"]
    options.notdef_outline = True  # a visible box for anything missing, not a blank
    options.hinting = True
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=sorted(code_points))
    subsetter.subset(font)
    font.recalcTimestamp = False  # keep head.modified from the source: reproducible output
    tmp = out.with_suffix(out.suffix + ".tmp")
    font.save(str(tmp))
    tmp.replace(out)
    return set(font.getBestCmap())


def _first_existing(candidates: list[Path], package: str) -> Path:
    for path in candidates:
        if path.exists():
            return path
    raise SystemExit(f"error: none of {', '.join(map(str, candidates))} exists "
                     f"(apt-get install {package})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cjk-source-dir", type=Path, default=DEFAULT_CJK_SOURCE_DIR,
                        help="directory holding NotoSansCJK-{Regular,Bold}.ttc (or .otf)")
    parser.add_argument("--latin-source-dir", type=Path, default=DEFAULT_LATIN_SOURCE_DIR,
                        help="directory holding NotoSans-{Regular,Bold}.ttf")
    parser.add_argument("--face", default=DEFAULT_FACE,
                        help="face inside the CJK .ttc collection (default: %(default)s)")
    parser.add_argument("--out-dir", type=Path, default=HERE)
    args = parser.parse_args(argv)

    coverage: dict[str, list[list[int]]] = {}
    for weight in WEIGHTS:
        latin_source = _first_existing([args.latin_source_dir / f"NotoSans-{weight}.ttf"],
                                       "fonts-noto-core")
        latin_out = args.out_dir / f"NotoSans-{weight}.subset.ttf"
        latin_cps = subset_one(latin_source, None, latin_out, block_code_points())
        coverage[latin_out.name] = code_point_ranges(latin_cps)
        print(f"{latin_out}: {latin_out.stat().st_size / 1e6:.2f} MB, {len(latin_cps)} chars")

        cjk_source = _first_existing(
            [args.cjk_source_dir / f"NotoSansCJK-{weight}.{ext}" for ext in ("ttc", "otf")],
            "fonts-noto-cjk")
        cjk_out = args.out_dir / f"NotoSansCJK-{weight}.subset.otf"
        cjk_cps = subset_one(cjk_source, args.face, cjk_out, wanted_code_points())
        print(f"{cjk_out}: {cjk_out.stat().st_size / 1e6:.2f} MB, {len(cjk_cps)} chars")

    coverage_path = args.out_dir / "coverage.json"
    coverage_path.write_text(json.dumps(
        {"comment": "code points of the primary (Noto Sans) fonts; written by make_subset.py",
         "fonts": coverage}, separators=(",", ":")) + "\n")
    print(f"{coverage_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
