"""Bearer tokens: HS256 dev tokens locally, RS256 against a JWKS when deployed (no network here)."""
from __future__ import annotations

import base64
import dataclasses
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from chalicelib import auth, config
from chalicelib.errors import Unauthenticated

SECRET = "test-secret-0123456789abcdef0123456789"  # tests/conftest.py sets AUTH_DEV_SECRET to this
AUD = "studio-credits"


@pytest.fixture
def dev():
    s = config.reload()
    assert s.auth_dev_secret == SECRET and s.dev_tokens_allowed and not s.auth_jwks_url
    return s


def hs(claims: dict, secret: str = SECRET, headers: dict | None = None) -> str:
    return jwt.encode(claims, secret, algorithm="HS256", headers=headers)


def claims(**over) -> dict:
    now = int(time.time())
    c = {"sub": "alice", "aud": AUD, "iat": now, "exp": now + 600}
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def bearer(token: str) -> str:
    return f"Bearer {token}"


# --- HS256 dev tokens ---------------------------------------------------------------------------

def test_minted_dev_token_is_accepted(dev):
    p = auth.authenticate(bearer(auth.mint_dev_token("alice")), dev)
    assert p.user_id == "alice"
    assert p.scopes == frozenset()
    assert not p.is_service


def test_service_scope(dev):
    p = auth.authenticate(bearer(auth.mint_dev_token("svc-image", scope="credits:service other")), dev)
    assert p.user_id == "svc-image"
    assert p.is_service
    assert p.scopes == frozenset({"credits:service", "other"})


def test_hand_made_hs256_token(dev):
    assert auth.authenticate(bearer(hs(claims(sub="bob"))), dev).user_id == "bob"


def test_scheme_is_case_insensitive(dev):
    assert auth.authenticate("bearer " + hs(claims()), dev).user_id == "alice"


def test_scope_without_service(dev):
    p = auth.authenticate(bearer(hs(claims(scope="credits:read"))), dev)
    assert not p.is_service


def unauthenticated(header, s):
    with pytest.raises(Unauthenticated) as e:
        auth.authenticate(header, s)
    assert e.value.status == 401 and e.value.code == "unauthenticated"
    return e.value


def test_alg_none_refused(dev):
    token = b64({"alg": "none", "typ": "JWT"}) + "." + b64(claims()) + "."
    unauthenticated(bearer(token), dev)


def test_alg_none_via_pyjwt_refused(dev):
    token = jwt.encode(claims(), None, algorithm="none")
    unauthenticated(bearer(token), dev)


def test_expired_refused(dev):
    now = int(time.time())
    unauthenticated(bearer(hs(claims(iat=now - 7200, exp=now - 3600))), dev)


def test_expired_beyond_leeway_refused(dev):
    now = int(time.time())
    unauthenticated(bearer(hs(claims(iat=now - 600, exp=now - 120))), dev)


def test_not_yet_valid_refused(dev):
    now = int(time.time())
    unauthenticated(bearer(hs(claims(nbf=now + 3600))), dev)


def test_wrong_secret_refused(dev):
    unauthenticated(bearer(hs(claims(), secret="another-secret-0123456789abcdef0123")), dev)


def test_tampered_payload_refused(dev):
    head, _, sig = hs(claims(sub="alice")).split(".")
    unauthenticated(bearer(".".join([head, b64(claims(sub="mallory")), sig])), dev)


@pytest.mark.parametrize("aud", ["another-service", ["another-service"], None])
def test_wrong_or_missing_audience_refused(dev, aud):
    c = claims()
    if aud is None:
        del c["aud"]
    else:
        c["aud"] = aud
    unauthenticated(bearer(hs(c)), dev)


def test_missing_sub_refused(dev):
    c = claims()
    del c["sub"]
    unauthenticated(bearer(hs(c)), dev)


@pytest.mark.parametrize("sub", ["", "x" * 201])
def test_bad_sub_refused(dev, sub):
    unauthenticated(bearer(hs(claims(sub=sub))), dev)


