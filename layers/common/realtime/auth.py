"""Who is connecting: token verification and the origin check for `$connect`.

Tokens are JWTs in the `token` query parameter (browsers cannot set handshake headers).
HS256 with a shared secret (from `JWT_SECRET`, or a Secrets Manager secret read once per
cold start), or RS256 from an OIDC issuer's JWKS (e.g. a Cognito user pool; keys cached).
Only the configured algorithm is accepted, never `none`.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from realtime.config import MIN_HS256_SECRET_BYTES, ConfigurationError, Settings

if TYPE_CHECKING:
    import jwt

LEEWAY_SECONDS = 30
MAX_USER_ID_CHARS = 256
MAX_NAME_CHARS = 128


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
    """Verifies tokens against exactly one configured key source."""

    def __init__(self, *, secret: str = "", issuer: str = "", audience: str = "", jwks_url: str = "",
                 leeway: int = LEEWAY_SECONDS) -> None:
        if secret and len(secret.encode()) < MIN_HS256_SECRET_BYTES:
            raise ConfigurationError(f"the HS256 secret must be at least {MIN_HS256_SECRET_BYTES} bytes")
        self._secret = secret
        self._issuer = issuer
        self._audience = audience
        self._leeway = min(leeway, LEEWAY_SECONDS)
        self._jwks: jwt.PyJWKClient | None = None
        if not secret and issuer:
            import jwt

            url = jwks_url or issuer.rstrip("/") + "/.well-known/jwks.json"
            self._jwks = jwt.PyJWKClient(url, cache_keys=True, lifespan=3600)

    @classmethod
    def from_settings(cls, settings: Settings, secrets_client: Any = None) -> TokenVerifier:
        """Build from settings; reads the Secrets Manager secret (once) when only its ARN is set."""
        secret = settings.jwt_secret
        if not secret and settings.jwt_secret_arn:
            if secrets_client is None:
                raise ConfigurationError("JWT_SECRET_ARN is set but no Secrets Manager client was given")
            secret = secrets_client.get_secret_value(SecretId=settings.jwt_secret_arn)["SecretString"]
        return cls(secret=secret, issuer=settings.jwt_issuer, audience=settings.jwt_audience,
                   jwks_url=settings.jwks_url)

    @property
    def configured(self) -> bool:
        return bool(self._secret or self._jwks)

    def verify(self, token: str) -> Identity:
        """Return the token's identity or raise `AuthError(401)`."""
        # Imported here, not at module level: PyJWT pulls in `cryptography` (about 30 ms of
        # cold start, docs/performance.md), and only `$connect` verifies tokens.
        import jwt

        if not self.configured:
            raise AuthError(401, "this deployment accepts no tokens")
        options = {"require": ["sub", "exp"], "verify_aud": bool(self._audience), "verify_iss": bool(self._issuer)}
        kwargs: dict[str, Any] = {"leeway": self._leeway, "options": options}
        if self._audience:
            kwargs["audience"] = self._audience
        if self._issuer:
            kwargs["issuer"] = self._issuer
        try:
            if self._jwks is not None:
                key: Any = self._jwks.get_signing_key_from_jwt(token).key
                claims = jwt.decode(token, key, algorithms=["RS256"], **kwargs)
            else:
                claims = jwt.decode(token, self._secret, algorithms=["HS256"], **kwargs)
        except jwt.PyJWTError as exc:
            raise AuthError(401, f"invalid token: {type(exc).__name__}") from None
        return _identity(claims)


def _identity(claims: Mapping[str, Any]) -> Identity:
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub or len(sub) > MAX_USER_ID_CHARS or not _printable(sub):
        raise AuthError(401, "invalid token: bad sub")
    name = claims.get("name")
    if not isinstance(name, str) or not _printable(name):
        name = None
    return Identity(sub, name[:MAX_NAME_CHARS] if name else None)


def _printable(text: str) -> bool:
    return all(unicodedata.category(ch) not in ("Cc", "Cs") for ch in text)


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
