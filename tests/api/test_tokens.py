"""End-user token verification (:mod:`pdp.api.tokens`), read as a specification.

Every attack on the list must end in a :class:`TokenError` with the right code and
a message that does not repeat the token; every key type must verify with its own
algorithm and no other; a remote JWKS rotates, is rate-limited and survives its
identity provider going down; ``pdp token mint`` round-trips.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import stat
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from pdp.api import tokens
from pdp.api.tokens import (
    TOKEN_AUDIENCE,
    TOKEN_EXPIRED,
    TOKEN_INVALID,
    TOKEN_ISSUER,
    TOKEN_NOT_YET_VALID,
    TOKEN_SIGNATURE,
    UNKNOWN_KEY,
    DevModeRequired,
    TokenError,
    TokenSettings,
    TokenVerifier,
    mint_dev_token,
)
from pdp.cli.token import token as token_cli
from pdp.config import ConfigError

NOW = 1_700_000_000
SECRET = "correct horse battery staple, long enough"      # ≥ 32 bytes
OTHER_SECRET = "another secret that is also long enough!"


# --------------------------------------------------------------------------- keys

@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def rsa_key2():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key():
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def ec384_key():
    return ec.generate_private_key(ec.SECP384R1())


@pytest.fixture(scope="module")
def ed_key():
    return ed25519.Ed25519PrivateKey.generate()


def public_jwk(private, kid=None, alg=None):
    """The public JWK of a cryptography private key (or an oct JWK of a secret)."""
    if isinstance(private, (str, bytes)):
        jwk = jwt.algorithms.HMACAlgorithm.to_jwk(private, as_dict=True)
    elif isinstance(private, rsa.RSAPrivateKey):
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    elif isinstance(private, ec.EllipticCurvePrivateKey):
        jwk = jwt.algorithms.ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    else:
        jwk = jwt.algorithms.OKPAlgorithm.to_jwk(private.public_key(), as_dict=True)
    if kid is not None:
        jwk["kid"] = kid
    if alg is not None:
        jwk["alg"] = alg
    return jwk


def pem(private) -> bytes:
    return private.public_key().public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)


def claims(**overrides):
    """Valid claims at NOW; ``name=DROP`` removes one."""
    base = {"sub": "alice", "exp": NOW + 600, "iat": NOW - 10, "roles": ["editor"]}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not DROP}


DROP = object()


def sign(key, alg="HS256", kid=None, **claim_overrides):
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(claims(**claim_overrides), key, algorithm=alg, headers=headers)


def b64(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict, payload, secret: bytes | str | None = SECRET, hash_=hashlib.sha256) -> str:
    """A token with exactly this header and payload (a dict or raw JSON text),
    HMAC-signed with ``secret`` (or with an empty signature when ``None``)."""
    body = payload if isinstance(payload, (str, bytes)) else json.dumps(payload)
    signing_input = f"{b64(json.dumps(header))}.{b64(body)}"
    if secret is None:
        return signing_input + "."
    key = secret.encode() if isinstance(secret, str) else secret
    return f"{signing_input}.{b64(hmac.new(key, signing_input.encode(), hash_).digest())}"


def verifier(**kwargs) -> TokenVerifier:
    kwargs.setdefault("clock", lambda: NOW)
    return TokenVerifier(**kwargs)


def refused(v: TokenVerifier, token, code: str) -> TokenError:
    """``token`` is refused with ``code``; the message repeats neither the token nor
    its signature."""
    with pytest.raises(TokenError) as info:
        v.verify(token)
    err = info.value
    assert err.code == code, f"expected {code}, got {err.code}: {err.message}"
    if isinstance(token, str) and len(token) > 8:
        assert token not in err.message
        for part in token.split("."):
            if len(part) >= 8:
                assert part not in err.message
    assert err.to_dict()["code"] == code
    return err


# --------------------------------------------------------------------------- alg none

@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE", " none"])
def test_alg_none_is_never_accepted(alg, rsa_key):
    v = verifier(hs_secret=SECRET, keys=[public_jwk(rsa_key, kid="r1")])
    payload = claims()
    for token in (forge({"alg": alg, "typ": "JWT"}, payload, secret=None),
                  forge({"alg": alg, "kid": "r1"}, payload, secret=None),
                  forge({"alg": alg}, payload, secret=SECRET)):
        refused(v, token, TOKEN_INVALID)


def test_none_cannot_be_allowed_by_configuration():
    for algs in (["none"], ["HS256", "None"], "HS256,NONE"):
        with pytest.raises(ConfigError):
            verifier(hs_secret=SECRET, algorithms=algs)
    with pytest.raises(ConfigError):
        TokenVerifier.from_env({"PDP_JWT_HS_SECRET": SECRET, "PDP_JWT_ALGORITHMS": "none"})


def test_missing_or_odd_alg_is_invalid():
    v = verifier(hs_secret=SECRET)
    for header in ({}, {"alg": ""}, {"alg": 5}, {"alg": None}, {"alg": ["HS256"]},
                   {"alg": "hs256"}, {"alg": "ES521"}, {"alg": "RSA-OAEP"}):
        refused(v, forge(header, claims()), TOKEN_INVALID)


# --------------------------------------------------------------------------- key confusion

@pytest.fixture
def pem_file(tmp_path):
    def write(private, name="key.pem"):
        path = tmp_path / name
        path.write_bytes(pem(private))
        return str(path)
    return write


def test_hs_rs_confusion_fails(rsa_key, pem_file):
    """An HS256 token whose HMAC secret is the RSA public key PEM must not verify,
    whether the key comes from a PEM file, a kid-less or a kid'd JWK."""
    public_pem = pem(rsa_key)
    for v, kid in ((verifier(jwks=[pem_file(rsa_key)]), None),
                   (verifier(keys=[public_jwk(rsa_key)]), None),
                   (verifier(keys=[public_jwk(rsa_key, kid="r1")]), "r1"),
                   (verifier(keys=[public_jwk(rsa_key, kid="r1", alg="RS256")]), "r1")):
        header = {"alg": "HS256", "typ": "JWT", **({"kid": kid} if kid else {})}
        for secret in (public_pem, public_pem.strip(), public_pem.decode().replace("\n", "\r\n")):
            refused(v, forge(header, claims(), secret=secret), TOKEN_INVALID)
        # and the key still verifies what it should
        assert v.verify(sign(rsa_key, "RS256", kid=kid))["sub"] == "alice"


