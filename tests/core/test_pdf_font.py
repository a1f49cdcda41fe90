"""The shipped PDF font has a glyph for every Chinese character the system can print: every CJK character in
the repository's text files (templates, YAML, Python, Markdown), the scenarios' enterprise names included."""

from __future__ import annotations

from fontTools.ttLib import TTFont

from core import pdf
from tools.build_font import is_cjk, repository_characters, text_files


def test_every_cjk_character_of_the_repository_has_a_glyph_in_both_shipped_faces() -> None:
    needed = {ch: where for ch, where in repository_characters().items() if is_cjk(ch)}
    scanned = {str(p) for p in text_files()}
    assert any(p.endswith("server/scenarios/jiangxi/scenario.yaml") for p in scanned)  # enterprise names
    assert len(needed) > 500  # the letters, labels and messages are really scanned
    for face in (pdf.FONT_REGULAR, pdf.FONT_BOLD):
        cmap = TTFont(str(face)).getBestCmap()
        missing = {ch: where for ch, where in needed.items() if ord(ch) not in cmap}
        assert not missing, (
            f"{face.name} has no glyph for {''.join(sorted(missing))} (first seen in "
            f"{', '.join(sorted(set(missing.values())))}): rerun tools/build_font.py (core/fonts/README.md)"
        )


def test_the_subsets_stay_small_and_keep_gb2312() -> None:
    from tools.build_font import gb2312_characters

    for face in (pdf.FONT_REGULAR, pdf.FONT_BOLD):
        assert face.stat().st_size < 3_000_000
        cmap = TTFont(str(face)).getBestCmap()
        assert all(ord(ch) in cmap for ch in gb2312_characters() if is_cjk(ch))
