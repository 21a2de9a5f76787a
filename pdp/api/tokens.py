"""End-user token verification: signed JWTs checked against configured keys.

A service that asks pdp for a decision passes its end user's token in the request
(``subject.token``); :class:`TokenVerifier` turns that token into verified claims
or a :class:`TokenError` with a stable code, which the decision turns into a deny.

Keys come from three places, all optional and combinable:

* ``PDP_JWKS`` — comma-separated JWKS documents: local files (a JWKS, a single
  JWK, or a PEM public key or certificate) and ``http(s)://`` URLs (fetched with a
  short timeout, cached, refreshed on an unknown ``kid`` at most once per
  ``PDP_JWKS_REFRESH_INTERVAL``, and kept while the identity provider is down);
* ``PDP_JWT_HS_SECRET`` — one HMAC secret (at least 32 bytes);
* keyword arguments (``keys=``), for embedding and tests.

Each key is bound to algorithms of its own family when it is loaded: the JWK's
``alg`` when present, else the default of its type (``oct`` → HS256, ``RSA`` →
RS256, ``EC`` → ES256/ES384/ES512 by curve, ``OKP`` Ed25519 → EdDSA), or, when
``PDP_JWT_ALGORITHMS`` is set, the members of the family that list names. A key is
therefore never used with another family's algorithm (no public key as an HMAC
secret), ``none`` is never accepted, and a token whose ``alg`` does not fit its key
is refused. Keys that a token carries or points at (``jwk``, ``jku``, ``x5u``,
``x5c`` headers) are ignored.

Checks, in order (the first failure is the answer):

1. size (≤ 8 KiB, before any decoding), shape (three base64url parts), header;
2. ``alg``: a JWA signature algorithm, never ``none``, in the allow-list;
3. key selection by ``kid`` (``unknown_key``); a token without ``kid`` may use
   the only key that accepts its ``alg`` — with several candidates it is refused;
4. signature (``token_signature``);
5. claim types: ``exp``/``nbf``/``iat`` finite numbers, ``iss``/``sub``/``jti``
   strings, ``aud`` a string or a list of strings (``token_invalid``);
6. required claims (default ``exp``, ``sub``), then ``exp`` (``token_expired``),
   ``nbf``/``iat`` (``token_not_yet_valid``), each with the leeway;
7. ``iss`` (``token_issuer``) and ``aud`` (``token_audience``) when configured; a
   token that names an audience is refused when no audience is configured
   (RFC 7519 §4.1.3: it was meant for someone else).

Messages name claims and codes, never the token, its signature or claim values.

Development tokens: :func:`mint_dev_token` signs with a development key kept in
``var/dev-signing-key.json`` (an EC P-256 private JWK, created on first use, mode
0600) and writes its public JWKS to ``var/dev-jwks.json``; it refuses unless
``PDP_DEV_MODE=1`` (or ``dev=True``).

See ``docs/operations.md`` (End-user tokens) for the operator's view.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import math
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwt.algorithms import get_default_algorithms

from pdp.config import ConfigError, load_environment
from pdp.errors import PdpError

log = logging.getLogger("pdp.tokens")

# --------------------------------------------------------------------------- errors

TOKEN_INVALID = "token_invalid"
TOKEN_EXPIRED = "token_expired"
TOKEN_NOT_YET_VALID = "token_not_yet_valid"
TOKEN_SIGNATURE = "token_signature"
TOKEN_ISSUER = "token_issuer"
TOKEN_AUDIENCE = "token_audience"
UNKNOWN_KEY = "unknown_key"

#: Every code :class:`TokenError` may carry.
TOKEN_ERROR_CODES = frozenset({
    TOKEN_INVALID, TOKEN_EXPIRED, TOKEN_NOT_YET_VALID, TOKEN_SIGNATURE,
    TOKEN_ISSUER, TOKEN_AUDIENCE, UNKNOWN_KEY,
})


class TokenError(PdpError):
    """An end-user token that pdp does not accept; ``code`` says why.

    The message is safe to return to the caller and to log: it never contains
    the token, its signature or the values of its claims.
    """

    code = TOKEN_INVALID

    def __init__(self, code: str, message: str):
        if code not in TOKEN_ERROR_CODES:
            raise ValueError(f"not a token error code: {code!r}")
        super().__init__(message, code=code)


def _invalid(message: str) -> TokenError:
    return TokenError(TOKEN_INVALID, message)


def _show(value: object, limit: int = 40) -> str:
    """A short printable rendering of a header value (``kid``, ``alg``) for messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- algorithms

#: JWA signature algorithms pdp knows, by key family (``none`` is not among them).
_HS = ("HS256", "HS384", "HS512")
_RSA = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")

#: (kty, crv) → (default algorithm, every algorithm the key may be used with).
_FAMILIES: dict[tuple[str, str | None], tuple[str, tuple[str, ...]]] = {
    ("oct", None): ("HS256", _HS),
    ("RSA", None): ("RS256", _RSA),
    ("EC", "P-256"): ("ES256", ("ES256",)),
    ("EC", "P-384"): ("ES384", ("ES384",)),
    ("EC", "P-521"): ("ES512", ("ES512",)),
    ("EC", "secp256k1"): ("ES256K", ("ES256K",)),
    ("OKP", "Ed25519"): ("EdDSA", ("EdDSA",)),
    ("OKP", "Ed448"): ("EdDSA", ("EdDSA",)),
}

#: Every algorithm name accepted in ``PDP_JWT_ALGORITHMS`` and in a token header.
KNOWN_ALGORITHMS = frozenset(a for _, algs in _FAMILIES.values() for a in algs)

_ALGORITHMS = get_default_algorithms()          # name → pyjwt Algorithm (stateless)

_EC_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521",
              "secp256k1": "secp256k1"}

#: JWK members that only private keys have.
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth")

MAX_TOKEN_BYTES = 8 * 1024
DEFAULT_REQUIRED_CLAIMS = ("exp", "sub")


def _family_of(kty: object, crv: object) -> tuple[str, tuple[str, ...]]:
    if kty in ("oct", "RSA"):
        return _FAMILIES[(kty, None)]  # type: ignore[index]
    family = _FAMILIES.get((kty, crv))  # type: ignore[arg-type]
    if family is None:
        if kty in ("EC", "OKP"):
            raise ValueError(f"unsupported {kty} curve {_show(crv)}")
        raise ValueError(f"unsupported key type (kty) {_show(kty)}")
    return family


