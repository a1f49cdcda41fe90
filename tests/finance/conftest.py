"""Each finance test signs with its own Ed25519 key in its temporary folder (never ./var of the checkout)."""

from __future__ import annotations

from pathlib import Path

import pytest

from finance.service import SIGNING_KEY_ENV


@pytest.fixture(autouse=True)
def signing_key_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "signing-key.pem"
    monkeypatch.setenv(SIGNING_KEY_ENV, str(path))
    return path