def test_hs_ec_confusion_fails(ec_key, pem_file):
    public_pem = pem(ec_key)
    for v, kid in ((verifier(jwks=[pem_file(ec_key)]), None),
                   (verifier(keys=[public_jwk(ec_key, kid="e1")]), "e1")):
        header = {"alg": "HS256", **({"kid": kid} if kid else {})}
        refused(v, forge(header, claims(), secret=public_pem), TOKEN_INVALID)
        assert v.verify(sign(ec_key, "ES256", kid=kid))["sub"] == "alice"


def test_a_public_key_is_refused_as_an_hmac_secret(rsa_key):
    with pytest.raises(ConfigError):
        verifier(hs_secret=pem(rsa_key).decode())


def test_jwk_whose_alg_does_not_fit_its_type_is_refused(rsa_key, ec_key):
    for jwk in (public_jwk(rsa_key, kid="x", alg="HS256"), public_jwk(ec_key, kid="x", alg="HS256"),
                public_jwk(ec_key, kid="x", alg="RS256"), public_jwk(ec_key, kid="x", alg="ES384"),
                public_jwk(SECRET, kid="x", alg="RS256"), public_jwk(rsa_key, kid="x", alg="none")):
        with pytest.raises(ConfigError):
            verifier(keys=[jwk])


def test_token_alg_must_match_the_key_alg(rsa_key):
    v = verifier(keys=[public_jwk(rsa_key, kid="r1", alg="RS256")])
    # properly signed with the same RSA key, but with another RSA algorithm
    for alg in ("RS512", "PS256"):
        refused(v, sign(rsa_key, alg, kid="r1"), TOKEN_INVALID)
    # a kid-less RSA key is bound to RS256 unless the allow-list names others of its family
    v = verifier(keys=[public_jwk(rsa_key)])
    refused(v, sign(rsa_key, "PS256"), TOKEN_INVALID)
    v = verifier(keys=[public_jwk(rsa_key)], algorithms="RS256,PS256")
    assert v.verify(sign(rsa_key, "PS256"))["sub"] == "alice"
    assert v.verify(sign(rsa_key, "RS256"))["sub"] == "alice"
    refused(v, sign(rsa_key, "RS384"), TOKEN_INVALID)


def test_allow_list_refuses_other_algorithms(rsa_key):
    jwks = {"keys": [public_jwk(SECRET, kid="h1"), public_jwk(SECRET, kid="h2", alg="HS256"),
                     public_jwk(rsa_key, kid="r1", alg="RS256")]}
    v = verifier(keys=[jwks], algorithms=["RS256"])
    refused(v, sign(SECRET), TOKEN_INVALID)
    refused(v, sign(SECRET, kid="h1"), TOKEN_INVALID)
    assert v.verify(sign(rsa_key, "RS256", kid="r1"))
    # a secret that the allow-list leaves no algorithm for is a configuration error
    with pytest.raises(ConfigError):
        verifier(hs_secret=SECRET, algorithms=["RS256"])


# --------------------------------------------------------------------------- tampering

@pytest.fixture
def all_keys(rsa_key, ec_key, ed_key):
    """One key of each family, with kids, and matching signing keys."""
    jwks = {"keys": [public_jwk(SECRET, kid="h1", alg="HS256"),
                     public_jwk(rsa_key, kid="r1", alg="RS256"),
                     public_jwk(ec_key, kid="e1"),
                     public_jwk(ed_key, kid="d1")]}
    signers = {"h1": (SECRET, "HS256"), "r1": (rsa_key, "RS256"),
               "e1": (ec_key, "ES256"), "d1": (ed_key, "EdDSA")}
    return jwks, signers


@pytest.mark.parametrize("kid", ["h1", "r1", "e1", "d1"])
def test_tampered_payload_fails_the_signature(all_keys, kid):
    jwks, signers = all_keys
    v = verifier(keys=[jwks])
    key, alg = signers[kid]
    token = sign(key, alg, kid=kid)
    assert v.verify(token)["sub"] == "alice"
    head, _, sig = token.split(".")
    for payload in (claims(sub="mallory"), claims(roles=["admin"]), claims(exp=NOW + 10**6)):
        refused(v, f"{head}.{b64(json.dumps(payload))}.{sig}", TOKEN_SIGNATURE)
    refused(v, f"{head}.{token.split('.')[1]}.{b64(b'x' * 64)}", TOKEN_SIGNATURE)


def test_tampered_header_kid_swap(rsa_key, rsa_key2):
    v = verifier(keys=[{"keys": [public_jwk(rsa_key, kid="a", alg="RS256"),
                                 public_jwk(rsa_key2, kid="b", alg="RS256")]}])
    token = sign(rsa_key, "RS256", kid="a")
    assert v.verify(token)
    _, payload, sig = token.split(".")
    swapped = f"{b64(json.dumps({'alg': 'RS256', 'typ': 'JWT', 'kid': 'b'}))}.{payload}.{sig}"
    refused(v, swapped, TOKEN_SIGNATURE)
    unknown = f"{b64(json.dumps({'alg': 'RS256', 'kid': 'zz'}))}.{payload}.{sig}"
    refused(v, unknown, UNKNOWN_KEY)
    dropped = f"{b64(json.dumps({'alg': 'RS256'}))}.{payload}.{sig}"
    refused(v, dropped, UNKNOWN_KEY)               # no kid, two candidate keys
    refused(v, f"{b64(json.dumps({'alg': 'RS256', 'kid': 7}))}.{payload}.{sig}", TOKEN_INVALID)