# --------------------------------------------------------------------------- keys

@dataclass(frozen=True, slots=True, eq=False)
class VerificationKey:
    """One verification key, bound to the algorithms it may verify."""

    kid: str | None
    kty: str
    algorithms: frozenset[str]
    #: the pyjwt-ready key: ``bytes`` for HMAC, a cryptography public key otherwise.
    key: Any = field(repr=False)
    #: where it came from (a path, a URL without credentials, ``PDP_JWT_HS_SECRET``).
    source: str = ""


class _NotAllowed(ValueError):
    """A key whose algorithms are all outside ``PDP_JWT_ALGORITHMS``."""


def _bind(kty: str, crv: str | None, declared: object, allow: frozenset[str] | None,
          key: Any, *, kid: str | None, source: str) -> VerificationKey:
    """Bind ``key`` to its algorithms; ``ValueError`` when it cannot be used."""
    default, family = _family_of(kty, crv)
    if declared is not None:
        if not isinstance(declared, str) or declared not in family:
            raise ValueError(f"alg {_show(declared)} does not fit a {kty} key")
        if allow is not None and declared not in allow:
            raise _NotAllowed(f"its alg {declared} is not in PDP_JWT_ALGORITHMS")
        wanted: tuple[str, ...] = (declared,)
    elif allow is not None:
        wanted = tuple(a for a in family if a in allow)
        if not wanted:
            raise _NotAllowed(f"none of PDP_JWT_ALGORITHMS fits a {kty} key")
    else:
        wanted = (default,)
    usable = []
    weak = None
    for alg in wanted:
        algorithm = _ALGORITHMS[alg]
        try:
            prepared = algorithm.prepare_key(key)
        except (jwt.exceptions.PyJWTError, ValueError, TypeError) as exc:
            raise ValueError(f"the key cannot be used for {alg}: {exc}") from None
        complaint = algorithm.check_key_length(prepared)
        if complaint:
            weak = complaint
            continue
        usable.append(alg)
    if not usable:
        raise ValueError(f"the key is too weak: {weak}")
    return VerificationKey(kid=kid, kty=kty, algorithms=frozenset(usable), key=key,
                           source=source)


def key_from_jwk(jwk: object, *, allow: frozenset[str] | None = None,
                 source: str = "") -> VerificationKey | None:
    """A :class:`VerificationKey` from one JWK (a dict).

    Returns ``None`` for keys that are not for signatures (``use`` other than
    ``sig``, ``key_ops`` without ``verify``, X25519/X448); raises ``ValueError``
    for keys that are malformed, weak, private, or whose ``alg`` does not fit.
    """
    if not isinstance(jwk, Mapping):
        raise ValueError("a JWK must be a JSON object")
    kty, crv, kid = jwk.get("kty"), jwk.get("crv"), jwk.get("kid")
    if "use" in jwk and jwk["use"] != "sig":
        return None
    ops = jwk.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        return None
    if kty == "OKP" and crv in ("X25519", "X448"):
        return None
    if kid is not None and not isinstance(kid, str):
        raise ValueError("kid must be a string")
    if kty != "oct" and any(m in jwk for m in _PRIVATE_MEMBERS):
        raise ValueError("the JWK holds private key material; publish only the public key")
    _family_of(kty, crv)                       # unsupported type or curve → ValueError
    declared = jwk.get("alg")
    any_alg = declared if isinstance(declared, str) and declared in KNOWN_ALGORITHMS \
        else _family_of(kty, crv)[0]
    try:
        key = _ALGORITHMS[any_alg].from_jwk(dict(jwk))
    except (jwt.exceptions.PyJWTError, ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"malformed {kty} JWK: {exc}") from None
    return _bind(kty, crv if kty in ("EC", "OKP") else None, declared, allow, key,
                 kid=kid, source=source)


