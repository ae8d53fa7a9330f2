"""The client side of the SASL mechanisms a Connector may name (``PLAIN``, ``SCRAM-SHA-256``,
``SCRAM-SHA-512``), as messages only: the Kafka requests that carry them are
``kafka_wire``'s business.

SCRAM follows RFC 5802 (with RFC 7677 for SHA-256), as Kafka's broker speaks it: no channel
binding (gs2 header ``n,,``), no authorization identity, no extensions. The password is used
as its UTF-8 bytes, without SASLprep, as Kafka's own Java client does, so that credentials
that work for the Connector's pods work here too. The server's signature is verified: a
broker that does not know the password cannot pass for one that does.

Passwords never appear in an exception's message or in a ``repr``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

PLAIN = "PLAIN"
SCRAM_HASHES = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}
MECHANISMS = (PLAIN, *SCRAM_HASHES)

MIN_ITERATIONS = 4096
"""RFC 7677's floor for the salted password's iteration count (Kafka's too): a server asking
for fewer would make the proof we send cheap to attack."""

GS2_HEADER = "n,,"  # no channel binding, no authorization identity


class SaslError(Exception):
    """The exchange cannot go on; the message says why (and never holds the password)."""


@dataclass(frozen=True)
class SaslCredentials:
    mechanism: str
    username: str
    password: str = field(repr=False)


def sasl_credentials(settings: Mapping[str, str]) -> SaslCredentials | None:
    """The SASL identity librdkafka-style ``settings`` describe; None when the security
    protocol is not a SASL one. Raises :class:`SaslError` for a mechanism this module does
    not speak (librdkafka's default, GSSAPI, included) or missing credentials."""
    protocol = settings.get("security.protocol", "PLAINTEXT").upper()
    if not protocol.startswith("SASL_"):
        return None
    mechanism = settings.get("sasl.mechanism", "GSSAPI").upper()
    if mechanism not in MECHANISMS:
        raise SaslError(
            f"sasl.mechanism {mechanism} is not spoken here (only {', '.join(MECHANISMS)})"
        )
    username, password = settings.get("sasl.username"), settings.get("sasl.password")
    if not username or password is None:
        raise SaslError(f"{mechanism} needs a username and a password (sasl.username/password)")
    return SaslCredentials(mechanism, username, password)


def plain_message(credentials: SaslCredentials) -> bytes:
    """RFC 4616's single message: authorization identity (empty), user, password."""
    return b"\0" + credentials.username.encode() + b"\0" + credentials.password.encode()


def saslname(username: str) -> str:
    """RFC 5802's escaping of a user name: ``=`` and ``,`` would end the attribute."""
    return username.replace("=", "=3D").replace(",", "=2C")


def _attributes(message: bytes, what: str) -> dict[str, str]:
    """``a=value,b=value`` → {a: value, b: value}; values may contain ``=``."""
    try:
        text = message.decode()
    except UnicodeDecodeError:
        raise SaslError(f"the {what} is not UTF-8") from None
    attributes: dict[str, str] = {}
    for part in text.split(","):
        name, equals, value = part.partition("=")
        if len(name) != 1 or not equals:
            raise SaslError(f"the {what} does not parse as SCRAM attributes")
        attributes.setdefault(name, value)
    return attributes


class ScramClient:
    """One SCRAM exchange: :meth:`first_message`, then :meth:`final_message` with the
    server's first message, then :meth:`verify` with the server's final message."""

    def __init__(self, credentials: SaslCredentials, nonce: str | None = None) -> None:
        hash_name = SCRAM_HASHES.get(credentials.mechanism)
        if hash_name is None:
            raise SaslError(f"{credentials.mechanism} is not a SCRAM mechanism")
        self._hash = hash_name
        self._credentials = credentials
        # Printable, without a comma (RFC 5802's nonce grammar): URL-safe base64.
        self._nonce = nonce or secrets.token_urlsafe(24)
        self._first_bare = f"n={saslname(credentials.username)},r={self._nonce}"
        self._server_signature: bytes | None = None

    def __repr__(self) -> str:
        return f"ScramClient({self._credentials.mechanism}, user={self._credentials.username!r})"

    def _hmac(self, key: bytes, message: bytes) -> bytes:
        return hmac.new(key, message, self._hash).digest()

    def first_message(self) -> bytes:
        return (GS2_HEADER + self._first_bare).encode()

    def final_message(self, server_first: bytes) -> bytes:
        """The client's proof, for the server's salt, iteration count and nonce."""
        attributes = _attributes(server_first, "server's first SCRAM message")
        if "m" in attributes:
            raise SaslError("the server wants a SCRAM extension this client does not know")
        if "e" in attributes:
            raise SaslError(f"the server refused: {attributes['e']}")
        nonce, salt_text, iterations_text = (attributes.get(k) for k in ("r", "s", "i"))
        if nonce is None or salt_text is None or iterations_text is None:
            raise SaslError("the server's first SCRAM message lacks its nonce, salt or count")
        if not nonce.startswith(self._nonce) or len(nonce) == len(self._nonce):
            raise SaslError("the server's SCRAM nonce does not extend the client's")
        try:
            salt = base64.b64decode(salt_text, validate=True)
            iterations = int(iterations_text)
        except ValueError:
            raise SaslError("the server's SCRAM salt or iteration count does not parse") from None
        if iterations < MIN_ITERATIONS:
            raise SaslError(
                f"the server asks for {iterations} SCRAM iterations (fewer than {MIN_ITERATIONS})"
            )
        salted = hashlib.pbkdf2_hmac(
            self._hash, self._credentials.password.encode(), salt, iterations
        )
        client_key = self._hmac(salted, b"Client Key")
        stored_key = hashlib.new(self._hash, client_key).digest()
        channel_binding = base64.b64encode(GS2_HEADER.encode()).decode()
        without_proof = f"c={channel_binding},r={nonce}"
        auth_message = f"{self._first_bare},{server_first.decode()},{without_proof}".encode()
        signature = self._hmac(stored_key, auth_message)
        proof = bytes(k ^ s for k, s in zip(client_key, signature, strict=True))
        self._server_signature = self._hmac(self._hmac(salted, b"Server Key"), auth_message)
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify(self, server_final: bytes) -> None:
        """Raises :class:`SaslError` unless the server proved it knows the password."""
        if self._server_signature is None:
            raise SaslError("the server's final SCRAM message came before its first")
        attributes = _attributes(server_final, "server's final SCRAM message")
        if "e" in attributes:
            raise SaslError(f"the server refused: {attributes['e']}")
        try:
            signature = base64.b64decode(attributes.get("v", ""), validate=True)
        except ValueError:
            signature = b""
        if not hmac.compare_digest(signature, self._server_signature):
            raise SaslError("the server's SCRAM signature is wrong (it does not know the password)")
