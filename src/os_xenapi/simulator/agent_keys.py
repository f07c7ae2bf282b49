"""The guest agent's half of Nova's password exchange: Diffie-Hellman in the agent's fixed
group, then the AES-128-CBC decryption of the password Nova encrypted with the shared secret.

Facts, from Nova's ``SimpleDH`` (``nova/virt/xenapi/agent.py``) and the unix guest agent's
``commands/password.py``: the group is p = 162259276829213363391578010288127 with generator 5.
Nova sends ``str(5**a mod p)`` in ``keyinit``; the agent answers ``D0`` with ``str(5**b mod p)``;
the secret both then hold is the decimal text of ``5**(a*b) mod p``. Nova encrypts with
``openssl aes-128-cbc -A -a -pass pass:<secret> -nosalt`` (base64 on one line, PKCS#7 padding),
whose key and IV come from OpenSSL's ``EVP_BytesToKey`` over the secret: with MD5 before OpenSSL
1.1.0, which is also what the agent computes (key = md5(secret), iv = md5(key + secret)), and
with SHA-256 since (key and iv are the two halves of sha256(secret)). A real agent knows only
the MD5 form; this one also reads the SHA-256 form, so that Nova's code run on a current OpenSSL
can be tested, and says which one it read.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

PRIME = 162259276829213363391578010288127
GENERATOR = 5
BLOCK = 16


class PasswordError(ValueError):
    """A password the agent cannot read; the message is the agent's own answer text."""


class KeyExchange:
    """The agent's side of one Diffie-Hellman exchange."""

    def __init__(self, private: int | None = None) -> None:
        # 128 random bits, as the agent's _make_private_key.
        self._private = private if private is not None else secrets.randbits(128) | 1

    @property
    def public(self) -> int:
        return pow(GENERATOR, self._private, PRIME)

    def secret_with(self, remote_public: int) -> str:
        """The shared secret, as the text both sides give OpenSSL as a passphrase.

        Raises ValueError for a public key outside 2..p-2 (1 and p-1 would fix the secret).
        """
        if not 1 < remote_public < PRIME - 1:
            raise ValueError("the public key is not a member of the agent's group")
        return str(pow(remote_public, self._private, PRIME))


def _key_and_iv(secret: str, derivation: str) -> tuple[bytes, bytes]:
    data = secret.encode("ascii")
    if derivation == "md5":
        key = hashlib.md5(data).digest()
        return key, hashlib.md5(key + data).digest()
    digest = hashlib.sha256(data).digest()
    return digest[:BLOCK], digest[BLOCK:]


def _unpad(plain: bytes) -> bytes | None:
    count = plain[-1] if plain else 0
    if not 1 <= count <= BLOCK or plain[-count:] != bytes([count]) * count:
        return None
    return plain[:-count]


def decrypt_password(secret: str, encrypted: str) -> tuple[str, str]:
    """(password, "md5" or "sha256") from Nova's base64 ciphertext; the trailing newline Nova
    adds is dropped, as the agent drops it. Raises PasswordError with the agent's message."""
    try:
        data = base64.b64decode("".join(encrypted.split()), validate=True)
    except (binascii.Error, ValueError):
        raise PasswordError("Couldn't decode base64 data") from None
    if not data or len(data) % BLOCK:
        raise PasswordError("Invalid password data received")
    for derivation in ("md5", "sha256"):
        key, iv = _key_and_iv(secret, derivation)
        decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
        plain = _unpad(decryptor.update(data) + decryptor.finalize())
        if plain is None:
            continue
        try:
            return plain.decode("utf-8").rstrip("\n"), derivation
        except UnicodeDecodeError:
            continue
    raise PasswordError("Invalid password data received")


def encrypt_password(secret: str, password: str, derivation: str = "md5") -> str:
    """What Nova sends for ``password`` (its trailing newline included), for tests and demos
    that play Nova without OpenSSL."""
    key, iv = _key_and_iv(secret, derivation)
    data = (password + "\n").encode("utf-8")
    count = BLOCK - len(data) % BLOCK
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return base64.b64encode(encryptor.update(data + bytes([count]) * count)
                            + encryptor.finalize()).decode("ascii")