def test_unsupported_critical_header_is_invalid():
    v = verifier(hs_secret=SECRET)
    refused(v, forge({"alg": "HS256", "crit": ["exp"], "exp": 1}, claims()), TOKEN_INVALID)
    refused(v, forge({"alg": "HS256", "b64": False, "crit": ["b64"]}, claims()), TOKEN_INVALID)


def test_keys_carried_by_the_token_are_ignored(rsa_key, rsa_key2):
    """``jwk``/``jku``/``x5u`` headers never supply a key."""
    v = verifier(keys=[public_jwk(rsa_key, kid="a", alg="RS256")])
    evil = jwt.encode(claims(), rsa_key2, algorithm="RS256",
                      headers={"kid": "a", "jwk": public_jwk(rsa_key2),
                               "jku": "http://127.0.0.1:9/jwks"})
    refused(v, evil, TOKEN_SIGNATURE)


# --------------------------------------------------------------------------- time claims

def test_expired_and_leeway():
    v = verifier(hs_secret=SECRET)                 # leeway 30 s by default
    refused(v, sign(SECRET, exp=NOW - 31), TOKEN_EXPIRED)
    refused(v, sign(SECRET, exp=NOW - 30), TOKEN_EXPIRED)
    assert v.verify(sign(SECRET, exp=NOW - 29))["sub"] == "alice"
    assert v.verify(sign(SECRET, exp=NOW - 1))
    strict = verifier(hs_secret=SECRET, leeway=0)
    refused(strict, sign(SECRET, exp=NOW - 1), TOKEN_EXPIRED)
    refused(strict, sign(SECRET, exp=NOW), TOKEN_EXPIRED)
    assert strict.verify(sign(SECRET, exp=NOW + 1))


def test_not_yet_valid():
    v = verifier(hs_secret=SECRET)
    refused(v, sign(SECRET, nbf=NOW + 31), TOKEN_NOT_YET_VALID)
    assert v.verify(sign(SECRET, nbf=NOW + 29))
    refused(v, sign(SECRET, iat=NOW + 3600), TOKEN_NOT_YET_VALID)
    assert v.verify(sign(SECRET, iat=NOW + 29))
    # expiry is reported first
    refused(v, sign(SECRET, exp=NOW - 100, nbf=NOW + 100), TOKEN_EXPIRED)


def test_leeway_from_the_environment():
    env = {"PDP_JWT_HS_SECRET": SECRET, "PDP_JWT_LEEWAY": "120"}
    v = TokenVerifier.from_env(env, clock=lambda: NOW)
    assert v.verify(sign(SECRET, exp=NOW - 100))
    refused(v, sign(SECRET, exp=NOW - 121), TOKEN_EXPIRED)
    for bad in ("-1", "soon", "nan", "inf"):
        with pytest.raises(ConfigError):
            TokenVerifier.from_env({**env, "PDP_JWT_LEEWAY": bad})


# --------------------------------------------------------------------------- iss, aud

def test_issuer():
    v = verifier(hs_secret=SECRET, issuer="https://idp.example")
    assert v.verify(sign(SECRET, iss="https://idp.example"))
    refused(v, sign(SECRET, iss="https://evil.example"), TOKEN_ISSUER)
    refused(v, sign(SECRET, iss="https://idp.example/"), TOKEN_ISSUER)
    refused(v, sign(SECRET), TOKEN_ISSUER)
    refused(v, forge({"alg": "HS256"}, claims(iss=["https://idp.example"])), TOKEN_INVALID)
    several = verifier(hs_secret=SECRET, issuer="https://a.example, https://b.example")
    assert several.verify(sign(SECRET, iss="https://b.example"))


def test_audience():
    v = verifier(hs_secret=SECRET, audience="pdp")
    assert v.verify(sign(SECRET, aud="pdp"))
    assert v.verify(sign(SECRET, aud=["other", "pdp"]))
    refused(v, sign(SECRET, aud="other"), TOKEN_AUDIENCE)
    refused(v, sign(SECRET, aud=["other", "more"]), TOKEN_AUDIENCE)
    refused(v, sign(SECRET, aud=[]), TOKEN_AUDIENCE)
    refused(v, sign(SECRET), TOKEN_AUDIENCE)
    refused(v, forge({"alg": "HS256"}, claims(aud=5)), TOKEN_INVALID)
    refused(v, forge({"alg": "HS256"}, claims(aud=["pdp", 5])), TOKEN_INVALID)
    refused(v, forge({"alg": "HS256"}, claims(aud={"pdp": True})), TOKEN_INVALID)


def test_a_token_for_another_audience_is_refused_when_none_is_configured():
    v = verifier(hs_secret=SECRET)
    refused(v, sign(SECRET, aud="some-other-service"), TOKEN_AUDIENCE)
    assert v.verify(sign(SECRET))


# --------------------------------------------------------------------------- kid selection

def test_unknown_kid(all_keys):
    jwks, _ = all_keys
    v = verifier(keys=[jwks])
    refused(v, sign(SECRET, kid="nope"), UNKNOWN_KEY)
    refused(v, sign(SECRET, kid=""), UNKNOWN_KEY)
    refused(v, sign(SECRET, kid="x" * 5000), UNKNOWN_KEY)