def key_from_public_key(public_key: Any, *, kid: str | None = None,
                        allow: frozenset[str] | None = None,
                        source: str = "") -> VerificationKey:
    """A :class:`VerificationKey` from a cryptography public key object."""
    if isinstance(public_key, rsa.RSAPublicKey):
        kty, crv = "RSA", None
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        kty, crv = "EC", _EC_CURVES.get(public_key.curve.name, public_key.curve.name)
    elif isinstance(public_key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        kty = "OKP"
        crv = "Ed25519" if isinstance(public_key, ed25519.Ed25519PublicKey) else "Ed448"
    else:
        raise ValueError(f"unsupported public key type {type(public_key).__name__}")
    return _bind(kty, crv, None, allow, public_key, kid=kid, source=source)


def key_from_pem(data: bytes, *, allow: frozenset[str] | None = None,
                 source: str = "") -> VerificationKey:
    """A kid-less key from a PEM public key or X.509 certificate."""
    if b"PRIVATE KEY-----" in data:
        raise ValueError("the PEM file holds a private key; give pdp the public key")
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            public_key = x509.load_pem_x509_certificate(data).public_key()
        else:
            public_key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a PEM public key or certificate: {exc}") from None
    return key_from_public_key(public_key, allow=allow, source=source)


def key_from_secret(secret: str | bytes, *, kid: str | None = None,
                    allow: frozenset[str] | None = None,
                    source: str = "PDP_JWT_HS_SECRET") -> VerificationKey:
    """An HMAC key from a shared secret (UTF-8 text or bytes, at least 32 bytes)."""
    raw = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if len(raw) < 32:
        raise ValueError("an HMAC secret must be at least 32 bytes long")
    return _bind("oct", None, None, allow, raw, kid=kid, source=source)


def keys_from_document(doc: object, *, allow: frozenset[str] | None, source: str,
                       strict: bool) -> list[VerificationKey]:
    """Keys of a JWKS (``{"keys": [...]}``) or of a single JWK.

    ``strict`` (local files) turns a bad key into ``ValueError``; otherwise (remote
    documents) bad keys are skipped with a warning, so one odd key published by an
    identity provider does not hide the others. Keys that ``PDP_JWT_ALGORITHMS``
    leaves no algorithm for are skipped in both cases.
    """
    if isinstance(doc, Mapping) and "keys" in doc:
        members = doc["keys"]
        if not isinstance(members, list):
            raise ValueError("'keys' must be a list")
    elif isinstance(doc, Mapping) and "kty" in doc:
        members = [doc]
    else:
        raise ValueError("not a JWKS (no 'keys') nor a JWK (no 'kty')")
    keys = []
    for i, member in enumerate(members):
        try:
            key = key_from_jwk(member, allow=allow, source=source)
        except _NotAllowed as exc:
            log.info("skipping key #%d of %s: %s", i, source, exc)
            continue
        except ValueError as exc:
            if strict:
                raise ValueError(f"key #{i}: {exc}") from None
            log.warning("skipping key #%d of %s: %s", i, source, exc)
            continue
        if key is not None:
            keys.append(key)
    if not keys:
        raise ValueError("no usable signature key")
    return keys


# --------------------------------------------------------------------------- key sources

@dataclass(frozen=True, slots=True, eq=False)
class _KeySet:
    keys: tuple[VerificationKey, ...]
    loaded_at: float


_EMPTY = _KeySet((), float("-inf"))


class StaticKeys:
    """Keys given once (HMAC secret, keyword arguments)."""

    def __init__(self, keys: Iterable[VerificationKey], name: str = "static keys"):
        self._set = _KeySet(tuple(keys), 0.0)
        self.name = name

    def current(self, deadline: float | None = None) -> _KeySet:
        return self._set

    def refresh(self) -> None:
        return None

    def status(self) -> dict:
        return {"source": self.name, "keys": len(self._set.keys)}


class LocalKeyFile:
    """A JWKS, JWK or PEM file; re-read when it changes (checked at most once a second).

    A file that cannot be read or parsed at start is a :class:`ConfigError`; a
    later bad version is logged and the previous keys are kept.
    """

    CHECK_INTERVAL = 1.0

    def __init__(self, path: str | os.PathLike, *, allow: frozenset[str] | None,
                 max_bytes: int, monotonic: Callable[[], float] = time.monotonic):
        self.path = Path(path)
        self.name = str(path)
        self._allow = allow
        self._max_bytes = max_bytes
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._checked_at = monotonic()
        try:
            self._stamp = self._stat()
            self._set = _KeySet(tuple(self._load()), self._checked_at)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"PDP_JWKS: cannot use {self.name}: {exc}") from None

    def _stat(self) -> tuple:
        st = os.stat(self.path)
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _load(self) -> list[VerificationKey]:
        with open(self.path, "rb") as fh:
            data = fh.read(self._max_bytes + 1)
        if len(data) > self._max_bytes:
            raise ValueError(f"larger than {self._max_bytes} bytes")
        if data.lstrip().startswith(b"-----BEGIN"):
            return [key_from_pem(data, allow=self._allow, source=self.name)]
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError):
            raise ValueError("neither JSON (JWKS or JWK) nor PEM") from None
        return keys_from_document(doc, allow=self._allow, source=self.name, strict=True)

    def current(self, deadline: float | None = None) -> _KeySet:
        if self._monotonic() - self._checked_at >= self.CHECK_INTERVAL:
            self.refresh()
        return self._set

    def refresh(self) -> None:
        now = self._monotonic()
        if now - self._checked_at < self.CHECK_INTERVAL or not self._lock.acquire(blocking=False):
            return
        try:
            self._checked_at = now
            stamp = self._stat()
            if stamp != self._stamp:
                self._set = _KeySet(tuple(self._load()), now)
                self._stamp = stamp
                log.info("reloaded %d key(s) from %s", len(self._set.keys), self.name)
        except (OSError, ValueError) as exc:
            log.warning("keeping the previous keys of %s: %s", self.name, exc)
        finally:
            self._lock.release()

    def status(self) -> dict:
        return {"source": self.name, "keys": len(self._set.keys)}


