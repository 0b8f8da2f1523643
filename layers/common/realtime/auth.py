"""Who is connecting: token verification and the origin check for `$connect`.

Tokens are JWTs in the `token` query parameter (browsers cannot set handshake headers).
HS256 with a shared secret (`JWT_SECRET`, or a Secrets Manager secret whose AWSCURRENT and
AWSPREVIOUS versions both verify), or RS256 from an OIDC issuer's JWKS (e.g. a Cognito user
pool). Only the configured algorithm is accepted, never `none`. Where the keys come from,
and how long they are trusted, is `realtime.signing_keys`.
"""

from __future__ import annotations

import math
import time
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from realtime.config import (
    DEFAULT_JWKS_CACHE_SECONDS,
    DEFAULT_JWKS_MIN_REFETCH_SECONDS,
    DEFAULT_JWT_MAX_AGE_SECONDS,
    JWKS_TIMEOUT_SECONDS,
    ConfigurationError,
    Settings,
    jwks_url_for,
)

if TYPE_CHECKING:
    from realtime.signing_keys import JwksKeys, SecretSource

LEEWAY_SECONDS = 30
MAX_USER_ID_CHARS = 256
MAX_NAME_CHARS = 64
#: Characters that render as nothing, or reorder or break what follows (bidi overrides,
#: zero-width joiners, controls, line separators, private-use and unassigned code points).
INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


@dataclass(frozen=True)
class Identity:
    """The verified caller: a user, or anonymous (`user_id` None)."""

    user_id: str | None = None
    name: str | None = None

    @property
    def anonymous(self) -> bool:
        return self.user_id is None


ANONYMOUS = Identity()


class AuthError(Exception):
    """The handshake is refused with `status` (401 bad token, 403 origin)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class TokenVerifier:
    """Verifies tokens against exactly one configured key source, and the token policy:
    `sub` and `exp` required, `iss`/`aud`/`token_use` when configured, a capped lifetime."""

    def __init__(self, *, secret: str = "", secrets: SecretSource | None = None, issuer: str = "",
                 audience: str = "", jwks_url: str = "", token_use: str = "",
                 max_age: int = DEFAULT_JWT_MAX_AGE_SECONDS, leeway: int = LEEWAY_SECONDS,
                 jwks_cache_seconds: int = DEFAULT_JWKS_CACHE_SECONDS,
                 jwks_min_refetch_seconds: int = DEFAULT_JWKS_MIN_REFETCH_SECONDS,
                 jwks_timeout: float = JWKS_TIMEOUT_SECONDS, clock: Callable[[], float] = time.time) -> None:
        self._issuer = issuer
        self._audience = audience
        self._token_use = token_use
        self._max_age = max_age
        self._leeway = min(leeway, LEEWAY_SECONDS)
        self._clock = clock
        self._secrets: SecretSource | None = None
        self._jwks: JwksKeys | None = None
        if secret or secrets is not None or issuer:
            # Imported here, not at module level: PyJWT pulls in `cryptography` (about 30 ms
            # of cold start, docs/performance.md), and only `$connect` verifies tokens.
            from realtime import signing_keys

            if secret:
                self._secrets = signing_keys.LiteralSecret(secret)
            elif secrets is not None:
                self._secrets = secrets
            else:
                self._jwks = signing_keys.JwksKeys(jwks_url_for(issuer, jwks_url), lifespan=jwks_cache_seconds,
                                                   min_refetch=jwks_min_refetch_seconds, timeout=jwks_timeout,
                                                   clock=clock)

    @classmethod
    def from_settings(cls, settings: Settings, secrets_client: Any = None,
                      clock: Callable[[], float] = time.time) -> TokenVerifier:
        """Build from settings; with only `JWT_SECRET_ARN`, reads the secret now (cold start)."""
        secrets = None
        if not settings.jwt_secret and settings.jwt_secret_arn:
            if secrets_client is None:
                raise ConfigurationError("JWT_SECRET_ARN is set but no Secrets Manager client was given")
            from realtime.signing_keys import SecretsManagerSecret

            secrets = SecretsManagerSecret(secrets_client, settings.jwt_secret_arn,
                                           lifespan=settings.jwt_secret_cache_seconds, clock=clock)
            secrets.load()
        return cls(secret=settings.jwt_secret, secrets=secrets, issuer=settings.jwt_issuer,
                   audience=settings.jwt_audience, jwks_url=settings.jwks_url, token_use=settings.jwt_token_use,
                   max_age=settings.jwt_max_age_seconds, jwks_cache_seconds=settings.jwks_cache_seconds,
                   jwks_min_refetch_seconds=settings.jwks_min_refetch_seconds, clock=clock)

    @property
    def configured(self) -> bool:
        return self._secrets is not None or self._jwks is not None

    @property
    def jwks(self) -> JwksKeys | None:
        """The issuer's key set client, when tokens are RS256."""
        return self._jwks

    def verify(self, token: str) -> Identity:
        """Return the token's identity or raise `AuthError(401)`."""
        if not self.configured:
            raise AuthError(401, "this deployment accepts no tokens")
        import jwt

        from realtime.signing_keys import KeysUnavailable

        try:
            claims = self._decode(token)
        except KeysUnavailable:
            raise AuthError(401, "signing keys unavailable") from None
        except jwt.PyJWTError as exc:
            raise AuthError(401, f"invalid token: {type(exc).__name__}") from None
        self._check_policy(claims)
        return _identity(claims)

    def _decode(self, token: str) -> dict[str, Any]:
        import jwt

        # Cognito's access tokens carry no `aud`: the app client id is their `client_id`.
        audience_in_aud = bool(self._audience) and self._token_use != "access"
        options: dict[str, Any] = {"require": ["sub", "exp"], "verify_aud": audience_in_aud,
                                   "verify_iss": bool(self._issuer), "enforce_minimum_key_length": True}
        kwargs: dict[str, Any] = {"leeway": self._leeway, "options": options}
        if audience_in_aud:
            kwargs["audience"] = self._audience
        if self._issuer:
            kwargs["issuer"] = self._issuer
        if self._jwks is not None:
            header = jwt.get_unverified_header(token)
            kid = header.get("kid")
            if header.get("alg") != "RS256" or not isinstance(kid, str) or not kid:
                # Refused before any key lookup: such a token cannot verify, so it must not cost a fetch.
                raise jwt.InvalidAlgorithmError("an RS256 token with a kid is required")
            return jwt.decode(token, self._jwks.signing_key(kid), algorithms=["RS256"], **kwargs)
        source = self._secrets
        if source is None:
            raise AuthError(401, "this deployment accepts no tokens")
        # Held secrets first; when none matches, the secret may have been rotated since it was
        # read: Secrets Manager is read again (at most once a minute) and tried once more.
        claims = source.find(lambda secrets: _decode_with_any(token, secrets, kwargs))
        if claims is None:
            raise jwt.InvalidSignatureError("signature verification failed")
        return claims

    def _check_policy(self, claims: Mapping[str, Any]) -> None:
        """What PyJWT does not check: `token_use`, `client_id`, strict dates, the lifetime cap."""
        if self._token_use and claims.get("token_use") != self._token_use:
            raise AuthError(401, "invalid token: wrong token_use")
        if self._audience and self._token_use == "access" and claims.get("client_id") != self._audience:
            raise AuthError(401, "invalid token: wrong client_id")
        exp = _numeric_date(claims, "exp")
        iat = _numeric_date(claims, "iat")
        _numeric_date(claims, "nbf")
        start = iat if iat is not None else self._clock()
        if exp is not None and exp - start > self._max_age:
            raise AuthError(401, "invalid token: lifetime over JWT_MAX_AGE_SECONDS")


