"""The HTTP client of pdp: :class:`PdpClient`, :class:`Decision`, :class:`PdpUnavailable`.

Standard library only (``http.client``, ``json``): a service that only asks pdp
for decisions installs nothing else.

Fail closed
    Every failure to obtain a well-formed answer — connection refused, DNS
    failure, timeout, a 5xx, a 4xx (a wrong key, a malformed request), a body
    that is not the documented JSON — is a ``deny`` :class:`Decision` whose
    ``errors`` name the failure (``pdp_unavailable``, ``pdp_refused``,
    ``pdp_malformed_answer``) and whose ``decision_id`` is ``None``; or, with
    ``raise_on_error=True``, a :class:`PdpUnavailable`. Never an allow.

Retries
    ``POST /v1/decide`` has no side effect except its audit record, so repeating
    a request is safe; a repeat at worst adds a second record of the same
    question, with its own decision id (the answer used is the last one). pdp
    still only repeats where the first attempt cannot have been decided or was
    refused before deciding:

    * the connection could not be made (refused, reset, DNS): nothing was sent;
    * the answer was 502, 503 or 504 (a proxy, or pdp saying it could not decide
      or record the decision);
    * a kept-alive connection from the pool turned out closed by the server when
      the request was written or before any byte of the answer (it is retried
      once on a new connection, not counted in ``retries``).

    A timeout is never repeated: ``timeout`` is the budget of the whole call,
    attempts and back-off included.
"""

from __future__ import annotations

import http.client
import json
import queue
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

__all__ = ["Decision", "PdpClient", "PdpUnavailable", "TOKEN_ERROR_CODES",
           "resource", "bearer_token"]

#: Error codes pdp gives when the end user's token was refused.
TOKEN_ERROR_CODES = frozenset({
    "token_audience", "token_expired", "token_invalid", "token_issuer",
    "token_not_yet_valid", "token_signature", "unknown_key"})

#: Statuses after which a request is repeated.
RETRY_STATUSES = frozenset({502, 503, 504})

_USER_AGENT = "pdp-client/0.1"