def _redact_url(url: str) -> str:
    """``scheme://host[:port]/path`` — no credentials, query or fragment (for logs)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


class _NoDowngradeRedirect(urllib.request.HTTPRedirectHandler):
    max_redirections = 3

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102
        if urllib.parse.urlsplit(req.full_url).scheme == "https" and \
                urllib.parse.urlsplit(newurl).scheme != "https":
            raise urllib.error.HTTPError(newurl, code, "refusing a redirect from https "
                                         "to another scheme", headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def http_fetch(url: str, *, timeout: float, max_bytes: int) -> bytes:
    """GET ``url`` within ``timeout`` seconds (overall, not per read), at most ``max_bytes``."""
    deadline = time.monotonic() + timeout
    opener = urllib.request.build_opener(_NoDowngradeRedirect())
    request = urllib.request.Request(url, headers={
        "Accept": "application/jwk-set+json, application/json",
        "User-Agent": "pdp-jwks",
    })
    with opener.open(request, timeout=timeout) as response:
        length = response.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > max_bytes:
            raise ValueError(f"response larger than {max_bytes} bytes")
        chunks, total = [], 0
        while True:
            chunk = response.read(min(65536, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:
                raise ValueError(f"response larger than {max_bytes} bytes")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no complete response within {timeout} s")
    return b"".join(chunks)


class RemoteJwks:
    """A JWKS fetched over HTTP(S), cached, refreshed in a bounded way.

    * The first use fetches the document (waiting at most ``timeout`` seconds).
    * Keys older than ``cache_ttl`` are refreshed in the background; the decision
      goes on with the cached keys.
    * A ``kid`` that no key has triggers a fetch at most once per
      ``refresh_interval`` (every ``min(refresh_interval, 5)`` seconds while no
      key was ever loaded); the decision waits for it at most ``timeout`` seconds.
    * A failed fetch (network, HTTP status, size, parse, no usable key) keeps the
      previous keys: tokens signed with them still verify while the identity
      provider is down; unknown keys stay unknown.
    * Only one fetch runs at a time; it runs in its own daemon thread so that no
      decision waits longer than ``timeout`` whatever the network does.
    """

    def __init__(self, url: str, *, allow: frozenset[str] | None = None,
                 timeout: float = 2.0, refresh_interval: float = 60.0,
                 cache_ttl: float = 300.0, max_bytes: int = 256 * 1024,
                 fetch: Callable[..., bytes] = http_fetch,
                 monotonic: Callable[[], float] = time.monotonic):
        self.url = url
        self.name = _redact_url(url)
        self._allow = allow
        self._timeout = timeout
        self._refresh_interval = refresh_interval
        self._cache_ttl = cache_ttl
        self._max_bytes = max_bytes
        self._fetch = fetch
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._set = _EMPTY
        self._attempted_at = float("-inf")
        self._inflight: threading.Event | None = None
        self.fetches = 0                        # attempts, for status and tests
        self.last_error: str | None = None

    # -- what verification calls

    def current(self, deadline: float | None = None) -> _KeySet:
        """The cached keys; the first use waits for the first fetch until ``deadline``
        (a ``time.monotonic()`` value; default: ``timeout`` from now)."""
        keys = self._set
        if keys is _EMPTY:
            done = self._start_fetch()
            if done is not None:
                if deadline is None:
                    deadline = time.monotonic() + self._timeout
                done.wait(max(0.0, deadline - time.monotonic()))
            return self._set
        now = self._monotonic()
        if now - keys.loaded_at >= self._cache_ttl and \
                now - self._attempted_at >= self._retry_interval():
            self._start_fetch()                 # background; go on with what we have
        return keys

    def refresh(self) -> threading.Event | None:
        """Called on an unknown ``kid``: start a fetch if the rate limit allows (or
        join the running one); the caller waits on the returned event."""
        return self._start_fetch()

    # -- machinery

    def _retry_interval(self) -> float:
        if self._set is _EMPTY:
            return min(self._refresh_interval, 5.0)
        return self._refresh_interval

    def _start_fetch(self) -> threading.Event | None:
        """The running fetch, or a new one if the rate limit allows, else ``None``."""
        with self._lock:
            if self._inflight is not None:
                return self._inflight
            now = self._monotonic()
            if now - self._attempted_at < self._retry_interval():
                return None
            self._attempted_at = now
            self.fetches += 1
            done = self._inflight = threading.Event()
        thread = threading.Thread(target=self._run_fetch, args=(done,), daemon=True,
                                  name=f"pdp-jwks {self.name}")
        thread.start()
        return done

    def _run_fetch(self, done: threading.Event) -> None:
        try:
            body = self._fetch(self.url, timeout=self._timeout, max_bytes=self._max_bytes)
            if len(body) > self._max_bytes:
                raise ValueError(f"response larger than {self._max_bytes} bytes")
            try:
                doc = json.loads(body)
            except (ValueError, RecursionError):
                raise ValueError("the response is not JSON") from None
            if not isinstance(doc, Mapping) or "keys" not in doc:
                raise ValueError("the response is not a JWKS (no 'keys')")
            keys = keys_from_document(doc, allow=self._allow, source=self.name,
                                      strict=False)
        except Exception as exc:               # network, HTTP, size, parse: keep old keys
            self.last_error = f"{type(exc).__name__}: {exc}"[:300]
            log.warning("JWKS fetch from %s failed (%s); keeping %d cached key(s)",
                        self.name, self.last_error, len(self._set.keys))
        else:
            self._set = _KeySet(tuple(keys), self._monotonic())
            self.last_error = None
            log.info("loaded %d key(s) from %s", len(keys), self.name)
        finally:
            with self._lock:
                self._inflight = None
            done.set()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait for a running fetch to end (for start-up warming and tests)."""
        done = self._inflight
        return True if done is None else done.wait(timeout)

    def status(self) -> dict:
        keys = self._set
        age = None if keys is _EMPTY else round(self._monotonic() - keys.loaded_at, 1)
        return {"source": self.name, "keys": len(keys.keys), "age_seconds": age,
                "fetches": self.fetches, "last_error": self.last_error}


# --------------------------------------------------------------------------- settings

@dataclass(frozen=True, slots=True)
class TokenSettings:
    """Token verification settings, as read from the environment.

    =============================  ==========  ==========================================
    variable                       default     meaning
    =============================  ==========  ==========================================
    ``PDP_JWKS``                   (none)      comma-separated JWKS files or ``http(s)``
                                               URLs; a file may also hold one JWK or a
                                               PEM public key / certificate
    ``PDP_JWT_HS_SECRET``          (none)      HMAC secret (≥ 32 bytes), for kid-less
                                               HS256 tokens
    ``PDP_JWT_ISSUER``             (any)       accepted ``iss`` value(s), comma-separated
    ``PDP_JWT_AUDIENCE``           (none)      pdp's audience(s), comma-separated; the
                                               token's ``aud`` must name one
    ``PDP_JWT_LEEWAY``             30          seconds of clock skew for exp/nbf/iat
    ``PDP_JWT_ALGORITHMS``         (keys')     allow-list of algorithms
    ``PDP_JWT_REQUIRED_CLAIMS``    exp,sub     claims every token must carry
    ``PDP_JWKS_TIMEOUT``           2           seconds for one JWKS fetch
    ``PDP_JWKS_REFRESH_INTERVAL``  60          least seconds between fetches
    ``PDP_JWKS_CACHE_TTL``         300         age after which keys are refreshed
                                               in the background
    ``PDP_JWKS_MAX_BYTES``         262144      largest JWKS document
    =============================  ==========  ==========================================
    """

    jwks: tuple[str, ...] = ()
    hs_secret: str | None = field(default=None, repr=False)
    issuer: tuple[str, ...] = ()
    audience: tuple[str, ...] = ()
    leeway: float = 30.0
    algorithms: tuple[str, ...] | None = None
    required_claims: tuple[str, ...] = DEFAULT_REQUIRED_CLAIMS
    jwks_timeout: float = 2.0
    jwks_refresh_interval: float = 60.0
    jwks_cache_ttl: float = 300.0
    jwks_max_bytes: int = 256 * 1024

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> TokenSettings:
        """Settings from ``PDP_JWT_*`` / ``PDP_JWKS*`` over the config file
        (:func:`pdp.config.load_environment`); unset or empty means the default."""
        environ = load_environment(environ)
        algorithms = _list(environ, "PDP_JWT_ALGORITHMS")
        return cls(
            jwks=_list(environ, "PDP_JWKS") or (),
            hs_secret=environ.get("PDP_JWT_HS_SECRET") or None,
            issuer=_list(environ, "PDP_JWT_ISSUER") or (),
            audience=_list(environ, "PDP_JWT_AUDIENCE") or (),
            leeway=_number(environ, "PDP_JWT_LEEWAY", 30.0, zero_ok=True),
            algorithms=algorithms,
            required_claims=_list(environ, "PDP_JWT_REQUIRED_CLAIMS") or DEFAULT_REQUIRED_CLAIMS,
            jwks_timeout=_number(environ, "PDP_JWKS_TIMEOUT", 2.0),
            jwks_refresh_interval=_number(environ, "PDP_JWKS_REFRESH_INTERVAL", 60.0),
            jwks_cache_ttl=_number(environ, "PDP_JWKS_CACHE_TTL", 300.0),
            jwks_max_bytes=int(_number(environ, "PDP_JWKS_MAX_BYTES", 256 * 1024,
                                       integer=True)),
        )


