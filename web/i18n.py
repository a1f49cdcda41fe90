"""Page text in Chinese (the default) and English: one YAML catalogue per page area in web/messages/, each entry
`key: {zh: ..., en: ...}`. A key missing in a language, or defined twice, fails at start-up (and in the tests)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

LANGS = ("zh", "en")
MESSAGES = Path(__file__).with_name("messages")


@lru_cache(maxsize=1)
def catalogue() -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for path in sorted(MESSAGES.glob("*.yaml")):
        entries = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for key, texts in entries.items():
            if key in out:
                raise ValueError(f"{path.name}: message {key!r} is defined twice")
            if not isinstance(texts, dict) or any(not isinstance(texts.get(lang), str) for lang in LANGS):
                raise ValueError(f"{path.name}: message {key!r} needs a zh and an en text")
            out[key] = {lang: texts[lang] for lang in LANGS}
    return out


def translate(key: str, lang: str, **values: object) -> str:
    """The text of `key` in `lang`, with `{name}` placeholders filled. An unknown key raises: a page never shows
    a raw key to a person."""
    text = catalogue()[key][lang if lang in LANGS else "zh"]
    return text.format(**values) if values else text
