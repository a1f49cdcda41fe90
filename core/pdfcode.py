"""Verification codes of documents (re-exported by core.pdf, where documents use them).

`verification_code` derives the short code printed on a document from a hash of the record it states, so
`/verify/{code}` can show a reader the record the document was made from. It is a hash, not a signature: it
proves that a printed code matches a stored record, not who issued the document.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Mapping

from reportlab.graphics.barcode.qr import QrCodeWidget
from reportlab.graphics.shapes import Drawing

from core.settings import get_settings

_CODE_BYTES = 10  # 80 bits: 16 base32 characters with no padding.
_CODE_CHARS = _CODE_BYTES * 8 // 5
_CODE_GROUP = 4
_CODE_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
# Base32 leaves out 0, 1 and 8 because they look like O, I and B; a reader who types them meant those.
_CODE_LOOKALIKES = str.maketrans({"0": "O", "1": "I", "8": "B"})


def _check_canonical(value: object, where: str) -> None:
    """Refuse what has no single JSON spelling, so the same record always hashes the same way."""
    if value is None or isinstance(value, (str, bool, int)):
        return
    if isinstance(value, float):
        # Amounts are integers of a base unit; a float here is a bug, and its text differs between languages.
        raise TypeError(f"{where}: floats have no canonical form here; use an integer of a base unit or a string")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                # json.dumps would turn 1 into "1" and let two different records collide.
                raise TypeError(f"{where}: keys must be str, got {type(key).__name__}")
            _check_canonical(item, f"{where}.{key}")
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_canonical(item, f"{where}[{index}]")
        return
    raise TypeError(
        f"{where}: {type(value).__name__} has no canonical JSON form; convert it first "
        "(dates and instants to ISO 8601 strings, Decimal to a string)"
    )


def canonical_json(record: Mapping[str, object]) -> bytes:
    """The record as canonical JSON: sorted keys, no whitespace, UTF-8 text rather than \\u escapes."""
    _check_canonical(record, "record")
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def qr_drawing(url: str, side: float) -> Drawing:
    """A square QR code of `url` (error correction M), `side` points wide, for a reader's phone camera."""
    widget = QrCodeWidget(url, barLevel="M")
    x0, y0, x1, y1 = widget.getBounds()
    drawing = Drawing(side, side, transform=[side / (x1 - x0), 0, 0, side / (y1 - y0), -x0, -y0])
    drawing.add(widget)
    return drawing


def verify_url(code: str) -> str:
    """The public page where anyone checks a document's code (setting `public_base_url`)."""
    return f"{get_settings().public_base_url.rstrip('/')}/verify/{code}"


def verification_code(record: Mapping[str, object]) -> str:
    """A 16-character code such as "K7QX-2M4B-ZP3D-6R6T": base32 of the first 80 bits of the record's SHA-256.

    The record holds only JSON values (str, int, bool, None, lists, str-keyed mappings). The code is a hash,
    not a signature: anyone with the record can compute it, so it shows that a document matches a stored
    record, and the authority of the record comes from the registry that answers `/verify/{code}`.
    """
    digest = hashlib.sha256(canonical_json(record)).digest()
    text = base64.b32encode(digest[:_CODE_BYTES]).decode("ascii")
    return "-".join(text[i : i + _CODE_GROUP] for i in range(0, len(text), _CODE_GROUP))


def normalize_verification_code(text: str) -> str | None:
    """A code as a reader typed it ("k7qx 2m4b-zp3d9r6t") in printed form, or None if it cannot be one."""
    compact = re.sub(r"[\s\-]", "", text).upper().translate(_CODE_LOOKALIKES)
    if len(compact) != _CODE_CHARS or not set(compact) <= _CODE_ALPHABET:
        return None
    return "-".join(compact[i : i + _CODE_GROUP] for i in range(0, len(compact), _CODE_GROUP))


def verification_code_matches(record: Mapping[str, object], code: str) -> bool:
    """Whether `code` (as typed by a reader) is the verification code of `record`."""
    normalized = normalize_verification_code(code)
    return normalized is not None and hmac.compare_digest(normalized, verification_code(record))
