"""The SASL messages of kafka_sasl.py against RFC 7677's SCRAM-SHA-256 example, what a
client must refuse in a SCRAM exchange, and the SASL requests' encodings written out by
hand from Kafka's message definitions. The same code against the real broker's SASL
listener: test_share_backlog_sasl.py."""

from __future__ import annotations

import base64

import pytest

from sluice_operator.kafka_sasl import (
    SaslCredentials,
    SaslError,
    ScramClient,
    plain_message,
    sasl_credentials,
    saslname,
)
from sluice_operator.kafka_wire import (
    GroupOffsetsUnavailable,
    parse_sasl_authenticate,
    parse_sasl_handshake,
    request_header,
    sasl_authenticate_request,
    sasl_handshake_request,
)

# RFC 7677, section 3.
RFC_USER, RFC_PASSWORD, RFC_CLIENT_NONCE = "user", "pencil", "rOprNGfwEbeRWgbNEkqO"
RFC_SERVER_FIRST = (
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)
RFC_CLIENT_FINAL = (
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
RFC_SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def rfc_client() -> ScramClient:
    return ScramClient(SaslCredentials("SCRAM-SHA-256", RFC_USER, RFC_PASSWORD), RFC_CLIENT_NONCE)


def test_scram_sha_256_matches_rfc_7677() -> None:
    client = rfc_client()
    assert client.first_message() == b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
    assert client.final_message(RFC_SERVER_FIRST) == RFC_CLIENT_FINAL
    client.verify(RFC_SERVER_FINAL)  # the server knows the password: no exception


def test_a_server_signature_that_does_not_match_is_refused() -> None:
    client = rfc_client()
    client.final_message(RFC_SERVER_FIRST)
    forged = bytearray(base64.b64decode(RFC_SERVER_FINAL[2:]))
    forged[0] ^= 1
    with pytest.raises(SaslError, match="signature is wrong"):
        client.verify(b"v=" + base64.b64encode(bytes(forged)))
    for bad in (b"v=", b"v=not base64!", b"x=1", b"e=other-error"):
        with pytest.raises(SaslError):
            client.verify(bad)
    with pytest.raises(SaslError, match="before its first"):
        rfc_client().verify(RFC_SERVER_FINAL)  # no proof sent yet: nothing to compare


def test_a_weak_iteration_count_or_a_foreign_nonce_is_refused() -> None:
    weak = RFC_SERVER_FIRST.replace(b"i=4096", b"i=4095")
    with pytest.raises(SaslError, match="4095 SCRAM iterations"):
        rfc_client().final_message(weak)
    foreign = RFC_SERVER_FIRST.replace(b"r=rOprNGfwEbeRWgbNEkqO", b"r=someoneElsesNonce00")
    with pytest.raises(SaslError, match="nonce does not extend"):
        rfc_client().final_message(foreign)
    same = b"r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    with pytest.raises(SaslError, match="nonce does not extend"):
        rfc_client().final_message(same)  # the server added nothing of its own
    for bad in (
        b"r=rOprNGfwEbeRWgbNEkqOx,i=4096",  # no salt
        b"r=rOprNGfwEbeRWgbNEkqOx,s=!!,i=4096",
        b"r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=many",
        b"m=ext," + RFC_SERVER_FIRST,
        b"e=unknown-user",
        b"\xff\xfe",
        b"garbage",
    ):
        with pytest.raises(SaslError):
            rfc_client().final_message(bad)


def test_user_names_are_escaped_and_nonces_fresh() -> None:
    assert saslname("a=b,c") == "a=3Db=2Cc"
    credentials = SaslCredentials("SCRAM-SHA-512", "team=a,b", "pw")
    first = ScramClient(credentials).first_message()
    assert first.startswith(b"n,,n=team=3Da=2Cb,r=")
    nonce = first.split(b",r=")[1]
    assert len(nonce) >= 24
    assert b"," not in nonce
    assert ScramClient(credentials).first_message() != first


def test_plain_is_one_message_with_an_empty_authorization_identity() -> None:
    assert plain_message(SaslCredentials("PLAIN", "sluice", "s3cret")) == b"\0sluice\0s3cret"


def test_credentials_from_librdkafka_settings_never_show_the_password() -> None:
    assert sasl_credentials({}) is None
    assert sasl_credentials({"security.protocol": "SSL"}) is None
    settings = {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "op",
        "sasl.password": "s3cret",
    }
    credentials = sasl_credentials(settings)
    assert credentials == SaslCredentials("SCRAM-SHA-512", "op", "s3cret")
    assert "s3cret" not in repr(credentials)
    assert "s3cret" not in repr(ScramClient(credentials))
    for mechanism in ("GSSAPI", "OAUTHBEARER"):
        with pytest.raises(SaslError, match=f"{mechanism} is not spoken"):
            sasl_credentials({**settings, "sasl.mechanism": mechanism})
    with pytest.raises(SaslError, match="GSSAPI is not spoken"):  # librdkafka's default
        sasl_credentials({"security.protocol": "SASL_PLAINTEXT"})
    with pytest.raises(SaslError, match="needs a username and a password") as caught:
        sasl_credentials({**settings, "sasl.username": ""})
    assert "s3cret" not in str(caught.value)


def int16(value: int) -> bytes:
    return value.to_bytes(2, "big", signed=True)


def int32(value: int) -> bytes:
    return value.to_bytes(4, "big", signed=True)


def test_sasl_requests_before_flexible_versions_use_header_1_and_old_lengths() -> None:
    header = request_header(17, 1, 7, flexible=False)
    assert header == int16(17) + int16(1) + int32(7) + int16(15) + b"sluice-operator"
    assert sasl_handshake_request("PLAIN") == int16(5) + b"PLAIN"
    assert sasl_authenticate_request(1, b"\0u\0p") == int32(4) + b"\0u\0p"
    assert sasl_authenticate_request(2, b"\0u\0p") == b"\x05\0u\0p" + b"\x00"


def test_sasl_answers() -> None:
    parse_sasl_handshake(int16(0) + int32(1) + int16(5) + b"PLAIN", "PLAIN")
    offered = int16(33) + int32(2) + int16(5) + b"PLAIN" + int16(13) + b"SCRAM-SHA-256"
    with pytest.raises(
        GroupOffsetsUnavailable,
        match=r"UNSUPPORTED_SASL_MECHANISM \(the broker offers PLAIN, SCRAM-SHA-256\)",
    ):
        parse_sasl_handshake(offered, "SCRAM-SHA-512")
    # Version 1: error, message (int16 length), bytes (int32 length), session lifetime.
    answer_v1 = int16(0) + int16(-1) + int32(3) + b"r=x" + (0).to_bytes(8, "big")
    assert parse_sasl_authenticate(answer_v1, 1, "op") == b"r=x"
    # Version 2: compact lengths, tagged fields.
    answer_v2 = int16(0) + b"\x00" + b"\x04r=x" + (0).to_bytes(8, "big") + b"\x00"
    assert parse_sasl_authenticate(answer_v2, 2, "op") == b"r=x"
    refused = int16(58) + b"\x07denied" + b"\x01" + (0).to_bytes(8, "big") + b"\x00"
    with pytest.raises(
        GroupOffsetsUnavailable,
        match=r"as op failed: SASL_AUTHENTICATION_FAILED \(denied\)",
    ):
        parse_sasl_authenticate(refused, 2, "op")


def test_a_password_a_peer_echoes_is_taken_out_of_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sluice_operator import kafka_wire, share_group_offsets

    def echoing(*_: object) -> None:
        raise GroupOffsetsUnavailable("no bootstrap server answered (b:1: bad password s3cret)")

    monkeypatch.setattr(kafka_wire, "_ask", echoing)
    settings = {"security.protocol": "SASL_PLAINTEXT", "sasl.password": "s3cret"}
    with pytest.raises(GroupOffsetsUnavailable) as caught:
        share_group_offsets.describe_share_group_offsets(["b:1"], settings, "g", {}, 1.0)
    assert str(caught.value) == "no bootstrap server answered (b:1: bad password <password>)"
