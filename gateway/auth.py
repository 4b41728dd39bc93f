"""Early token checks: a token the services would refuse is refused here, and a verified token
names the subject that the rate limit counts.

A malformed `Authorization` header, a bad signature, an expired token: refused on every route
before any call. A request without a token is refused too, unless the contract marks the
method anonymous (`option (asan.common.v1.access).anonymous = true`: the payment catalogue, a
foreign applicant confirming a payment with its secret), exactly as the service would.

The gateway verifies tokens with the same key and rules as the services
(`services.runtime.auth`), which still verify every call themselves. Keying the rate limit
on a verified subject, not on whatever `sub` a request claims, is what stops anyone from
spending another citizen's allowance with a forged token. A verified token is remembered
until it expires, so that a busy frontend costs one signature check per token, not per call.
"""

from __future__ import annotations

import base64
import json
import time
from collections import OrderedDict
from dataclasses import dataclass

from services.runtime.auth import Principal, TokenRejection, TokenVerifier, bearer_token, unauthenticated
from services.runtime.errors import Unauthenticated

CACHE_SIZE = 10_000

# Token errors in the words of HTTP. The services' own messages for these two speak of gRPC
# metadata, which means nothing to an HTTP client: the gateway, which refuses every missing or
# malformed token before a service sees it, says "Authorization header" instead. The reasons
# stay the services' own.
HTTP_MESSAGES = {
    TokenRejection.MISSING.value: "This route needs an `Authorization: Bearer <token>` header.",
    TokenRejection.MALFORMED.value: (
        "The Authorization header must be `Bearer <token>` with a JWT access token."
    ),
}


def in_http_words(error: Unauthenticated) -> Unauthenticated:
    """The same refusal, with the HTTP message where the services' speaks of metadata."""
    message = HTTP_MESSAGES.get(error.reason)
    if message is None:
        return error
    return Unauthenticated(message=message, reason=error.reason, metadata=error.metadata)


@dataclass(frozen=True)
class Caller:
    principal: Principal
    expires_at: float

    @property
    def key(self) -> str:
        """The rate-limit key of the caller: kind and subject."""
        return f"{self.principal.kind.value}:{self.principal.subject}"


def _expiry(token: str) -> float:
    """`exp` of a token whose signature has been verified (so reading it unverified is safe)."""
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return float(claims["exp"])


class TokenGate:
    def __init__(self, verifier: TokenVerifier, cache_size: int = CACHE_SIZE) -> None:
        self.verifier = verifier
        self.cache_size = cache_size
        self._verified: OrderedDict[str, Caller] = OrderedDict()

    def check(self, authorization: str | None, *, anonymous: bool) -> Caller | None:
        """The verified caller of an `Authorization` header, None without one on an anonymous
        method; raises Unauthenticated (with the services' reasons) where they would."""
        try:
            return self._verified_caller(authorization, anonymous=anonymous)
        except Unauthenticated as error:
            raise in_http_words(error) from None

    def _verified_caller(self, authorization: str | None, *, anonymous: bool) -> Caller | None:
        if authorization is None or not authorization.strip():
            if anonymous:
                return None
            raise unauthenticated(TokenRejection.MISSING)
        token = bearer_token(authorization)
        cached = self._verified.get(token)
        if cached is not None:
            if time.time() < cached.expires_at + self.verifier.leeway_seconds:
                self._verified.move_to_end(token)
                return cached
            del self._verified[token]
        principal = self.verifier.verify(token)
        caller = Caller(principal, _expiry(token))
        self._verified[token] = caller
        if len(self._verified) > self.cache_size:
            self._verified.popitem(last=False)
        return caller