def test_kidless_token_uses_the_only_key_that_fits(rsa_key, pem_file):
    # exactly one key configured: a token without kid may use it
    one = verifier(keys=[public_jwk(SECRET, kid="h1")])
    assert one.verify(sign(SECRET))
    # an HMAC secret and a PEM key: each kid-less token finds the one key of its alg
    two = verifier(hs_secret=SECRET, jwks=[pem_file(rsa_key)])
    assert two.verify(sign(SECRET))
    assert two.verify(sign(rsa_key, "RS256"))
    refused(two, sign(OTHER_SECRET), TOKEN_SIGNATURE)
    # two keys of the same alg: ambiguous
    ambiguous = verifier(keys=[{"keys": [public_jwk(SECRET, kid="a"),
                                         public_jwk(OTHER_SECRET, kid="b")]}])
    refused(ambiguous, sign(SECRET), UNKNOWN_KEY)
    assert ambiguous.verify(sign(OTHER_SECRET, kid="b"))
    # kid-less keys (PEM, secret) do not answer to a kid
    refused(two, sign(SECRET, kid="h1"), UNKNOWN_KEY)


def test_no_keys_configured():
    v = verifier()
    assert not v.configured
    refused(v, sign(SECRET), UNKNOWN_KEY)


# --------------------------------------------------------------------------- size, shape

def test_oversized_tokens_are_refused_before_decoding(monkeypatch):
    v = verifier(hs_secret=SECRET)
    big = sign(SECRET, filler="x" * 9000)
    assert len(big) > 8192
    monkeypatch.setattr(tokens, "_read_header", lambda t: pytest.fail("decoded an oversized token"))
    refused(v, big, TOKEN_INVALID)
    refused(v, "a" * 100_000, TOKEN_INVALID)
    refused(v, "." * 9000, TOKEN_INVALID)


def test_token_of_up_to_8k_is_accepted():
    v = verifier(hs_secret=SECRET)
    n, token = 5000, ""
    while True:
        candidate = sign(SECRET, filler="x" * n)
        if len(candidate) > 8192:
            break
        token, n = candidate, n + 1
    assert 8185 <= len(token) <= 8192
    assert v.verify(token)["filler"]
    refused(v, candidate, TOKEN_INVALID)


@pytest.mark.parametrize("garbage", [
    "", " ", "abc", "a.b", "a.b.c", "a.b.c.d", "...", "..", "ey.ey.ey",
    "e30.e30.e30", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.e30", "eyJhbGciOiJIUzI1NiJ9.eyJ.e30=",
    "eyJhbGciOiJIUzI1NiJ9.eyJ.e30",
    "bnVsbA.bnVsbA.bnVsbA", "W10.W10.W10", "IiI.IiI.IiI",
    "eyJhbGciOiJIUzI1NiJ9==.e30.e30", "eyJhbGci=OiJIUzI1NiJ9.e30.e30",
    "ÿÿÿ.ÿÿÿ.ÿÿÿ", "eyJhbGciOiJIUzI1NiJ9.e30.\u00e9", "\x00.\x00.\x00",
    None, b"eyJhbGciOiJIUzI1NiJ9.e30.e30", 5, ["a.b.c"], {"token": "x"},
])
def test_garbage_is_invalid(garbage):
    refused(verifier(hs_secret=SECRET), garbage, TOKEN_INVALID)


@pytest.mark.parametrize("garbage", [
    "eyJhbGciOiJIUzI1NiJ9..", "eyJhbGciOiJIUzI1NiJ9.e30.", "eyJhbGciOiJIUzI1NiJ9.e30.e30",
    "eyJhbGciOiJIUzI1NiJ9.eyI.e30",
])
def test_a_good_header_with_a_made_up_signature_fails_the_signature(garbage):
    refused(verifier(hs_secret=SECRET), garbage, TOKEN_SIGNATURE)


@pytest.mark.parametrize("payload", [
    "[]", '["sub", "alice"]', '"alice"', "null", "1", "true", "", "{", "{'sub': 1}",
    b"\xff\xfe", '{"sub": "alice"} x',
])
def test_a_signed_payload_that_is_not_a_json_object_is_invalid(payload):
    """The signature is good; what it signs is not a claims object: token_invalid,
    never a crash, never claims."""
    refused(verifier(hs_secret=SECRET), forge({"alg": "HS256"}, payload), TOKEN_INVALID)


def test_deeply_nested_json_is_invalid():
    v = verifier(hs_secret=SECRET)
    refused(v, forge({"alg": "HS256"}, "[" * 3000 + "]" * 3000), TOKEN_INVALID)
    deep_header = b64("[" * 3000 + "]" * 3000)
    refused(v, f"{deep_header}.e30.e30", TOKEN_INVALID)


# --------------------------------------------------------------------------- claim types

@pytest.mark.parametrize("payload", [
    '{"sub": "alice", "exp": null}',
    '{"sub": "alice", "exp": "9e9"}',
    '{"sub": "alice", "exp": "1700000600"}',
    '{"sub": "alice", "exp": 1e400}',
    '{"sub": "alice", "exp": -1e400}',
    '{"sub": "alice", "exp": NaN}',
    '{"sub": "alice", "exp": Infinity}',
    '{"sub": "alice", "exp": true}',
    '{"sub": "alice", "exp": [1800000000]}',
    '{"sub": "alice", "exp": {"$date": 1}}',
    '{"sub": "alice", "exp": 1800000000, "nbf": true}',
    '{"sub": "alice", "exp": 1800000000, "nbf": "0"}',
    '{"sub": "alice", "exp": 1800000000, "iat": false}',
    '{"sub": "alice", "exp": 1800000000, "iat": null}',
    '{"sub": 5, "exp": 1800000000}',
    '{"sub": null, "exp": 1800000000}',
    '{"sub": ["alice"], "exp": 1800000000}',
    '{"sub": "", "exp": 1800000000}',
    '{"sub": "alice", "exp": 1800000000, "iss": 1}',
    '{"sub": "alice", "exp": 1800000000, "jti": 1}',
    '{"sub": "alice", "exp": 1800000000, "aud": 5}',
    '{"sub": "alice", "exp": 1800000000, "aud": null}',
    '{"sub": "alice", "exp": 1800000000, "aud": ["pdp", null]}',
    '{"sub": "alice", "exp": 18000000' + "0" * 5000 + '}',
    '[]', '"claims"', 'null', '42', '',
])
def test_wrong_claim_types_are_invalid(payload):
    refused(verifier(hs_secret=SECRET), forge({"alg": "HS256"}, payload), TOKEN_INVALID)