def test_non_string_sub_refused(dev):
    unauthenticated(bearer(hs(claims(sub=12345))), dev)


def test_missing_exp_refused(dev):
    c = claims()
    del c["exp"]
    unauthenticated(bearer(hs(c)), dev)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Bearer garbage",
        "Bearer a.b.c",
        "Bearer " + "x" * 5000,
        "Basic YWxpY2U6c2VjcmV0",
        "Token abc",
        "Bearer ....",
        "Bearer " + b64({"alg": "HS256"}) + ".!!!." + "@@",
    ],
)
def test_garbage_refused(dev, header):
    unauthenticated(header, dev)


def test_bare_token_without_scheme_refused(dev):
    unauthenticated(hs(claims()), dev)


def test_dev_tokens_refused_outside_local_stages(dev):
    prod = dataclasses.replace(dev, stage="prod")
    assert not prod.dev_tokens_allowed
    unauthenticated(bearer(hs(claims())), prod)
    with pytest.raises(RuntimeError):
        auth.mint_dev_token("alice", s=prod)


def test_dev_issuer_checked_when_configured(dev):
    s = dataclasses.replace(dev, auth_issuer="https://issuer.example/")
    assert auth.authenticate(bearer(auth.mint_dev_token("alice", s=s)), s).user_id == "alice"
    unauthenticated(bearer(hs(claims(iss="https://evil.example/"))), s)
    unauthenticated(bearer(hs(claims())), s)  # no iss at all


# --- RS256 against a JWKS, served by no network ------------------------------------------------

ISSUER = "https://issuer.example/"


def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def keys():
    return {"good": rsa_key(), "other": rsa_key()}


def jwk_of(private, kid: str) -> dict:
    data = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    data.update(kid=kid, use="sig", alg="RS256")
    return data


def rs(private, kid: str = "k1", **over) -> str:
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return jwt.encode(claims(**{"iss": ISSUER, **over}), pem, algorithm="RS256", headers={"kid": kid})


@pytest.fixture
def deployed(dev, keys, monkeypatch, request):
    """Settings as a deployed stage: RS256 via a JWKS URL whose fetch is patched (no network)."""
    class Fetches(list):
        jwks: dict

    fetches = Fetches()
    jwks = {"keys": [jwk_of(keys["good"], "k1")]}

    def fetch_data(self):
        fetches.append(self.uri)
        return jwks

    monkeypatch.setattr(jwt.PyJWKClient, "fetch_data", fetch_data)
    auth._jwks_client.cache_clear()
    s = dataclasses.replace(
        dev, stage="prod", auth_dev_secret=None, auth_issuer=ISSUER,
        auth_jwks_url=f"https://issuer.example/{request.node.name}/.well-known/jwks.json",
    )
    fetches.jwks = jwks  # tests rotate the issuer's keys by editing it
    yield s, fetches
    auth._jwks_client.cache_clear()


def test_jwks_good_token(deployed, keys):
    s, fetches = deployed
    p = auth.authenticate(bearer(rs(keys["good"])), s)
    assert p.user_id == "alice" and not p.is_service
    assert fetches == [s.auth_jwks_url]


def test_jwks_keys_are_cached(deployed, keys):
    s, fetches = deployed
    for _ in range(3):
        assert auth.authenticate(bearer(rs(keys["good"])), s).user_id == "alice"
    assert len(fetches) == 1


def test_jwks_service_token(deployed, keys):
    s, _ = deployed
    assert auth.authenticate(bearer(rs(keys["good"], scope="credits:service")), s).is_service


def test_jwks_token_signed_by_another_key_same_kid(deployed, keys):
    s, _ = deployed
    unauthenticated(bearer(rs(keys["other"], kid="k1")), s)


def test_jwks_token_with_unknown_kid(deployed, keys):
    s, _ = deployed
    unauthenticated(bearer(rs(keys["other"], kid="k-unknown")), s)