def _list(environ: Mapping[str, str], name: str) -> tuple[str, ...] | None:
    value = environ.get(name)
    if value is None or not value.strip():
        return None
    items = tuple(item.strip() for item in value.split(",") if item.strip())
    return items or None


def _number(environ: Mapping[str, str], name: str, default: float, *,
            zero_ok: bool = False, integer: bool = False) -> float:
    value = environ.get(name)
    if value is None or not value.strip():
        return default
    try:
        number = int(value) if integer else float(value)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {value.strip()!r}") from None
    if not math.isfinite(number) or number < 0 or (number == 0 and not zero_ok):
        raise ConfigError(f"{name} must be a {'non-negative' if zero_ok else 'positive'} "
                          f"number, not {value.strip()!r}")
    return number


# --------------------------------------------------------------------------- verifier

#: A compact JWS's characters: ``raw.translate(None, _B64URL)`` is empty when every
#: byte of ``raw`` is one of them (a C loop, not a Python one over each byte).
_B64URL = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=."


def _is_url(entry: str) -> bool:
    return entry.lower().startswith(("http://", "https://"))


#: Most verified signatures remembered per process (see ``TokenVerifier._verified``).
_VERIFIED_CACHE_SIZE = 10_000


class _FastJWS(jwt.api_jws.PyJWS):
    """PyJWS with its base64url segment check unchanged but for one step: the
    alphabet test runs in C (``bytes.translate``) instead of a Python generator
    over every byte of the token (~20 % of an ES256 verification). Used only with
    the PyJWT version whose check it repeats (:func:`_pyjws`)."""

    @staticmethod
    def _decode_base64url_segment(segment: bytes, name: str) -> bytes:
        padding = 0
        stripped = segment
        while stripped.endswith(b"="):
            stripped = stripped[:-1]
            padding += 1
            if padding > 2:
                raise jwt.exceptions.DecodeError(f"Invalid {name} padding")
        if padding and len(segment) % 4 != 0:
            raise jwt.exceptions.DecodeError(f"Invalid {name} padding")
        if len(stripped) % 4 == 1 or stripped.translate(None, _JWS_ALPHABET):
            raise jwt.exceptions.DecodeError(f"Invalid {name} padding")
        try:
            decoded = jwt.utils.base64url_decode(stripped)
        except (TypeError, binascii.Error) as err:
            raise jwt.exceptions.DecodeError(f"Invalid {name} padding") from err
        if jwt.utils.base64url_encode(decoded) != stripped:
            raise jwt.exceptions.DecodeError(f"Invalid {name} padding")
        return decoded


_JWS_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _pyjws() -> jwt.PyJWS:
    """PyJWT's JWS layer, which verifies signatures: :class:`_FastJWS` when the
    installed PyJWT is the one whose segment check ``_FastJWS`` repeats (2.15.x,
    alphabet unchanged), PyJWT's own ``PyJWS`` otherwise. (pdp checks the claims
    itself, ``TokenVerifier._check_claims``: PyJWT's JWT layer above this one — its
    options, and a claims validation with every check turned off — is not used.)"""
    try:
        if (jwt.__version__.startswith("2.15.")
                and jwt.api_jws._BASE64URL_ALPHABET == _JWS_ALPHABET):
            return _FastJWS()
    except AttributeError:                       # pragma: no cover - another PyJWT
        pass
    return jwt.PyJWS()