def test_numeric_dates_may_be_ints_or_floats():
    v = verifier(hs_secret=SECRET)
    assert v.verify(forge({"alg": "HS256"}, '{"sub": "a", "exp": 1700000600.5, "iat": 1.0e9}'))
    assert v.verify(forge({"alg": "HS256"}, '{"sub": "a", "exp": 1' + "0" * 40 + "}"))
    refused(v, forge({"alg": "HS256"}, '{"sub": "a", "exp": -1' + "0" * 40 + "}"), TOKEN_EXPIRED)


def test_missing_required_claims():
    v = verifier(hs_secret=SECRET)
    refused(v, sign(SECRET, exp=DROP), TOKEN_INVALID)
    refused(v, sign(SECRET, sub=DROP), TOKEN_INVALID)
    assert v.verify(sign(SECRET, iat=DROP, roles=DROP))
    custom = verifier(hs_secret=SECRET, required_claims="exp,sub,roles,tenant")
    refused(custom, sign(SECRET), TOKEN_INVALID)
    assert custom.verify(sign(SECRET, tenant="acme"))
    lax = TokenVerifier.from_env({"PDP_JWT_HS_SECRET": SECRET, "PDP_JWT_REQUIRED_CLAIMS": "sub"},
                                 clock=lambda: NOW)
    assert lax.verify(sign(SECRET, exp=DROP))
    refused(lax, sign(SECRET, sub=DROP), TOKEN_INVALID)


# --------------------------------------------------------------------------- every key type

def test_each_key_type_with_its_algorithm(tmp_path, rsa_key, ec_key, ec384_key, ed_key):
    ec521 = ec.generate_private_key(ec.SECP521R1())
    cases = [  # (signing key, alg, JWK as published)
        (SECRET, "HS256", public_jwk(SECRET, kid="oct-256")),
        (SECRET * 2, "HS384", public_jwk(SECRET * 2, kid="oct-384", alg="HS384")),
        (SECRET * 2, "HS512", public_jwk(SECRET * 2, kid="oct-512", alg="HS512")),
        (rsa_key, "RS256", public_jwk(rsa_key, kid="rsa")),
        (rsa_key, "PS256", public_jwk(rsa_key, kid="rsa-pss", alg="PS256")),
        (ec_key, "ES256", public_jwk(ec_key, kid="p256")),
        (ec384_key, "ES384", public_jwk(ec384_key, kid="p384")),
        (ec521, "ES512", public_jwk(ec521, kid="p521")),
        (ed_key, "EdDSA", public_jwk(ed_key, kid="ed25519")),
    ]
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [jwk for _, _, jwk in cases]}))
    v = TokenVerifier.from_env({"PDP_JWKS": str(path)}, clock=lambda: NOW)
    for key, alg, jwk in cases:
        assert v.verify(sign(key, alg, kid=jwk["kid"]))["sub"] == "alice", alg
        # the same kid with any other algorithm is refused
        for other_key, other_alg, _ in cases:
            if other_alg != alg:
                token = sign(other_key, other_alg, kid=jwk["kid"])
                refused(v, token, TOKEN_INVALID)


def test_pem_files_and_certificates(tmp_path, ec_key, ed_key, pem_file):
    v = verifier(jwks=f"{pem_file(ec_key, 'ec.pem')}, {pem_file(ed_key, 'ed.pem')}")
    assert v.verify(sign(ec_key, "ES256"))
    assert v.verify(sign(ed_key, "EdDSA"))
    private = tmp_path / "private.pem"
    private.write_bytes(ec_key.private_bytes(serialization.Encoding.PEM,
                                             serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))
    with pytest.raises(ConfigError, match="private"):
        verifier(jwks=[str(private)])


