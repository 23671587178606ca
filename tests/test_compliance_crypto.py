"""Encryption at rest (AES-256-GCM, SM4-GCM) and retention periods from the policy packs."""

from __future__ import annotations

import datetime as dt

import pytest

from intelligence.compliance import load_packs
from intelligence.compliance.retention import expires_at, is_expired, retention_for
from intelligence.crypto_at_rest import DecryptionError, EnvelopeCipher, Keyring, generate_key


@pytest.mark.parametrize("algorithm", ["aes-256-gcm", "sm4-gcm"])
def test_round_trip_and_tamper_detection(algorithm: str, shared_data) -> None:
    audio = (shared_data / "calls" / "dev" / "audio" / "dev_zh_03.stereo8k.wav").read_bytes()
    cipher = EnvelopeCipher(Keyring({"2026-11": generate_key(algorithm)}, "2026-11"), algorithm)
    blob = cipher.encrypt(audio, b"session:dev_zh_03/audio")
    assert blob[:4] == b"HKE1" and audio[:64] not in blob
    assert cipher.decrypt(blob, b"session:dev_zh_03/audio") == audio
    with pytest.raises(DecryptionError):
        cipher.decrypt(blob, b"session:other/audio")  # bound to its context
    tampered = bytearray(blob)
    tampered[-40] ^= 1
    with pytest.raises(DecryptionError):
        cipher.decrypt(bytes(tampered), b"session:dev_zh_03/audio")
    text = "这个产品保本保息，稳赚不赔"
    assert cipher.decrypt_text(cipher.encrypt_text(text)) == text


def test_key_rotation_keeps_old_blobs_readable(tmp_path) -> None:
    old, new = generate_key(), generate_key()
    sealed_old = EnvelopeCipher(Keyring({"k1": old}, "k1")).encrypt(b"transcript v1")
    rotated = EnvelopeCipher(Keyring({"k1": old, "k2": new}, "k2"))
    assert rotated.decrypt(sealed_old) == b"transcript v1"
    assert b"k2" in rotated.encrypt(b"x")[:12]
    with pytest.raises(DecryptionError, match="unknown key"):
        EnvelopeCipher(Keyring({"k2": new}, "k2")).decrypt(sealed_old)
    src, dst = tmp_path / "a.wav", tmp_path / "a.wav.enc"
    src.write_bytes(b"RIFF....")
    rotated.encrypt_file(src, dst)
    assert rotated.decrypt_file(dst) == b"RIFF...."


def test_wrong_key_size_and_garbage() -> None:
    with pytest.raises(ValueError):
        EnvelopeCipher(Keyring({"k": generate_key("sm4-gcm")}, "k"), "aes-256-gcm")
    with pytest.raises(DecryptionError):
        EnvelopeCipher(Keyring({"k": generate_key()}, "k")).decrypt(b"not an envelope")


def test_retention_takes_the_longest_period() -> None:
    packs = {p.id: p for p in load_packs()}
    zh = retention_for([packs["cn_dual_recording"], packs["pci_dss"]])
    assert zh.audio_days == 3650 and any("cn_dual_recording" in s for s in zh.sources)
    en = retention_for([packs["pci_dss"], packs["recording_notice"]])
    assert en.audio_days == 1825
    created = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert expires_at(created, 365) == dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    assert not is_expired(created, 365, dt.datetime(2026, 12, 31, tzinfo=dt.UTC))
    assert is_expired(created, 365, dt.datetime(2027, 1, 1, tzinfo=dt.UTC))
    assert not is_expired(created, None, dt.datetime(2100, 1, 1, tzinfo=dt.UTC))