class TokenVerifier:
    """Verifies end-user JWTs; thread-safe; build once, call :meth:`verify` often.

    Keyword arguments (all optional; see :class:`TokenSettings` for the
    environment variables behind them):

    ``jwks``               JWKS paths / URLs (a sequence, or one comma-separated string)
    ``hs_secret``          an HMAC secret (str or bytes, ≥ 32 bytes)
    ``keys``               more keys: JWK dicts, JWKS dicts, cryptography public
                           keys, or :class:`VerificationKey` objects
    ``issuer``             accepted issuer(s): a string or a sequence
    ``audience``           pdp's audience(s): a string or a sequence
    ``leeway``             seconds (default 30)
    ``algorithms``         allow-list (default: whatever the keys are bound to)
    ``required_claims``    default ``("exp", "sub")``
    ``jwks_timeout``, ``jwks_refresh_interval``, ``jwks_cache_ttl``, ``jwks_max_bytes``
    ``max_token_bytes``    default 8192
    ``clock``              wall clock for exp/nbf/iat (``time.time``)
    ``monotonic``          clock for JWKS caching (``time.monotonic``)
    ``fetch``              ``fetch(url, timeout=, max_bytes=) -> bytes`` for JWKS URLs

    Configuration errors (bad files, weak or private keys, unknown algorithms)
    raise :class:`~pdp.config.ConfigError` here, not at the first token.
    """

    def __init__(self, *, jwks: str | Sequence[str] = (), hs_secret: str | bytes | None = None,
                 keys: Iterable[Any] = (), issuer: str | Sequence[str] | None = None,
                 audience: str | Sequence[str] | None = None, leeway: float = 30.0,
                 algorithms: str | Sequence[str] | None = None,
                 required_claims: str | Sequence[str] = DEFAULT_REQUIRED_CLAIMS,
                 jwks_timeout: float = 2.0, jwks_refresh_interval: float = 60.0,
                 jwks_cache_ttl: float = 300.0, jwks_max_bytes: int = 256 * 1024,
                 max_token_bytes: int = MAX_TOKEN_BYTES,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic,
                 fetch: Callable[..., bytes] = http_fetch):
        allow = self._allow_list(algorithms)
        self._allowed = allow
        self._issuers = frozenset(_strings(issuer))
        self._audiences = frozenset(_strings(audience))
        if not (isinstance(leeway, (int, float)) and math.isfinite(leeway) and leeway >= 0):
            raise ConfigError("the leeway must be a non-negative number of seconds")
        self._leeway = float(leeway)
        self._required = tuple(dict.fromkeys(_strings(required_claims)))
        self._max_token_bytes = int(max_token_bytes)
        self._clock = clock
        #: Signatures already checked: SHA-256 of the token → (claims, key, kid, alg).
        #: A hit still re-checks every claim (exp, nbf, iss, aud …) against the clock
        #: and that its key is still among the current keys for its kid and alg, so
        #: rotation and expiry act at once; the signature check and the reading of
        #: the header are saved. Raw tokens are not kept.
        self._verified: dict[bytes, tuple[dict, Any, str | None, str]] = {}
        self._jwks_timeout = float(jwks_timeout)
        self._jws = _pyjws()

        sources: list[Any] = []
        static: list[VerificationKey] = []
        if hs_secret:
            try:
                static.append(key_from_secret(hs_secret, allow=allow))
            except ValueError as exc:
                raise ConfigError(f"PDP_JWT_HS_SECRET: {exc}") from None
        for i, item in enumerate(keys):
            try:
                static.extend(self._coerce_keys(item, allow))
            except ValueError as exc:
                raise ConfigError(f"keys[{i}]: {exc}") from None
        if static:
            sources.append(StaticKeys(static))
        for entry in _strings(jwks):
            if _is_url(entry):
                sources.append(RemoteJwks(
                    entry, allow=allow, timeout=jwks_timeout,
                    refresh_interval=jwks_refresh_interval, cache_ttl=jwks_cache_ttl,
                    max_bytes=jwks_max_bytes, fetch=fetch, monotonic=monotonic))
            else:
                sources.append(LocalKeyFile(entry, allow=allow, max_bytes=jwks_max_bytes,
                                            monotonic=monotonic))
        self._sources = tuple(sources)
        self._index: tuple[tuple, tuple[VerificationKey, ...], dict] | None = None

    # -- construction helpers

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> TokenVerifier:
        """From a :class:`TokenSettings` (or any object with the same attributes)."""
        names = ("jwks", "hs_secret", "issuer", "audience", "leeway", "algorithms",
                 "required_claims", "jwks_timeout", "jwks_refresh_interval",
                 "jwks_cache_ttl", "jwks_max_bytes")
        kwargs = {n: getattr(settings, n) for n in names if getattr(settings, n, None) is not None}
        kwargs.update(overrides)
        return cls(**kwargs)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ, **overrides: Any) -> TokenVerifier:
        environ = load_environment(environ)
        with environ.explained():                # a bad file value names its key
            return cls.from_settings(TokenSettings.from_env(environ), **overrides)

    @staticmethod
    def _allow_list(algorithms: str | Sequence[str] | None) -> frozenset[str] | None:
        if algorithms is None:
            return None
        names = _strings(algorithms)
        for name in names:
            if name.lower() == "none":
                raise ConfigError("PDP_JWT_ALGORITHMS: 'none' (unsigned tokens) is never allowed")
            if name not in KNOWN_ALGORITHMS:
                raise ConfigError(f"PDP_JWT_ALGORITHMS: unknown algorithm {name!r} "
                                  f"(known: {', '.join(sorted(KNOWN_ALGORITHMS))})")
        if not names:
            raise ConfigError("PDP_JWT_ALGORITHMS: the allow-list is empty")
        return frozenset(names)

    @staticmethod
    def _coerce_keys(item: Any, allow: frozenset[str] | None) -> list[VerificationKey]:
        if isinstance(item, VerificationKey):
            return [item]
        if isinstance(item, Mapping):
            return keys_from_document(item, allow=allow, source="keys", strict=True)
        return [key_from_public_key(item, allow=allow, source="keys")]

    @property
    def configured(self) -> bool:
        """Whether any key source is configured (else every token is refused)."""
        return bool(self._sources)

    def warm(self, wait: bool = True) -> None:
        """Fetch remote JWKS now (call at start-up); never raises for a fetch failure."""
        for source in self._sources:
            if isinstance(source, RemoteJwks):
                done = source.refresh()
                if wait and done is not None:
                    done.wait(self._jwks_timeout)

    def status(self) -> list[dict]:
        """Per source: name, number of keys, and for remote ones age, fetches, last error."""
        return [source.status() for source in self._sources]

    # -- key selection

    def _keys(self, deadline: float) -> tuple[tuple[VerificationKey, ...],
                                              dict[str, tuple[VerificationKey, ...]]]:
        sets = tuple(source.current(deadline) for source in self._sources)
        cached = self._index
        if cached is not None and len(cached[0]) == len(sets) and \
                all(a is b for a, b in zip(cached[0], sets)):
            return cached[1], cached[2]
        every = tuple(key for s in sets for key in s.keys)
        by_kid: dict[str, tuple[VerificationKey, ...]] = {}
        for key in every:
            if key.kid is not None:
                by_kid[key.kid] = by_kid.get(key.kid, ()) + (key,)
        self._index = (sets, every, by_kid)     # one atomic swap; a race only rebuilds
        return every, by_kid

    def _select(self, kid: str | None, alg: str) -> list[VerificationKey]:
        if not self._sources:
            raise TokenError(UNKNOWN_KEY, "no token verification keys are configured")
        # one bound on the time this decision may wait for remote key sets
        deadline = time.monotonic() + self._jwks_timeout
        every, by_kid = self._keys(deadline)
        if kid is None:
            if len(every) == 1:
                candidates = list(every)
            else:
                candidates = [k for k in every if alg in k.algorithms]
                if len(candidates) > 1:
                    raise TokenError(UNKNOWN_KEY, f"the token has no kid and {len(candidates)} "
                                     f"configured keys accept {alg}; a kid is needed")
            if not candidates:
                if not every:
                    raise TokenError(UNKNOWN_KEY, "no verification key is available")
                raise _invalid(f"no configured key accepts alg {_show(alg)}")
        else:
            candidates = list(by_kid.get(kid, ()))
            if not candidates:
                self._refresh_all(deadline)
                every, by_kid = self._keys(deadline)
                candidates = list(by_kid.get(kid, ()))
            if not candidates:
                raise TokenError(UNKNOWN_KEY, f"no configured key has kid {_show(kid)}")
        fitting = [k for k in candidates if alg in k.algorithms]
        if not fitting:
            bound = ", ".join(sorted(a for k in candidates for a in k.algorithms))
            raise _invalid(f"alg {_show(alg)} does not match the key's algorithm ({bound})")
        return fitting

    def _refresh_all(self, deadline: float) -> None:
        """Refresh every source (each rate-limits itself); wait until ``deadline`` at most."""
        pending = [source.refresh() for source in self._sources]
        for done in pending:
            if done is not None:
                done.wait(max(0.0, deadline - time.monotonic()))

    # -- verification

    def verify(self, token: str) -> dict:
        """The verified claims of ``token``, or :class:`TokenError`."""
        if not isinstance(token, str):
            raise _invalid("the token must be a string")
        if len(token) > self._max_token_bytes:
            raise _invalid(f"the token is larger than {self._max_token_bytes} bytes")
        if not token:
            raise _invalid("the token is empty")
        raw = token.encode()
        digest = hashlib.sha256(raw).digest()
        hit = self._verified.get(digest)
        if hit is not None:
            # This very token passed every check below before: its header (alg, kid)
            # is what it was. Only its key's presence and the claims are re-checked.
            claims, used, kid, alg = hit
            if any(key is used for key in self._select(kid, alg)):
                self._check_claims(claims)
                return dict(claims)
        if not token.isascii() or token.count(".") != 2 or raw.translate(None, _B64URL):
            raise _invalid("the token is not a compact JWS (three base64url parts)")

        header = _read_header(token)
        alg = header.get("alg")
        if not isinstance(alg, str) or not alg:
            raise _invalid("the token header has no alg")
        if alg.strip().lower() == "none":
            raise _invalid("unsigned tokens (alg none) are never accepted")
        if alg not in KNOWN_ALGORITHMS:
            raise _invalid(f"alg {_show(alg)} is not a supported signature algorithm")
        if self._allowed is not None and alg not in self._allowed:
            raise _invalid(f"alg {alg} is not allowed")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise _invalid("the token header's kid must be a string")

        candidates = self._select(kid, alg)
        claims = None
        for key in candidates:
            try:
                decoded = self._jws.decode_complete(token, key.key, algorithms=[alg])
            except jwt.exceptions.InvalidSignatureError:
                continue
            except jwt.exceptions.PyJWTError:
                raise _invalid("the token is malformed") from None
            except Exception as exc:                   # pragma: no cover - defensive
                log.error("unexpected %s while verifying a token", type(exc).__name__)
                raise _invalid("the token could not be verified") from None
            claims = _payload_claims(decoded["payload"])
            used = key
            break
        if claims is None:
            raise TokenError(TOKEN_SIGNATURE, "the token signature does not verify")
        self._check_claims(claims)
        if len(self._verified) >= _VERIFIED_CACHE_SIZE:
            self._verified.clear()
        self._verified[digest] = (claims, used, kid, alg)
        return dict(claims)

    def _check_claims(self, claims: dict) -> None:
        for name in ("exp", "nbf", "iat"):
            if name in claims:
                value = claims[name]
                if type(value) is int:          # noqa: E721 - bool is not a NumericDate
                    continue
                if type(value) is not float or not math.isfinite(value):
                    raise _invalid(f"claim {name} must be a number of seconds (NumericDate)")
        for name in ("iss", "sub", "jti"):
            if name in claims and not isinstance(claims[name], str):
                raise _invalid(f"claim {name} must be a string")
        aud = claims.get("aud")
        if "aud" in claims and not (isinstance(aud, str) or
                                    (isinstance(aud, list) and all(isinstance(a, str) for a in aud))):
            raise _invalid("claim aud must be a string or a list of strings")
        for name in self._required:
            value = claims.get(name)
            if value is None or value == "" or value == []:
                raise _invalid(f"required claim {name} is missing")

        now = self._clock()
        leeway = self._leeway
        if "exp" in claims and claims["exp"] <= now - leeway:
            raise TokenError(TOKEN_EXPIRED, "the token has expired")
        if "nbf" in claims and claims["nbf"] > now + leeway:
            raise TokenError(TOKEN_NOT_YET_VALID, "the token is not valid yet (nbf)")
        if "iat" in claims and claims["iat"] > now + leeway:
            raise TokenError(TOKEN_NOT_YET_VALID, "the token was issued in the future (iat)")

        if self._issuers:
            if "iss" not in claims:
                raise TokenError(TOKEN_ISSUER, "the token has no issuer (iss)")
            if claims["iss"] not in self._issuers:
                raise TokenError(TOKEN_ISSUER, "the token's issuer is not accepted")

        named = [aud] if isinstance(aud, str) else (aud or [])
        named = [a for a in named if a]
        if self._audiences:
            if not named:
                raise TokenError(TOKEN_AUDIENCE, "the token has no audience (aud)")
            if not any(a in self._audiences for a in named):
                raise TokenError(TOKEN_AUDIENCE, "the token is not meant for this audience")
        elif named:
            raise TokenError(TOKEN_AUDIENCE, "the token names an audience but none is "
                             "configured (PDP_JWT_AUDIENCE)")