def test_configuration_errors(tmp_path, ec_key):
    with pytest.raises(ConfigError):
        verifier(hs_secret="too short")
    with pytest.raises(ConfigError):
        verifier(jwks=[str(tmp_path / "missing.json")])
    bad = tmp_path / "bad.json"
    for text in ("not json", "[]", '{"keys": []}', '{"keys": "x"}',
                 json.dumps({"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "weak"}]}),
                 json.dumps({"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]}),
                 json.dumps({"keys": [{"kty": "XYZ"}]}),
                 json.dumps({"keys": [public_jwk(b"short", kid="s")]})):
        bad.write_text(text)
        with pytest.raises(ConfigError):
            verifier(jwks=[str(bad)])
    # a private JWK (e.g. the development signing key) is not a verification key
    private = jwt.algorithms.ECAlgorithm.to_jwk(ec_key, as_dict=True)
    bad.write_text(json.dumps(private))
    with pytest.raises(ConfigError, match="private"):
        verifier(jwks=[str(bad)])
    with pytest.raises(ConfigError):
        verifier(hs_secret=SECRET, algorithms=["HS257"])
    with pytest.raises(ConfigError):
        TokenSettings.from_env({"PDP_JWKS_TIMEOUT": "0"})


def test_encryption_keys_in_a_jwks_are_skipped(tmp_path, ec_key, rsa_key):
    path = tmp_path / "jwks.json"
    enc = public_jwk(rsa_key, kid="enc")
    enc["use"] = "enc"
    path.write_text(json.dumps({"keys": [enc, public_jwk(ec_key, kid="sig")]}))
    v = verifier(jwks=[str(path)])
    refused(v, sign(rsa_key, "RS256", kid="enc"), UNKNOWN_KEY)
    assert v.verify(sign(ec_key, "ES256", kid="sig"))


def test_settings_from_env_defaults_and_secret_not_printed():
    s = TokenSettings.from_env({})
    assert (s.jwks, s.hs_secret, s.issuer, s.audience) == ((), None, (), ())
    assert s.leeway == 30 and s.algorithms is None and s.required_claims == ("exp", "sub")
    assert (s.jwks_timeout, s.jwks_refresh_interval, s.jwks_cache_ttl) == (2, 60, 300)
    s = TokenSettings.from_env({"PDP_JWT_HS_SECRET": SECRET, "PDP_JWT_AUDIENCE": "a, b",
                                "PDP_JWT_ALGORITHMS": "HS256,ES256"})
    assert SECRET not in repr(s)
    assert s.audience == ("a", "b") and s.algorithms == ("HS256", "ES256")
    v = TokenVerifier.from_settings(s, clock=lambda: NOW)
    assert v.verify(sign(SECRET, aud="b"))


def test_local_jwks_file_is_reloaded_on_unknown_kid(tmp_path, ec_key, ed_key):
    mono = FakeClock()
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [public_jwk(ec_key, kid="one")]}))
    v = verifier(jwks=[str(path)], monotonic=mono)
    assert v.verify(sign(ec_key, "ES256", kid="one"))
    path.write_text(json.dumps({"keys": [public_jwk(ec_key, kid="one"),
                                         public_jwk(ed_key, kid="two")]}))
    mono.t += 2
    assert v.verify(sign(ed_key, "EdDSA", kid="two"))
    path.write_text("broken")                      # a bad edit keeps the previous keys
    mono.t += 2
    assert v.verify(sign(ed_key, "EdDSA", kid="two"))
    refused(v, sign(ed_key, "EdDSA", kid="three"), UNKNOWN_KEY)


# --------------------------------------------------------------------------- fuzzing

@pytest.fixture(scope="module")
def fuzz_verifier(rsa_key, ec_key):
    return TokenVerifier(hs_secret=SECRET, keys=[public_jwk(rsa_key, kid="r1"),
                                                 public_jwk(ec_key, kid="e1")],
                         audience="pdp", clock=lambda: NOW)


def _outcome(v, token):
    try:
        result = v.verify(token)
    except TokenError as err:
        assert err.code in tokens.TOKEN_ERROR_CODES
        if isinstance(token, str) and len(token) > 8:
            assert token not in err.message
        return err
    assert isinstance(result, dict)
    assert isinstance(result["sub"], str) and result["sub"]
    assert type(result["exp"]) in (int, float) and result["exp"] > NOW - 30
    return result


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_text_is_a_token_error(fuzz_verifier, text):
    assert isinstance(_outcome(fuzz_verifier, text), TokenError)


_b64_text = st.binary(max_size=80).map(b64)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_b64_text, st.text(alphabet="abcXYZ09-_=.", max_size=20)),
                min_size=1, max_size=5).map(".".join))
def test_dotted_base64_is_a_token_error(text):
    v = TokenVerifier(hs_secret=SECRET, clock=lambda: NOW)
    assert isinstance(_outcome(v, text), TokenError)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8)
_claim_names = st.sampled_from(["sub", "exp", "nbf", "iat", "iss", "aud", "jti", "roles", "x"])
_header = st.fixed_dictionaries({"alg": st.sampled_from(["HS256", "HS384", "RS256", "ES256", "none"]) | _json},
                                optional={"kid": st.sampled_from(["r1", "e1", "zz"]) | _json,
                                          "typ": _json, "crit": _json, "b64": _json, "jku": _json})
_payload = st.dictionaries(_claim_names, _json | st.sampled_from([NOW, NOW + 60, "alice", "pdp"]),
                           max_size=7) | _json


@settings(max_examples=400, deadline=None)
@given(header=_header, payload=_payload)
def test_signed_structures_of_any_shape_never_crash(header, payload):
    """Correctly HMAC-signed tokens with arbitrary JSON headers and payloads: the
    answer is claims that pass every check, or a TokenError — nothing else."""
    v = TokenVerifier(hs_secret=SECRET, audience="pdp", clock=lambda: NOW)
    token = forge(header, json.dumps(payload))
    _outcome(v, token)


# --------------------------------------------------------------------------- thread safety

def test_concurrent_verification(all_keys):
    jwks, signers = all_keys
    v = verifier(keys=[jwks])
    good = [sign(key, alg, kid=kid, sub=f"user-{kid}") for kid, (key, alg) in signers.items()]
    bad = [sign(SECRET, kid="nope"), sign(OTHER_SECRET, kid="h1"), "garbage"]
    errors = []

    def work():
        try:
            for _ in range(50):
                for kid, token in zip(signers, good):
                    assert v.verify(token)["sub"] == f"user-{kid}"
                for token in bad:
                    with pytest.raises(TokenError):
                        v.verify(token)
        except BaseException as exc:               # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_tokens_never_reach_the_logs(caplog, all_keys):
    jwks, signers = all_keys
    v = verifier(keys=[jwks])
    caplog.set_level(logging.DEBUG)
    samples = [sign(SECRET, kid="h1"), sign(SECRET, kid="zz"), sign(OTHER_SECRET, kid="h1"),
               sign(SECRET, kid="h1", exp=NOW - 999)]
    for token in samples:
        try:
            v.verify(token)
        except TokenError:
            pass
    for token in samples:
        assert token not in caplog.text
        assert token.split(".")[2] not in caplog.text


# --------------------------------------------------------------------------- remote JWKS

class FakeClock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