def test_jwks_token_without_kid(deployed, keys):
    s, _ = deployed
    pem = keys["good"].private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
    unauthenticated(bearer(jwt.encode(claims(iss=ISSUER), pem, algorithm="RS256")), s)


def test_jwks_wrong_audience(deployed, keys):
    s, _ = deployed
    unauthenticated(bearer(rs(keys["good"], aud="another-service")), s)


def test_jwks_wrong_issuer(deployed, keys):
    s, _ = deployed
    unauthenticated(bearer(rs(keys["good"], iss="https://evil.example/")), s)


def test_jwks_expired(deployed, keys):
    s, _ = deployed
    now = int(time.time())
    unauthenticated(bearer(rs(keys["good"], iat=now - 7200, exp=now - 3600)), s)


def test_jwks_missing_sub(deployed, keys):
    s, _ = deployed
    pem = keys["good"].private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
    c = claims(iss=ISSUER)
    del c["sub"]
    unauthenticated(bearer(jwt.encode(c, pem, algorithm="RS256", headers={"kid": "k1"})), s)


def test_jwks_refuses_hs256_dev_tokens(deployed):
    s, _ = deployed
    unauthenticated(bearer(hs(claims(iss=ISSUER), headers={"kid": "k1"})), s)


def test_jwks_refuses_algorithm_confusion(deployed, keys):
    """An HS256 token 'signed' with the public key as its secret must not pass."""
    s, _ = deployed
    public_pem = keys["good"].public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    head = b64({"alg": "HS256", "typ": "JWT", "kid": "k1"})
    body = b64(claims(iss=ISSUER))
    import hashlib
    import hmac

    sig = base64.urlsafe_b64encode(
        hmac.new(public_pem, f"{head}.{body}".encode(), hashlib.sha256).digest()).decode().rstrip("=")
    unauthenticated(bearer(f"{head}.{body}.{sig}"), s)


def test_jwks_alg_none(deployed):
    s, _ = deployed
    token = b64({"alg": "none", "typ": "JWT", "kid": "k1"}) + "." + b64(claims(iss=ISSUER)) + "."
    unauthenticated(bearer(token), s)


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "...."])
def test_jwks_garbage(deployed, token):
    s, _ = deployed
    unauthenticated(bearer(token), s)


def test_jwks_unreachable_is_unauthenticated_not_a_crash(dev, keys, monkeypatch):
    def down(self):
        raise jwt.PyJWKClientConnectionError("connection refused")

    monkeypatch.setattr(jwt.PyJWKClient, "fetch_data", down)
    auth._jwks_client.cache_clear()
    s = dataclasses.replace(dev, stage="prod", auth_dev_secret=None, auth_issuer=ISSUER,
                            auth_jwks_url="https://issuer.example/down/jwks.json")
    try:
        unauthenticated(bearer(rs(keys["good"])), s)
    finally:
        auth._jwks_client.cache_clear()


def test_no_verifier_configured(dev):
    s = dataclasses.replace(dev, stage="prod", auth_dev_secret=None, auth_jwks_url=None)
    unauthenticated(bearer(hs(claims())), s)


def test_jwks_key_rotation_refetches_on_an_unknown_kid(deployed, keys):
    s, fetches = deployed
    assert auth.authenticate(bearer(rs(keys["good"])), s).user_id == "alice"
    # The issuer rotates: a new key k2 is published; the cached set does not have it yet.
    fetches.jwks["keys"].append(jwk_of(keys["other"], "k2"))
    assert auth.authenticate(bearer(rs(keys["other"], kid="k2")), s).user_id == "alice"
    assert len(fetches) == 2
    # Both keys keep working from the cache afterwards.
    auth.authenticate(bearer(rs(keys["good"])), s)
    auth.authenticate(bearer(rs(keys["other"], kid="k2")), s)
    assert len(fetches) == 2