def _payload_claims(payload: bytes) -> dict:
    """The claims of a verified token's payload: a JSON object (as PyJWT's JWT layer
    reads it: ``json.loads``, then an object or nothing)."""
    try:
        claims = json.loads(payload)
    except (ValueError, RecursionError):
        raise _invalid("the token's payload is not JSON") from None
    if not isinstance(claims, dict):
        raise _invalid("the token's payload is not a JSON object")
    return claims


def _read_header(token: str) -> dict:
    """The JOSE header, for key selection only (pyjwt re-reads it when verifying).

    The caller has checked that the token is ASCII in the base64url alphabet.
    """
    segment = token[: token.index(".")]
    body = segment.rstrip("=")
    if len(segment) - len(body) > 2 or "=" in body or len(body) % 4 == 1:
        raise _invalid("the token header is malformed")
    try:
        header = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (ValueError, RecursionError):
        raise _invalid("the token header is malformed") from None
    if not isinstance(header, dict):
        raise _invalid("the token header is not a JSON object")
    return header


def _strings(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """A comma-separated string or a sequence of strings → stripped, non-empty items."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    out = []
    for item in items:
        if not isinstance(item, str):
            raise ConfigError(f"expected strings, got {type(item).__name__}")
        if item.strip():
            out.append(item.strip())
    return tuple(out)


# --------------------------------------------------------------------------- dev tokens

DEV_SIGNING_KEY = "dev-signing-key.json"
DEV_JWKS = "dev-jwks.json"
DEV_ALGORITHM = "ES256"


class DevModeRequired(PdpError):
    """Minting development tokens outside development mode."""

    code = "dev_mode_required"


def dev_mode(environ: Mapping[str, str] = os.environ) -> bool:
    """``PDP_DEV_MODE`` is ``1``, ``true``, ``yes`` or ``on``."""
    return environ.get("PDP_DEV_MODE", "").strip().lower() in ("1", "true", "yes", "on")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint of a public EC, RSA, OKP or oct JWK."""
    members = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"),
               "OKP": ("crv", "kty", "x"), "oct": ("k", "kty")}[jwk["kty"]]
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return _b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