class JwksServer:
    """A JWKS served by ``http.server`` on 127.0.0.1 (ephemeral port) in a thread."""

    def __init__(self):
        self.doc: dict | None = None
        self.body: bytes | None = None             # raw override
        self.status = 200
        self.delay = 0.0
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                server.requests += 1
                if server.delay:
                    time.sleep(server.delay)
                body = server.body if server.body is not None else json.dumps(server.doc).encode()
                try:
                    self.send_response(server.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/.well-known/jwks.json"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.running = True

    def stop(self):
        if self.running:
            self.running = False
            self.httpd.shutdown()
            self.httpd.server_close()


@pytest.fixture
def jwks_server(monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    server = JwksServer()
    yield server
    server.stop()


def test_remote_jwks_rotation_rate_limit_and_outage(jwks_server, ec_key, ed_key, rsa_key):
    mono = FakeClock()
    jwks_server.doc = {"keys": [public_jwk(ec_key, kid="k1")]}
    v = verifier(jwks=jwks_server.url, monotonic=mono, jwks_refresh_interval=60,
                 jwks_cache_ttl=300)
    k1, k2 = sign(ec_key, "ES256", kid="k1"), sign(ed_key, "EdDSA", kid="k2")
    k3 = sign(rsa_key, "RS256", kid="k3")

    # first use fetches the document
    assert v.verify(k1)["sub"] == "alice"
    assert jwks_server.requests == 1

    # the identity provider rotates in k2; within the refresh interval it is not fetched
    jwks_server.doc = {"keys": [public_jwk(ec_key, kid="k1"), public_jwk(ed_key, kid="k2")]}
    mono.t += 30
    refused(v, k2, UNKNOWN_KEY)
    assert jwks_server.requests == 1

    # after the interval an unknown kid triggers one refresh: k2 is picked up
    mono.t += 31
    assert v.verify(k2)["sub"] == "alice"
    assert v.verify(k1)
    assert jwks_server.requests == 2

    # refreshes are rate-limited: a flood of unknown kids costs at most one fetch a minute
    for _ in range(50):
        refused(v, k3, UNKNOWN_KEY)
    mono.t += 59
    refused(v, k3, UNKNOWN_KEY)
    assert jwks_server.requests == 2
    mono.t += 2
    refused(v, k3, UNKNOWN_KEY)                    # fetched, but k3 is not published
    assert jwks_server.requests == 3

    # the identity provider goes down: cached keys still verify, unknown ones do not
    jwks_server.stop()
    mono.t += 400                                  # past the cache TTL and the interval
    assert v.verify(k1)                            # starts a background refresh, which fails
    v._sources[0].wait_idle(5)
    assert v.verify(k2)
    mono.t += 61
    refused(v, k3, UNKNOWN_KEY)                    # the failed fetch is an answer, not a hang
    assert v.verify(k1) and v.verify(k2)
    status = v.status()[0]
    assert status["keys"] == 2 and status["last_error"] and status["fetches"] == 5
    assert "alice" not in json.dumps(status)


def test_remote_jwks_background_refresh_removes_rotated_out_keys(jwks_server, ec_key, ed_key):
    mono = FakeClock()
    jwks_server.doc = {"keys": [public_jwk(ec_key, kid="old")]}
    v = verifier(jwks=[jwks_server.url], monotonic=mono, jwks_cache_ttl=300)
    old = sign(ec_key, "ES256", kid="old")
    assert v.verify(old)
    jwks_server.doc = {"keys": [public_jwk(ed_key, kid="new")]}
    mono.t += 301
    assert v.verify(old)                           # answered from the cache, refresh in background
    assert v._sources[0].wait_idle(5)
    assert jwks_server.requests == 2
    assert v.verify(sign(ed_key, "EdDSA", kid="new"))
    refused(v, old, UNKNOWN_KEY)                   # no longer published


def test_remote_fetch_never_blocks_a_decision_for_long(jwks_server, ec_key):
    jwks_server.doc = {"keys": [public_jwk(ec_key, kid="k1")]}
    jwks_server.delay = 8.0
    v = verifier(jwks=[jwks_server.url], jwks_timeout=0.3)
    started = time.monotonic()
    refused(v, sign(ec_key, "ES256", kid="k1"), UNKNOWN_KEY)
    assert time.monotonic() - started < 4.0        # the timeout, not the server's 8 s
    # once that fetch has given up, the next decision is rate-limited: it does not
    # start another fetch (and so cannot wait for one)
    assert v._sources[0].wait_idle(10)
    fetches = jwks_server.requests
    refused(v, sign(ec_key, "ES256", kid="k1"), UNKNOWN_KEY)
    assert v._sources[0].wait_idle(10)
    assert jwks_server.requests == fetches


@pytest.mark.parametrize("body, status", [
    (b"x" * 5000, 200),                            # over the size limit
    (b"<html>not json</html>", 200),
    (b'{"keys": []}', 200),
    (b'{"no": "keys"}', 200),
    (b'{"keys": [{"kty": "oct", "k": "c2hvcnQ", "kid": "k1"}]}', 200),    # weak key only
    (b"{}", 500),
])
def test_bad_remote_documents_never_make_a_key_valid(jwks_server, ec_key, body, status):
    mono = FakeClock()
    jwks_server.doc = {"keys": [public_jwk(ec_key, kid="k1")]}
    v = verifier(jwks=[jwks_server.url], monotonic=mono, jwks_max_bytes=4096)
    token = sign(ec_key, "ES256", kid="k1")
    assert v.verify(token)
    jwks_server.body, jwks_server.status = body, status
    mono.t += 61
    refused(v, sign(ec_key, "ES256", kid="k2"), UNKNOWN_KEY)
    assert jwks_server.requests == 2
    assert v.verify(token)                         # the previous keys are kept
    assert v.status()[0]["last_error"]


def test_remote_jwks_down_from_the_start(jwks_server, ec_key):
    url = jwks_server.url
    jwks_server.stop()
    v = verifier(jwks=[url])
    refused(v, sign(ec_key, "ES256", kid="k1"), UNKNOWN_KEY)
    refused(v, sign(ec_key, "ES256"), UNKNOWN_KEY)


def test_remote_jwks_oversized_response_is_refused(jwks_server, ec_key):
    jwks_server.doc = {"keys": [public_jwk(ec_key, kid="k1")], "padding": "x" * 10_000}
    v = verifier(jwks=[jwks_server.url], jwks_max_bytes=2048)
    refused(v, sign(ec_key, "ES256", kid="k1"), UNKNOWN_KEY)
    assert "larger" in v.status()[0]["last_error"]


# --------------------------------------------------------------------------- dev tokens

def test_mint_round_trips_through_the_verifier(tmp_path):
    var = tmp_path / "var"
    token = mint_dev_token(sub="alice", roles=["editor", "viewer"], claims={"tenant": "acme"},
                           var_dir=var, environ={"PDP_DEV_MODE": "1"})
    key_file, jwks_file = var / "dev-signing-key.json", var / "dev-jwks.json"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    v = TokenVerifier.from_env({"PDP_JWKS": str(jwks_file)})
    got = v.verify(token)
    assert got["sub"] == "alice" and got["roles"] == ["editor", "viewer"]
    assert got["tenant"] == "acme" and got["exp"] - got["iat"] == 3600
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "ES256" and header["kid"] == json.loads(jwks_file.read_text())["keys"][0]["kid"]
    # the key is made once and reused
    again = mint_dev_token(sub="bob", var_dir=var, dev=True, environ={})
    assert v.verify(again)["sub"] == "bob"
    # the private key is never a verification key
    with pytest.raises(ConfigError, match="private"):
        TokenVerifier(jwks=[str(key_file)])


def test_mint_refuses_outside_dev_mode(tmp_path):
    for env in ({}, {"PDP_DEV_MODE": "0"}, {"PDP_DEV_MODE": ""}):
        with pytest.raises(DevModeRequired):
            mint_dev_token(sub="alice", var_dir=tmp_path / "var", environ=env)
    assert not (tmp_path / "var").exists()


def test_mint_uses_the_configured_issuer_and_audience(tmp_path):
    env = {"PDP_DEV_MODE": "1", "PDP_JWT_ISSUER": "https://dev.local",
           "PDP_JWT_AUDIENCE": "pdp,other", "PDP_JWKS": str(tmp_path / "var" / "dev-jwks.json")}
    token = mint_dev_token(sub="alice", var_dir=tmp_path / "var", environ=env)
    got = TokenVerifier.from_env(env).verify(token)
    assert got["iss"] == "https://dev.local" and got["aud"] == "pdp"


def test_pdp_token_mint_command(tmp_path):
    var = tmp_path / "var"
    runner = CliRunner()
    args = ["mint", "--sub", "alice", "--roles", "editor,viewer", "--claim", "level=3",
            "--claim", "team=docs", "--claim", 'id="007"', "--ttl", "60", "--var-dir", str(var)]
    refused_run = runner.invoke(token_cli, args, env={"PDP_DEV_MODE": None})
    assert refused_run.exit_code == 1
    assert "PDP_DEV_MODE" in refused_run.stderr and not refused_run.stdout
    result = runner.invoke(token_cli, args, env={"PDP_DEV_MODE": "1"})
    assert result.exit_code == 0, result.stderr
    token = result.stdout.strip()
    assert result.stdout == token + "\n"           # the token alone
    got = TokenVerifier(jwks=[str(var / "dev-jwks.json")]).verify(token)
    assert got["roles"] == ["editor", "viewer"] and got["level"] == 3
    assert got["team"] == "docs" and got["id"] == "007" and got["exp"] - got["iat"] == 60
    with_flag = runner.invoke(token_cli, [*args[:3], "--dev", "--var-dir", str(var)],
                              env={"PDP_DEV_MODE": None})
    assert with_flag.exit_code == 0
    bad = runner.invoke(token_cli, [*args[:3], "--dev", "--claim", "novalue"])
    assert bad.exit_code == 1
    # an expired token for testing
    expired = runner.invoke(token_cli, ["mint", "--sub", "a", "--dev", "--claim", "exp=1",
                                        "--var-dir", str(var)])
    refused(TokenVerifier(jwks=[str(var / "dev-jwks.json")]), expired.stdout.strip(), TOKEN_EXPIRED)


def test_a_token_seen_before_is_still_checked_against_the_clock_every_time():
    """Verified signatures are remembered, the time claims never are: a token that
    verified a minute ago is refused once it has expired."""
    now = [1_800_000_000.0]
    key = {"kty": "oct", "kid": "k1", "alg": "HS256",
           "k": base64.urlsafe_b64encode(b"s" * 32).rstrip(b"=").decode()}
    verifier = TokenVerifier(keys=[key], clock=lambda: now[0], leeway=0)
    token = jwt.encode({"sub": "alice", "exp": int(now[0]) + 60}, b"s" * 32, algorithm="HS256",
                       headers={"kid": "k1"})
    assert verifier.verify(token)["sub"] == "alice"
    assert verifier.verify(token)["sub"] == "alice"          # the remembered signature
    now[0] += 120
    with pytest.raises(TokenError) as err:
        verifier.verify(token)
    assert err.value.code == "token_expired"


def test_a_remembered_token_is_refused_once_its_key_is_gone():
    key = {"kty": "oct", "kid": "k1", "alg": "HS256",
           "k": base64.urlsafe_b64encode(b"s" * 32).rstrip(b"=").decode()}
    other = {"kty": "oct", "kid": "k2", "alg": "HS256",
             "k": base64.urlsafe_b64encode(b"t" * 32).rstrip(b"=").decode()}
    token = jwt.encode({"sub": "alice", "exp": 4_000_000_000}, b"s" * 32, algorithm="HS256",
                       headers={"kid": "k1"})
    verifier = TokenVerifier(keys=[key])
    assert verifier.verify(token)["sub"] == "alice"
    rotated = TokenVerifier(keys=[other])
    rotated._verified = verifier._verified                   # same memory, keys rotated
    with pytest.raises(TokenError) as err:
        rotated.verify(token)
    assert err.value.code == "unknown_key"