class PdpUnavailable(Exception):
    """No usable decision could be obtained (only raised with ``raise_on_error``).

    ``code`` is ``pdp_unavailable`` (transport, timeout, 5xx), ``pdp_refused``
    (a 4xx: wrong key, key without the role, malformed request, unknown set) or
    ``pdp_malformed_answer``; ``status`` the HTTP status when there was one.
    """

    def __init__(self, message: str, *, code: str = "pdp_unavailable",
                 status: int | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


@dataclass(frozen=True, slots=True)
class Decision:
    """One decision as pdp answered it (or a fail-closed ``deny``).

    ``errors`` are ``{code, message[, policy]}``; ``decision_id`` is ``None`` for
    a deny made by the client itself because pdp could not be asked.
    """

    decision: str
    decision_id: str | None
    policies: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    errors: tuple[Mapping[str, Any], ...] = ()
    policy_set: str | None = None
    policy_version: int | None = None

    @property
    def allowed(self) -> bool:
        return self.decision == "allow"

    def __bool__(self) -> bool:            # ``if client.decide(...)``: allowed
        return self.allowed

    @property
    def token_error(self) -> str | None:
        """The code of the end-user token error, or ``None``."""
        for error in self.errors:
            if error.get("policy") is None and error.get("code") in TOKEN_ERROR_CODES:
                return error["code"]
        return None

    @property
    def unavailable(self) -> bool:
        """True when this deny was made by the client because pdp could not answer."""
        return self.decision_id is None

    @classmethod
    def failed(cls, code: str, message: str) -> Decision:
        return cls(decision="deny", decision_id=None,
                   errors=({"code": code, "message": message},))

    @classmethod
    def from_dict(cls, body: Any) -> Decision:
        """From one answer of ``/v1/decide``; :class:`ValueError` if malformed."""
        if not isinstance(body, dict):
            raise ValueError("the decision is not a JSON object")
        decision, decision_id = body.get("decision"), body.get("decision_id")
        if decision not in ("allow", "deny"):
            raise ValueError(f"decision: {decision!r} is neither allow nor deny")
        if not isinstance(decision_id, str) or not decision_id:
            raise ValueError("decision_id: missing")
        policies, reasons, errors = (body.get(k, []) for k in ("policies", "reasons", "errors"))
        if not (isinstance(policies, list) and all(isinstance(p, str) for p in policies)):
            raise ValueError("policies: not a list of strings")
        if not (isinstance(reasons, list) and all(isinstance(r, str) for r in reasons)):
            raise ValueError("reasons: not a list of strings")
        if not (isinstance(errors, list) and all(isinstance(e, dict) for e in errors)):
            raise ValueError("errors: not a list of objects")
        version = body.get("policy_version")
        return cls(decision=decision, decision_id=decision_id, policies=tuple(policies),
                   reasons=tuple(reasons), errors=tuple(errors),
                   policy_set=body.get("policy_set"),
                   policy_version=version if isinstance(version, int) else None)

    def to_dict(self) -> dict:
        return {"decision": self.decision, "decision_id": self.decision_id,
                "policy_set": self.policy_set, "policy_version": self.policy_version,
                "policies": list(self.policies), "reasons": list(self.reasons),
                "errors": [dict(e) for e in self.errors]}


def resource(type: str, id: str, **attributes: Any) -> dict:
    """``{"type", "id", "attributes"}`` — a resource as pdp takes it."""
    out: dict[str, Any] = {"type": type, "id": str(id)}
    if attributes:
        out["attributes"] = attributes
    return out


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer …`` header value, or ``None``."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def _subject(token: str | None, claims: Mapping[str, Any] | None) -> dict:
    if (token is None) == (claims is None):
        raise TypeError("give exactly one of token= and claims=")
    return {"token": token} if token is not None else {"claims": dict(claims or {})}


def _check(action: str | Mapping[str, Any], resource: Mapping[str, Any]) -> dict:
    if not isinstance(action, (str, Mapping)):
        raise TypeError("action: a name, or {'name', 'attributes'}")
    if not isinstance(resource, Mapping):
        raise TypeError("resource: {'type', 'id', 'attributes'}")
    return {"action": action if isinstance(action, str) else dict(action),
            "resource": dict(resource)}


class _Failure(Exception):
    """One failed attempt: ``retry`` says whether repeating it is safe."""

    def __init__(self, message: str, code: str = "pdp_unavailable", *,
                 status: int | None = None, retry: bool = False):
        super().__init__(message)
        self.message, self.code, self.status, self.retry = message, code, status, retry


class _Pool:
    """Kept-alive connections to one host, at most ``size`` idle ones kept."""

    def __init__(self, scheme: str, host: str, port: int | None, size: int, ssl_context):
        self.scheme, self.host, self.port = scheme, host, port
        self.ssl_context = ssl_context
        self._idle: queue.LifoQueue = queue.LifoQueue(maxsize=size)
        self._closed = False

    def new(self, timeout: float) -> http.client.HTTPConnection:
        if self.scheme == "https":
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout,
                                               context=self.ssl_context)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def get(self) -> http.client.HTTPConnection | None:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            return None

    def put(self, conn: http.client.HTTPConnection) -> None:
        if self._closed:
            conn.close()
            return
        try:
            self._idle.put_nowait(conn)
        except queue.Full:
            conn.close()

    def close(self) -> None:
        self._closed = True
        while (conn := self.get()) is not None:
            conn.close()


