"""Build the PDF fonts shipped in core/fonts/: subsets of Noto Sans SC (SIL OFL 1.1) with TrueType outlines.

    python tools/build_font.py SOURCE_DIR

SOURCE_DIR is the unpacked npm package @expo-google-fonts/noto-sans-sc 0.4.3 (`npm pack` it, then
`tar xzf expo-google-fonts-noto-sans-sc-0.4.3.tgz`, which gives `package/`): it carries the Google Fonts API
files `400Regular/NotoSansSC_400Regular.ttf`, `700Bold/NotoSansSC_700Bold.ttf` (glyf outlines, which reportlab
needs; the CFF fonts of Noto CJK it cannot read) and `LICENSE_FONT` (the OFL). The script writes
`core/fonts/NotoSansSC-Regular.ttf`, `core/fonts/NotoSansSC-Bold.ttf`, `core/fonts/OFL.txt` and
`core/fonts/README.md` (sources, sha256 of inputs and outputs, the command, the character set).

The character set (`wanted_characters`): ASCII, Latin-1, General Punctuation, CJK Symbols and Punctuation,
the halfwidth and fullwidth forms, the 6,763 hanzi and 682 symbols of GB 2312 (Python's own `gb2312` codec
enumerates them; no package on PyPI carries the 8,105 characters of 通用规范汉字表 with a clear source), plus
every non-ASCII character that appears in the repository's text files (`repository_characters`: templates,
YAML, Python, Markdown, the scenarios' enterprise names), so nothing the system prints is missing.
tests/core/test_pdf_font.py fails, naming the characters, when a text change needs a glyph the shipped font
lacks: rerun this script then.

The subsetter keeps glyph names and the cmap of every kept character, drops hinting (the PDFs are printed or
viewed zoomed; hinting only matters for screen rasterising at small sizes) and keeps the name table, so the
copyright and licence notices stay inside each font file.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "core" / "fonts"
SOURCE_PACKAGE = "@expo-google-fonts/noto-sans-sc 0.4.3 (npm)"
SOURCES = {
    "NotoSansSC-Regular.ttf": "400Regular/NotoSansSC_400Regular.ttf",
    "NotoSansSC-Bold.ttf": "700Bold/NotoSansSC_700Bold.ttf",
}
LICENSE_SOURCE = "LICENSE_FONT"

# The repository's text files whose characters the fonts must cover (git-tracked files with these endings).
TEXT_SUFFIXES = frozenset({".py", ".md", ".yaml", ".yml", ".html", ".txt", ".toml", ".json", ".csv", ".sql"})
# The fonts and their description, and vendored third-party bundles (web/static), are not text the system prints.
SKIP_PARTS = frozenset({"fonts", "static"})

BLOCKS: tuple[tuple[str, int, int], ...] = (
    ("ASCII", 0x20, 0x7E),
    ("Latin-1 Supplement", 0xA0, 0xFF),
    ("General Punctuation", 0x2000, 0x206F),
    ("CJK Symbols and Punctuation", 0x3000, 0x303F),
    ("Halfwidth and Fullwidth Forms", 0xFF00, 0xFFEF),
)


def gb2312_characters() -> set[str]:
    """Every character of GB 2312 (rows 1-9 symbols, 16-87 hanzi), enumerated through Python's codec."""
    chars: set[str] = set()
    for row in range(0xA1, 0xF8):
        for cell in range(0xA1, 0xFF):
            try:
                chars.add(bytes([row, cell]).decode("gb2312"))
            except UnicodeDecodeError:
                continue
    return chars


def text_files(repo: Path = REPO) -> Iterator[Path]:
    """The git-tracked text files of the repository (see TEXT_SUFFIXES)."""
    listed = subprocess.run(  # noqa: S603 - a fixed command on the repository's own path
        ["git", "-C", str(repo), "ls-files", "-z"],  # noqa: S607 - git from PATH, as a developer runs it
        check=True,
        capture_output=True,
    ).stdout.decode("utf-8")
    for name in sorted(filter(None, listed.split("\0"))):
        path = repo / name
        skipped = SKIP_PARTS & set(path.parts[len(repo.parts) : -1])
        if path.suffix.lower() in TEXT_SUFFIXES and not skipped and path.is_file():
            yield path


def repository_characters(repo: Path = REPO) -> dict[str, str]:
    """Every non-ASCII character of the repository's text files, each with the first file it appears in."""
    found: dict[str, str] = {}
    for path in text_files(repo):
        try:
            text = path.read_text("utf-8")
        except UnicodeDecodeError:
            continue
        for ch in text:
            if ord(ch) > 0x7E and ch not in found and ch.isprintable():
                found[ch] = str(path.relative_to(repo))
    return found


def wanted_characters(repo: Path = REPO) -> set[str]:
    chars = {chr(c) for _, lo, hi in BLOCKS for c in range(lo, hi + 1)}
    return chars | gb2312_characters() | set(repository_characters(repo))


