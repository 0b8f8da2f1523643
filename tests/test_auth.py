"""The `$connect` decision: tokens and origins.

Anything but a valid token (or no token at all) refuses the handshake with 401, a
cross-site origin with 403, and a refused handshake leaves nothing behind.
"""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from realtime.auth import AuthError, TokenVerifier, check_origin
from realtime.config import ConfigurationError, Settings
from tests.apigw import SECRET, ApiGateway, token


def unsigned(claims: dict) -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def count_items(gw: ApiGateway) -> int:
    return gw.dynamodb.scan(TableName="connections", Select="COUNT")["Count"]


BAD_TOKENS = {
    "expired": lambda: token("alice", ttl=-120),
    "wrong key": lambda: token("alice", secret="another-secret-that-is-long-enough-to-use"),
    "alg none": lambda: unsigned({"sub": "alice", "exp": int(time.time()) + 300}),
    "not yet valid": lambda: token("alice", nbf=int(time.time()) + 600),
    "issued in the future": lambda: token("alice", iat=int(time.time()) + 600),
    "no sub": lambda: jwt.encode({"exp": int(time.time()) + 60}, SECRET, algorithm="HS256"),
    "no exp": lambda: jwt.encode({"sub": "alice"}, SECRET, algorithm="HS256"),
    "empty sub": lambda: token(""),
    "truncated": lambda: token("alice")[:-10],
    "garbage": lambda: "not-a-token",
    "empty": lambda: "",
    "HS512": lambda: jwt.encode({"sub": "alice", "exp": int(time.time()) + 60}, SECRET, algorithm="HS512"),
}


@pytest.mark.parametrize("kind", sorted(BAD_TOKENS))
def test_bad_tokens_are_refused_with_401(gateway: ApiGateway, kind: str) -> None:
    status, cid = gateway.connect(query={"token": BAD_TOKENS[kind]()})
    assert status == 401
    assert count_items(gateway) == 0  # nothing registered, nothing counted


def test_missing_token_is_anonymous_and_not_counted(gateway: ApiGateway) -> None:
    watcher = gateway.login("alice")
    gateway.send(watcher, {"action": "subscribe", "stream": "users"})
    status, _ = gateway.connect()
    assert status == 200
    assert gateway.last(watcher, "users") == {"users": 1}


def test_token_in_a_header_does_not_authenticate(gateway: ApiGateway) -> None:
    status, cid = gateway.connect(headers={"Authorization": f"Bearer {token('alice')}"})
    assert status == 200
    assert gateway.send(cid, {"action": "subscribe", "stream": "notifications"})[0]["payload"]["code"] == "unauthenticated"


def test_leeway_accepts_slightly_expired_tokens(gateway: ApiGateway) -> None:
    status, _ = gateway.connect(query={"token": token("alice", ttl=-10)})
    assert status == 200


def test_origin_check(gateway: ApiGateway, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOWED_ORIGINS", "https://app.example.com, https://admin.example.com/")
    gateway.reset_runtime()
    assert gateway.connect(headers={"Origin": "https://evil.example.net"})[0] == 403
    assert gateway.connect(headers={"origin": "https://app.example.com.evil.net"})[0] == 403
    assert gateway.connect(headers={"Origin": "https://admin.example.com"})[0] == 200
    assert gateway.connect(headers={"Origin": "https://app.example.com"}, query={"token": token("a")})[0] == 200
    assert gateway.connect()[0] == 200  # no Origin: not a browser, accepted
    # The origin is checked before the token, and both failures leave nothing behind.
    before = count_items(gateway)
    assert gateway.connect(headers={"Origin": "https://evil.example.net"}, query={"token": "bad"})[0] == 403
    assert count_items(gateway) == before


def test_unconfigured_deployment_refuses_every_token() -> None:
    verifier = TokenVerifier()
    with pytest.raises(AuthError) as refused:
        verifier.verify(token("alice"))
    assert refused.value.status == 401


def test_short_hs256_secrets_are_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        TokenVerifier(secret="short")
    with pytest.raises(ConfigurationError):
        Settings.from_env({"CONNECTIONS_TABLE": "c", "DOCUMENTS_TABLE": "d", "JWT_SECRET": "x" * 31})


def test_secret_read_once_from_secrets_manager(aws: None) -> None:
    import boto3

    client = boto3.client("secretsmanager", region_name="us-east-1")
    arn = client.create_secret(Name="realtime/jwt", SecretString=SECRET)["ARN"]
    settings = Settings.from_env({"CONNECTIONS_TABLE": "c", "DOCUMENTS_TABLE": "d", "JWT_SECRET_ARN": arn})
    verifier = TokenVerifier.from_settings(settings, client)
    assert verifier.verify(token("alice", "Alice")).user_id == "alice"


class _Keys:
    """An RS256 issuer: a key pair and its JWKS."""

    def __init__(self) -> None:
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key()))
        self.jwks = {"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}

    def token(self, **claims) -> str:
        body = {"sub": "alice", "exp": int(time.time()) + 60, **claims}
        return jwt.encode(body, self.private, algorithm="RS256", headers={"kid": "k1"})


def test_rs256_tokens_from_an_issuer(monkeypatch: pytest.MonkeyPatch) -> None:
    keys = _Keys()
    fetched = []

    def fetch(self):
        fetched.append(self.uri)
        return keys.jwks

    monkeypatch.setattr(jwt.PyJWKClient, "fetch_data", fetch)
    issuer = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_pool"
    verifier = TokenVerifier(issuer=issuer, audience="client-1")
    assert verifier.verify(keys.token(iss=issuer, aud="client-1")).user_id == "alice"
    assert verifier.verify(keys.token(iss=issuer, aud="client-1", sub="bob")).user_id == "bob"
    assert fetched == [issuer + "/.well-known/jwks.json"]  # keys cached
    for bad in (keys.token(iss="https://evil.example", aud="client-1"), keys.token(iss=issuer, aud="other"),
                keys.token(iss=issuer), token("alice")):  # HS256 is not accepted by an RS256 deployment
        with pytest.raises(AuthError):
            verifier.verify(bad)


def test_origin_helper_is_exact() -> None:
    check_origin({"Origin": "https://a.example"}, ("https://a.example",))
    with pytest.raises(AuthError):
        check_origin({"Origin": "http://a.example"}, ("https://a.example",))