class PdpClient:
    """Asks a pdp service for decisions; thread-safe; build one per process.

    ``base_url``   e.g. ``https://pdp.internal:8080`` (a path prefix is kept)
    ``api_key``    the calling service's key (role ``decide``)
    ``timeout``    seconds for a whole call, retries included (default 2)
    ``retries``    repeats after a failure that is safe to repeat (default 2)
    ``backoff``    first pause between attempts, doubled each time (default 0.05 s)
    ``policy_set`` the default policy set (``None``: pdp's ``default``)
    ``pool_size``  idle kept-alive connections kept (default 10)
    ``raise_on_error``  the default for every call (see the module docstring)
    """

    def __init__(self, base_url: str, api_key: str, *, timeout: float = 2.0,
                 retries: int = 2, backoff: float = 0.05, policy_set: str | None = None,
                 pool_size: int = 10, raise_on_error: bool = False, ssl_context=None):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must be an http(s) URL, not {base_url!r}")
        if timeout <= 0 or retries < 0:
            raise ValueError("timeout must be positive and retries not negative")
        self.base_url = base_url.rstrip("/")
        self._prefix = parts.path.rstrip("/")
        self._host_header = parts.netloc.rpartition("@")[2]
        self._api_key = api_key
        self.timeout, self.retries, self.backoff = float(timeout), int(retries), float(backoff)
        self.policy_set = policy_set
        self.raise_on_error = raise_on_error
        self._pool = _Pool(parts.scheme, parts.hostname, parts.port, pool_size, ssl_context)

    def __repr__(self) -> str:                  # never the key
        return f"PdpClient({self.base_url!r})"

    # ------------------------------------------------------------------ deciding

    def decide(self, action: str | Mapping[str, Any], resource: Mapping[str, Any], *,
               token: str | None = None, claims: Mapping[str, Any] | None = None,
               context: Mapping[str, Any] | None = None, policy_set: str | None = None,
               raise_on_error: bool | None = None) -> Decision:
        """One decision: ``action`` (a name or ``{name, attributes}``) on
        ``resource`` (``{type, id, attributes}``) for the end user of ``token``
        (or, for keys with ``trusted_claims``, ``claims``)."""
        body = {"subject": _subject(token, claims), **_check(action, resource)}
        self._common(body, context, policy_set)
        try:
            return Decision.from_dict(self._post("/v1/decide", body))
        except ValueError as exc:
            return self._fail(_Failure(f"pdp's answer is malformed: {exc}",
                                       "pdp_malformed_answer"), raise_on_error)
        except _Failure as exc:
            return self._fail(exc, raise_on_error)

    def decide_batch(self, checks: Iterable[Any], *, token: str | None = None,
                     claims: Mapping[str, Any] | None = None,
                     context: Mapping[str, Any] | None = None, policy_set: str | None = None,
                     raise_on_error: bool | None = None) -> list[Decision]:
        """One decision per check, in order, with one request. A check is
        ``(action, resource)`` or ``{"action": …, "resource": …}``. On failure
        every decision is a fail-closed deny (or :class:`PdpUnavailable`)."""
        checks = [_check(c["action"], c["resource"]) if isinstance(c, Mapping) else _check(*c)
                  for c in checks]
        if not checks:
            return []
        body: dict[str, Any] = {"subject": _subject(token, claims), "checks": checks}
        self._common(body, context, policy_set)
        try:
            answer = self._post("/v1/decide/batch", body)
            if not isinstance(answer, dict) or not isinstance(answer.get("decisions"), list):
                raise ValueError("decisions: missing")
            if len(answer["decisions"]) != len(checks):
                raise ValueError(f"{len(answer['decisions'])} decisions for {len(checks)} checks")
            return [Decision.from_dict(d) for d in answer["decisions"]]
        except ValueError as exc:
            failure = _Failure(f"pdp's answer is malformed: {exc}", "pdp_malformed_answer")
        except _Failure as exc:
            failure = exc
        denied = self._fail(failure, raise_on_error)
        return [denied] * len(checks)

    def allowed(self, action: str | Mapping[str, Any], resource: Mapping[str, Any],
                **kwargs: Any) -> bool:
        """Whether pdp allows it; ``False`` whenever pdp cannot say."""
        return self.decide(action, resource, **kwargs).allowed

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> PdpClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ HTTP

    def _common(self, body: dict, context, policy_set) -> None:
        if context is not None:
            body["context"] = dict(context)
        policy_set = policy_set or self.policy_set
        if policy_set is not None:
            body["policy_set"] = policy_set

    def _fail(self, failure: _Failure, raise_on_error: bool | None) -> Decision:
        if self.raise_on_error if raise_on_error is None else raise_on_error:
            raise PdpUnavailable(failure.message, code=failure.code,
                                 status=failure.status) from None
        return Decision.failed(failure.code, failure.message)

    def _post(self, path: str, body: dict) -> Any:
        payload = json.dumps(body, separators=(",", ":")).encode("utf-8")
        deadline = time.monotonic() + self.timeout
        pause = self.backoff
        attempt = 0
        while True:
            try:
                return self._attempt(self._prefix + path, payload, deadline)
            except _Failure as exc:
                left = deadline - time.monotonic()
                if not exc.retry or attempt >= self.retries or left <= pause:
                    raise
            attempt += 1
            time.sleep(pause)
            pause *= 2

    def _attempt(self, path: str, payload: bytes, deadline: float) -> Any:
        headers = {"Content-Type": "application/json", "Accept": "application/json",
                   "Authorization": f"Bearer {self._api_key}", "User-Agent": _USER_AGENT,
                   "Host": self._host_header}
        reused = self._pool.get()
        for conn in ([reused] if reused is not None else []) + [None]:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _Failure(f"pdp did not answer within {self.timeout:g} s")
            fresh = conn is None
            if fresh:
                conn = self._pool.new(left)
                try:
                    conn.connect()
                except (socket.timeout, TimeoutError):
                    conn.close()
                    raise _Failure(f"pdp did not accept a connection within "
                                   f"{self.timeout:g} s") from None
                except OSError as exc:        # refused, unreachable, DNS: nothing sent
                    conn.close()
                    raise _Failure(f"pdp could not be reached: {exc}", retry=True) from None
            conn.timeout = left
            if conn.sock is not None:
                conn.sock.settimeout(left)
            try:
                conn.request("POST", path, body=payload, headers=headers)
                response = conn.getresponse()
                raw = response.read()
            except (socket.timeout, TimeoutError):
                conn.close()
                raise _Failure(f"pdp did not answer within {self.timeout:g} s") from None
            except ConnectionRefusedError as exc:      # (re)connecting: nothing was sent
                conn.close()
                raise _Failure(f"pdp could not be reached: {exc}", retry=True) from None
            except (http.client.RemoteDisconnected, BrokenPipeError,
                    ConnectionResetError) as exc:
                conn.close()
                if not fresh:            # a stale kept-alive connection: try a new one
                    continue
                raise _Failure(f"pdp closed the connection: {exc}") from None
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise _Failure(f"pdp could not be asked: {exc}") from None
            if response.will_close:
                conn.close()
            else:
                self._pool.put(conn)
            return self._answer(response.status, raw)
        raise AssertionError("unreachable")        # pragma: no cover

    @staticmethod
    def _answer(status: int, raw: bytes) -> Any:
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if status == 200:
            if body is None:
                raise _Failure("pdp's answer is not JSON", "pdp_malformed_answer", status=200)
            return body
        error = body.get("error") if isinstance(body, dict) else None
        detail = ""
        if isinstance(error, dict):
            detail = f": {error.get('code')}: {error.get('message')}"
        if status >= 500:
            raise _Failure(f"pdp answered {status}{detail}", status=status,
                           retry=status in RETRY_STATUSES)
        raise _Failure(f"pdp refused the request ({status}){detail}", "pdp_refused",
                       status=status)
