"""Encryption at rest for stored audio and transcripts: AES-256-GCM by default, SM4-GCM for Chinese deployments.

Envelope format (all integers big-endian):

    b"HKE1" | algorithm id (1 byte) | key id length (1 byte) | key id (UTF-8) | nonce (12 bytes) | ciphertext+tag

The key id in the header lets keys rotate: old blobs still name the key they were sealed with. The caller
may bind a blob to its context (e.g. ``b"session:<id>/audio"``) as associated data, so a blob copied to
another record fails to decrypt. Keys come from the deployment (a KMS, an env var); nothing here stores them.
SM4 uses `cryptography`'s SM4 with GCM (OpenSSL 1.1.1+); `gmssl` offers the same cipher for other tooling.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"HKE1"
NONCE_BYTES = 12
TAG_BYTES = 16
ALGORITHMS = {"aes-256-gcm": 1, "sm4-gcm": 2}
_ALGORITHM_NAMES = {v: k for k, v in ALGORITHMS.items()}
_KEY_BYTES = {"aes-256-gcm": 32, "sm4-gcm": 16}


class DecryptionError(ValueError):
    """The blob is not an envelope, names an unknown key, or failed authentication (tampered / wrong key)."""


def generate_key(algorithm: str = "aes-256-gcm") -> bytes:
    """A fresh random key of the right size for `algorithm`."""
    return os.urandom(_KEY_BYTES[algorithm])


@dataclass(frozen=True)
class Keyring:
    """Keys by id; new data is sealed with `active`. Old keys stay to open old blobs."""

    keys: Mapping[str, bytes]
    active: str

    def __post_init__(self) -> None:
        if self.active not in self.keys:
            raise ValueError(f"active key {self.active!r} is not in the keyring")
        for kid in self.keys:
            if not kid or len(kid.encode()) > 255:
                raise ValueError("key ids must be 1-255 bytes")

    @staticmethod
    def from_b64(keys: Mapping[str, str], active: str) -> Keyring:
        """Build from base64 strings (e.g. read from a secret store or environment)."""
        return Keyring({k: base64.b64decode(v) for k, v in keys.items()}, active)


class EnvelopeCipher:
    """Seals and opens byte strings and files with a keyring and one algorithm for new data."""

    def __init__(self, keyring: Keyring, algorithm: str = "aes-256-gcm") -> None:
        if algorithm not in ALGORITHMS:
            raise ValueError(f"unknown algorithm {algorithm!r}; expected one of {', '.join(ALGORITHMS)}")
        size = len(keyring.keys[keyring.active])
        if size != _KEY_BYTES[algorithm]:
            raise ValueError(f"{algorithm} needs a {_KEY_BYTES[algorithm]}-byte key, active key has {size}")
        self.keyring = keyring
        self.algorithm = algorithm

    def encrypt(self, plaintext: bytes, associated_data: bytes = b"") -> bytes:
        kid = self.keyring.active.encode()
        nonce = os.urandom(NONCE_BYTES)
        body = _seal(self.algorithm, self.keyring.keys[self.keyring.active], nonce, plaintext, associated_data)
        return MAGIC + bytes([ALGORITHMS[self.algorithm], len(kid)]) + kid + nonce + body

    def decrypt(self, blob: bytes, associated_data: bytes = b"") -> bytes:
        if len(blob) < len(MAGIC) + 2 or blob[:4] != MAGIC:
            raise DecryptionError("not an encrypted envelope")
        alg = _ALGORITHM_NAMES.get(blob[4])
        if alg is None:
            raise DecryptionError(f"unknown algorithm id {blob[4]}")
        klen = blob[5]
        kid = blob[6 : 6 + klen].decode("utf-8", errors="replace")
        if kid not in self.keyring.keys:
            raise DecryptionError(f"unknown key id {kid!r}")
        start = 6 + klen
        nonce, body = blob[start : start + NONCE_BYTES], blob[start + NONCE_BYTES :]
        if len(nonce) != NONCE_BYTES or len(body) < TAG_BYTES:
            raise DecryptionError("truncated envelope")
        try:
            return _open(alg, self.keyring.keys[kid], nonce, body, associated_data)
        except InvalidTag as exc:
            raise DecryptionError("authentication failed (tampered data, wrong key or wrong context)") from exc

    def encrypt_text(self, text: str, *, associated_data: bytes = b"") -> bytes:
        return self.encrypt(text.encode("utf-8"), associated_data=associated_data)

    def decrypt_text(self, blob: bytes, *, associated_data: bytes = b"") -> str:
        return self.decrypt(blob, associated_data=associated_data).decode("utf-8")

    def encrypt_file(self, src: str | Path, dst: str | Path, *, associated_data: bytes = b"") -> None:
        """Encrypt a whole file (audio files are small enough to seal in one piece)."""
        data = Path(src).read_bytes()
        tmp = Path(f"{dst}.tmp")
        tmp.write_bytes(self.encrypt(data, associated_data=associated_data))
        os.replace(tmp, dst)

    def decrypt_file(self, src: str | Path, *, associated_data: bytes = b"") -> bytes:
        return self.decrypt(Path(src).read_bytes(), associated_data=associated_data)


def _seal(alg: str, key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    if alg == "aes-256-gcm":
        return AESGCM(key).encrypt(nonce, plaintext, aad or None)
    enc = Cipher(algorithms.SM4(key), modes.GCM(nonce)).encryptor()
    if aad:
        enc.authenticate_additional_data(aad)
    ct = enc.update(plaintext) + enc.finalize()
    return ct + enc.tag


def _open(alg: str, key: bytes, nonce: bytes, body: bytes, aad: bytes) -> bytes:
    if alg == "aes-256-gcm":
        return AESGCM(key).decrypt(nonce, body, aad or None)
    ct, tag = body[:-TAG_BYTES], body[-TAG_BYTES:]
    dec = Cipher(algorithms.SM4(key), modes.GCM(nonce, tag)).decryptor()
    if aad:
        dec.authenticate_additional_data(aad)
    return dec.update(ct) + dec.finalize()