def is_cjk(ch: str) -> bool:
    """A character a Chinese document prints with the CJK font: ideographs, CJK punctuation, fullwidth forms."""
    c = ord(ch)
    return (
        0x3000 <= c <= 0x303F
        or 0x3400 <= c <= 0x4DBF
        or 0x4E00 <= c <= 0x9FFF
        or 0xF900 <= c <= 0xFAFF
        or 0xFF00 <= c <= 0xFFEF
        or 0x20000 <= c <= 0x2FA1F
    )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build(source_dir: Path, out: Path = OUT) -> dict[str, object]:
    from fontTools import subset  # noqa: PLC0415 - a dev-only dependency, needed only when building
    from fontTools.ttLib import TTFont  # noqa: PLC0415

    out.mkdir(parents=True, exist_ok=True)
    wanted = wanted_characters()
    report: dict[str, object] = {"wanted": len(wanted)}
    missing_from_source: set[str] = set()
    for target, relative in SOURCES.items():
        src = source_dir / relative
        font = TTFont(str(src))
        cmap = font.getBestCmap()
        present = sorted(ord(ch) for ch in wanted if ord(ch) in cmap)
        missing_from_source |= {ch for ch in wanted if ord(ch) not in cmap}
        options = subset.Options()
        options.glyph_names = True
        options.name_IDs = ["*"]
        options.name_languages = ["*"]
        options.notdef_outline = True
        options.hinting = False
        options.layout_features = ["*"]
        options.recalc_timestamp = False
        subsetter = subset.Subsetter(options)
        subsetter.populate(unicodes=present)
        subsetter.subset(font)
        dest = out / target
        font.save(str(dest))
        report[target] = {"source": relative, "source_sha256": _sha256(src), "sha256": _sha256(dest),
                          "bytes": dest.stat().st_size, "characters": len(present)}  # fmt: skip
    licence = (source_dir / LICENSE_SOURCE).read_text("utf-8")
    (out / "OFL.txt").write_text(licence, "utf-8")
    report["license_sha256"] = _sha256(source_dir / LICENSE_SOURCE)
    cjk_missing = sorted(ch for ch in missing_from_source & set(repository_characters()) if is_cjk(ch))
    report["missing_from_source"] = "".join(sorted(missing_from_source))
    if cjk_missing:
        raise SystemExit(f"Noto Sans SC has no glyph for {''.join(cjk_missing)!r}: change the text instead")
    _write_readme(out, report, wanted)
    return report


def _write_readme(out: Path, report: dict[str, object], wanted: set[str]) -> None:
    rows = []
    for target in SOURCES:
        r = report[target]
        assert isinstance(r, dict)
        rows.append(
            f"| `{target}` | `{r['source']}` | `{r['source_sha256']}` | `{r['sha256']}` | {r['bytes']:,} "
            f"| {r['characters']:,} |"
        )
    absent = set(str(report["missing_from_source"]))
    in_blocks = {chr(c) for _, lo, hi in BLOCKS for c in range(lo, hi + 1)}
    repo_extra = sorted(set(repository_characters()) - gb2312_characters() - in_blocks - absent)
    covered = sorted(ord(ch) for ch in wanted if ch not in absent)
    text = f"""# The PDF fonts

Subsets of **Noto Sans SC** (Google Fonts; Copyright 2014-2021 Adobe, with Reserved Font Name 'Source'),
licensed under the **SIL Open Font License 1.1** (`OFL.txt` beside this file, copied from the source package's
`LICENSE_FONT`, sha256 `{report["license_sha256"]}`). The subsets keep the family name "Noto Sans SC", which
is not a Reserved Font Name; each file's name table still carries the copyright and licence notices. The OFL
lets them be used, embedded in PDFs and redistributed with this software; they may not be sold by themselves.

Source: the npm package {SOURCE_PACKAGE}, which carries the Google Fonts API files (TrueType `glyf` outlines:
reportlab cannot read the CFF outlines of Noto Sans CJK).

| output | source file in the package | source sha256 | output sha256 | bytes | characters |
| --- | --- | --- | --- | ---: | ---: |
{chr(10).join(rows)}

Built with fontTools 4.68.0 (dev extra) by

    npm pack @expo-google-fonts/noto-sans-sc@0.4.3 && tar xzf expo-google-fonts-noto-sans-sc-0.4.3.tgz
    python tools/build_font.py package

Character set ({len(covered):,} characters): ASCII, Latin-1 Supplement, General Punctuation, CJK Symbols and
Punctuation, Halfwidth and Fullwidth Forms, all of GB 2312 (6,763 hanzi and its symbols, enumerated by Python's
`gb2312` codec), and every other character that the repository's text files contain (`tools/build_font.py`
lists which files), of which these are outside the sets above:

    {"".join(repo_extra)}

Characters the source font has no glyph for are left out (they are not Chinese; see `is_cjk` in the script).
`tests/core/test_pdf_font.py` fails, naming the characters, when the repository's text needs a character these
files lack: rerun the command above and commit the new files.
"""
    (out / "README.md").write_text(text, "utf-8")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    report = build(Path(argv[0]))
    for target in SOURCES:
        print(target, report[target])
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