def _decode_with_any(token: str, secrets: tuple[str, ...], kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """The claims, verified with the first secret whose signature matches (AWSCURRENT, then
    AWSPREVIOUS); None when none does. Any other failure (expired...) raises."""
    import jwt

    for secret in secrets:
        try:
            return jwt.decode(token, secret, algorithms=["HS256"], **kwargs)
        except jwt.InvalidSignatureError:
            continue
    return None


def _numeric_date(claims: Mapping[str, Any], name: str) -> float | None:
    """RFC 7519's NumericDate is a JSON number: PyJWT also takes strings and booleans."""
    if name not in claims:
        return None
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise AuthError(401, f"invalid token: {name} is not a number")
    return float(value)


def _identity(claims: Mapping[str, Any]) -> Identity:
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub or len(sub) > MAX_USER_ID_CHARS or not _visible(sub):
        raise AuthError(401, "invalid token: bad sub")
    return Identity(sub, clean_name(claims.get("name")))


def _visible(text: str) -> bool:
    return all(unicodedata.category(ch) not in INVISIBLE_CATEGORIES for ch in text)


def clean_name(name: object) -> str | None:
    """The display name as others will see it, or None.

    NFKC (full-width and other compatibility look-alikes fold to their plain form), every
    kind of space or line break becomes one space, invisible and reordering characters
    (`INVISIBLE_CATEGORIES`: a right-to-left override could make "Alice" display as another
    name) are dropped, and the result is capped at `MAX_NAME_CHARS` characters. The user id
    is refused, not cleaned (`_identity`): rewriting it could merge two users.
    """
    if not isinstance(name, str):
        return None
    kept = []
    for ch in unicodedata.normalize("NFKC", name):
        if ch.isspace():
            kept.append(" ")
        elif unicodedata.category(ch) not in INVISIBLE_CATEGORIES:
            kept.append(ch)
    cleaned = " ".join("".join(kept).split())[:MAX_NAME_CHARS].rstrip()
    return cleaned or None


def check_origin(headers: Mapping[str, str] | None, allowed: tuple[str, ...]) -> None:
    """Raise `AuthError(403)` for an `Origin` outside `allowed` (when any are configured).

    A handshake without `Origin` is accepted: browsers always send one, so its absence
    means a non-browser client, which the origin check does not defend against.
    """
    if not allowed:
        return
    origin = next((v for k, v in (headers or {}).items() if k.lower() == "origin"), None)
    if origin is None:
        return
    if origin.rstrip("/") not in allowed:
        raise AuthError(403, "origin not allowed")


def authenticate(query: Mapping[str, str] | None, headers: Mapping[str, str] | None,
                 verifier: TokenVerifier, allowed_origins: tuple[str, ...]) -> Identity:
    """The whole `$connect` decision: origin first, then the token (absent = anonymous)."""
    check_origin(headers, allowed_origins)
    token = (query or {}).get("token")
    if token is None:
        return ANONYMOUS
    return verifier.verify(token)
