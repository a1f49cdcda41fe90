"""The installation's Ed25519 signing key, kept in one PEM file that every process shares and that is not in the
database: it signs green-credit answers (banks check them against the public key at `/verify/public-key`) and the
audit chain's checkpoints (`core.audit`), so someone who can write the database still cannot forge either.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import threading
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

SIGNING_KEY_ENV = "GREENRIGHTS_SIGNING_KEY_PATH"
DEFAULT_SIGNING_KEY_PATH = Path("var") / "signing-key.pem"


class Signer:
    """The Ed25519 signing key.

    The private key is read from `GREENRIGHTS_SIGNING_KEY_PATH` (PEM, PKCS#8), or generated on first use into
    `./var/signing-key.pem` with mode 0600. Generation writes a temporary file and links it into place, which
    fails if another process got there first; the loser then reads the winner's key, so two processes never
    sign with different keys.
    """

    def __init__(self, path: Path | None = None) -> None:
        self._path = path
        self._key: Ed25519PrivateKey | None = None
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        if self._path is not None:
            return self._path
        configured = os.environ.get(SIGNING_KEY_ENV, "").strip()
        return Path(configured) if configured else DEFAULT_SIGNING_KEY_PATH

    def key(self) -> Ed25519PrivateKey:
        with self._lock:
            if self._key is None:
                self._key = self._load_or_create(self.path)
            return self._key

    @staticmethod
    def _load(path: Path) -> Ed25519PrivateKey:
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(loaded, Ed25519PrivateKey):
            raise RuntimeError(f"{path} holds a {type(loaded).__name__}, not an Ed25519 private key")
        return loaded

    def _load_or_create(self, path: Path) -> Ed25519PrivateKey:
        if path.exists():
            return self._load(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                return self._load(path)
        finally:
            tmp.unlink(missing_ok=True)
        return key

    def public_key(self) -> Ed25519PublicKey:
        return self.key().public_key()

    def public_raw(self) -> bytes:
        return self.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def public_pem(self) -> str:
        return (
            self.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode("ascii")
        )

    def key_id(self) -> str:
        """The first 16 hex digits of the SHA-256 of the raw public key: names the key in every signature."""
        return hashlib.sha256(self.public_raw()).hexdigest()[:16]

    def sign(self, data: bytes) -> str:
        return base64.b64encode(self.key().sign(data)).decode("ascii")
