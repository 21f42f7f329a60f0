"""Who is calling. Bearer JWTs: HS256 with AUTH_DEV_SECRET in local and dev stages, RS256 against
the issuer's JWKS (keys chosen by `kid`, cached, refetched on an unknown `kid`) when deployed.
Whether the caller may touch a workspace is decided with the workspace's own record (credits)."""
from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from . import config
from .errors import Unauthenticated

if TYPE_CHECKING:
    import jwt

SERVICE_SCOPE = "credits:service"
DEV_ISSUER = "studio-credits-dev"


@dataclass(frozen=True)
class Principal:
    user_id: str
    scopes: frozenset[str]

    @property
    def is_service(self) -> bool:
        return SERVICE_SCOPE in self.scopes


@lru_cache(maxsize=4)
def _jwks_client(url: str) -> jwt.PyJWKClient:
    import jwt

    return jwt.PyJWKClient(url, cache_keys=True, lifespan=3600)


def _key_and_algorithms(token: str, s: config.Settings):
    import jwt

    if s.auth_jwks_url:
        try:
            return _jwks_client(s.auth_jwks_url).get_signing_key_from_jwt(token).key, ["RS256"]
        except jwt.PyJWKClientError as e:
            raise Unauthenticated("The token's signing key is unknown.") from e
    if s.dev_tokens_allowed:
        return s.auth_dev_secret, ["HS256"]
    raise Unauthenticated("No way to verify tokens is configured.")


def authenticate(authorization: str | None, s: config.Settings | None = None) -> Principal:
    s = s or config.settings()
    if not authorization:
        raise Unauthenticated("Missing bearer token.")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Expected 'Authorization: Bearer <token>'.")
    token = token.strip()
    # PyJWT (and cryptography under it) loads on the first token, not on import: the catalog
    # and Stripe's webhook never need it.
    import jwt

    try:
        key, algorithms = _key_and_algorithms(token, s)
        claims = jwt.decode(
            token,
            key,
            algorithms=algorithms,  # fixed list: 'none' and algorithm confusion are refused
            audience=s.auth_audience,
            issuer=s.auth_issuer,
            options={"require": ["exp", "sub"]},
            leeway=30,
        )
    except jwt.InvalidTokenError as e:
        raise Unauthenticated(f"Invalid token: {e}.") from None
    sub = claims["sub"]
    if not isinstance(sub, str) or not sub or len(sub) > 200:
        raise Unauthenticated("Invalid token: bad subject.")
    scope = claims.get("scope", "")
    scopes = frozenset(scope.split() if isinstance(scope, str) else [])
    return Principal(user_id=sub, scopes=scopes)


def mint_dev_token(user_id: str, scope: str = "", ttl: int = 86400, s: config.Settings | None = None,
                   now: float | None = None) -> str:
    """A token for local runs and tests, signed with AUTH_DEV_SECRET."""
    s = s or config.settings()
    if not s.dev_tokens_allowed:
        raise RuntimeError("Dev tokens need a local or dev stage and AUTH_DEV_SECRET.")
    issued = int(now if now is not None else time.time())
    claims = {"sub": user_id, "aud": s.auth_audience, "iat": issued, "exp": issued + ttl}
    if s.auth_issuer:
        claims["iss"] = s.auth_issuer
    if scope:
        claims["scope"] = scope
    import jwt

    return jwt.encode(claims, s.auth_dev_secret, algorithm="HS256")