def _write_atomically(path: Path, text: str, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@dataclass(frozen=True, slots=True)
class DevSigningKey:
    kid: str
    private_jwk: dict = field(repr=False)
    public_jwk: dict
    key_path: Path
    jwks_path: Path

    def pyjwk(self) -> jwt.PyJWK:
        return jwt.PyJWK(self.private_jwk, DEV_ALGORITHM)


def dev_signing_key(var_dir: str | os.PathLike = "var") -> DevSigningKey:
    """Load (or create on first use) the development signing key.

    ``var/dev-signing-key.json``: an EC P-256 private JWK, mode 0600, created
    exclusively so that two first uses cannot race. ``var/dev-jwks.json``: its public
    JWKS, (re)written whenever it does not match, for ``PDP_JWKS=var/dev-jwks.json``.
    """
    var = Path(var_dir)
    var.mkdir(parents=True, exist_ok=True)
    key_path, jwks_path = var / DEV_SIGNING_KEY, var / DEV_JWKS
    if not key_path.exists():
        private = ec.generate_private_key(ec.SECP256R1())
        jwk = jwt.algorithms.ECAlgorithm.to_jwk(private, as_dict=True)
        public = {m: jwk[m] for m in ("kty", "crv", "x", "y")}
        jwk.update(kid=jwk_thumbprint(public), alg=DEV_ALGORITHM, use="sig")
        try:
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass                               # another process won the race; use its key
        else:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(jwk, fh, indent=2)
                fh.write("\n")
    try:
        private_jwk = json.loads(key_path.read_text(encoding="utf-8"))
        public_jwk = {m: private_jwk[m] for m in ("kty", "crv", "x", "y")}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PdpError(f"{key_path} is not a usable EC P-256 private JWK ({exc}); "
                       f"delete it to create a new development key",
                       code="dev_key_invalid") from None
    kid = private_jwk.get("kid") or jwk_thumbprint(public_jwk)
    public_jwk.update(kid=kid, alg=DEV_ALGORITHM, use="sig")
    private_jwk.update(kid=kid)
    text = json.dumps({"keys": [public_jwk]}, indent=2) + "\n"
    try:
        current = jwks_path.read_text(encoding="utf-8")
    except OSError:
        current = None
    if current != text:
        _write_atomically(jwks_path, text, 0o644)
    return DevSigningKey(kid=kid, private_jwk=private_jwk, public_jwk=public_jwk,
                         key_path=key_path, jwks_path=jwks_path)


def parse_claim(text: str) -> tuple[str, Any]:
    """``k=v`` from ``--claim``: the value is JSON when it parses (``3``, ``true``,
    ``["a"]``, ``"007"``), else the plain string."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise PdpError(f"--claim expects NAME=VALUE, not {text!r}", code="invalid_argument")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return name, value


def mint_dev_token(*, sub: str, roles: Iterable[str] = (), claims: Mapping[str, Any] | None = None,
                   ttl: int = 3600, issuer: str | None = None, audience: str | None = None,
                   var_dir: str | os.PathLike = "var", dev: bool = False,
                   environ: Mapping[str, str] = os.environ,
                   clock: Callable[[], float] = time.time) -> str:
    """A development token for ``sub`` signed with the development key.

    Claims: ``sub``, ``roles`` (a list), ``iat``, ``exp`` (``iat + ttl``), ``jti``,
    ``iss``/``aud`` (given, else the first of ``PDP_JWT_ISSUER``/``PDP_JWT_AUDIENCE``
    when set, so the token passes the configured checks), then ``claims``, which may
    override any of them (``exp=1`` mints an expired token for testing).
    Refuses with :class:`DevModeRequired` unless ``dev`` or ``PDP_DEV_MODE=1``.
    """
    if not (dev or dev_mode(environ)):
        raise DevModeRequired("development tokens are minted only in development mode "
                              "(PDP_DEV_MODE=1 or --dev)")
    if not isinstance(sub, str) or not sub:
        raise PdpError("--sub must be a non-empty string", code="invalid_argument")
    if not isinstance(ttl, int) or isinstance(ttl, bool) or ttl <= 0:
        raise PdpError("--ttl must be a positive number of seconds", code="invalid_argument")
    key = dev_signing_key(var_dir)
    now = int(clock())
    payload: dict[str, Any] = {"sub": sub, "roles": [r for r in roles if r],
                               "iat": now, "exp": now + ttl, "jti": uuid.uuid4().hex}
    issuer = issuer or (_list(environ, "PDP_JWT_ISSUER") or (None,))[0]
    audience = audience or (_list(environ, "PDP_JWT_AUDIENCE") or (None,))[0]
    if issuer:
        payload["iss"] = issuer
    if audience:
        payload["aud"] = audience
    payload.update(claims or {})
    return jwt.encode(payload, key.pyjwk(), algorithm=DEV_ALGORITHM,
                      headers={"kid": key.kid, "typ": "JWT"})
