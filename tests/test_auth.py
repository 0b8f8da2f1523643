"""The `$connect` decision: tokens, their keys, and origins.

Anything but a valid token (or no token at all) refuses the handshake with 401, a
cross-site origin with 403, and a refused handshake leaves nothing behind. RS256 keys come
from a real local HTTP server (tests/issuer.py) whose key set the tests change; HS256
secrets from Secrets Manager (moto) with rotation's version stages.
"""

from __future__ import annotations

import base64
import json
import logging
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import jwt
import pytest

from realtime import runtime
from realtime.auth import MAX_NAME_CHARS, AuthError, TokenVerifier, check_origin, clean_name
from realtime.config import JWKS_TIMEOUT_SECONDS, ConfigurationError, Settings
from realtime.signing_keys import MAX_JWKS_BYTES
from tests.apigw import SECRET, ApiGateway, token
from tests.issuer import (  # noqa: F401 - fixtures
    CLIENT_ID,
    ISSUER,
    FakeClock,
    Issuer,
    issuer,
    key_clock,
    serving,
    use_issuer,
    verifier_for,
)

OTHER_SECRET = "another-secret-that-is-long-enough-to-use"
BASE_ENV = {"CONNECTIONS_TABLE": "c", "DOCUMENTS_TABLE": "d"}


def unsigned(claims: dict) -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def count_items(gw: ApiGateway) -> int:
    return gw.dynamodb.scan(TableName="connections", Select="COUNT")["Count"]


def items(gw: ApiGateway) -> list[dict]:
    return sorted(gw.dynamodb.scan(TableName="connections", ConsistentRead=True)["Items"], key=json.dumps)


def refused(gw: ApiGateway, tok: str) -> bool:
    """401, and the connections table (records, counter, users) exactly as before."""
    before = items(gw)
    status, _ = gw.connect(query={"token": tok})
    return status == 401 and items(gw) == before


def refuses(verifier: TokenVerifier, tok: str) -> bool:
    try:
        verifier.verify(tok)
    except AuthError as exc:
        return exc.status == 401
    return False


@pytest.fixture
def realtime_logs() -> Iterator[list[logging.LogRecord]]:
    """Records of the library's loggers (`realtime.*`), whatever Powertools did to their handlers."""
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler, target = Collect(), logging.getLogger("realtime")
    level = target.level
    target.addHandler(handler)
    target.setLevel(logging.DEBUG)
    yield records
    target.removeHandler(handler)
    target.setLevel(level)


def logged_text(records: list[logging.LogRecord]) -> str:
    return json.dumps([{**r.__dict__, "msg": r.getMessage()} for r in records], default=str)


# ---- token checks -----------------------------------------------------------------

BAD_TOKENS = {
    "expired": lambda: token("alice", ttl=-120),
    "wrong key": lambda: token("alice", secret=OTHER_SECRET),
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
    "ten-year lifetime": lambda: token("alice", ttl=10 * 365 * 86_400),
    "no iat, exp past the max age": lambda: jwt.encode({"sub": "alice", "exp": int(time.time()) + 86_400 + 600},
                                                       SECRET, algorithm="HS256"),
    "exp as a string": lambda: token("alice", exp=str(int(time.time()) + 300)),
    "iat as a boolean": lambda: token("alice", iat=True),
}


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # the HS512 case's own key
@pytest.mark.parametrize("kind", sorted(BAD_TOKENS))
def test_bad_tokens_are_refused_with_401(gateway: ApiGateway, kind: str) -> None:
    assert refused(gateway, BAD_TOKENS[kind]())
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


def test_a_lifetime_of_exactly_the_max_age_is_accepted(gateway: ApiGateway) -> None:
    assert gateway.connect(query={"token": token("alice", ttl=86_400)})[0] == 200
    assert gateway.connect(query={"token": token("alice", ttl=86_401)})[0] == 401


def test_max_age_follows_jwt_max_age_seconds(gateway: ApiGateway, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWT_MAX_AGE_SECONDS", "600")
    gateway.reset_runtime()
    assert gateway.connect(query={"token": token("alice", ttl=600)})[0] == 200
    assert refused(gateway, token("alice", ttl=3600))


def test_max_age_without_iat_counts_from_now() -> None:
    clock = FakeClock()
    verifier = TokenVerifier(secret=SECRET, max_age=600, clock=clock)
    tok = jwt.encode({"sub": "alice", "exp": int(clock.now) + 900}, SECRET, algorithm="HS256")
    assert refuses(verifier, tok)
    clock.advance(301)  # now the token expires less than 600 s from now
    assert verifier.verify(tok).user_id == "alice"


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


def test_origin_helper_is_exact() -> None:
    check_origin({"Origin": "https://a.example"}, ("https://a.example",))
    with pytest.raises(AuthError):
        check_origin({"Origin": "http://a.example"}, ("https://a.example",))


def test_unconfigured_deployment_refuses_every_token() -> None:
    verifier = TokenVerifier()
    with pytest.raises(AuthError) as refused_:
        verifier.verify(token("alice"))
    assert refused_.value.status == 401


def test_short_hs256_secrets_are_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        TokenVerifier(secret="short")
    with pytest.raises(ConfigurationError):
        Settings.from_env({**BASE_ENV, "JWT_SECRET": "x" * 31})


def test_pyjwt_is_imported_only_when_a_verifier_is_built() -> None:
    """Every function imports `realtime.auth`; only `$connect` needs PyJWT (cold start)."""
    code = ("import sys, realtime.auth, realtime.lifecycle, realtime.engine, monitor; "
            "assert 'jwt' not in sys.modules, 'imported by the library'; "
            "realtime.auth.TokenVerifier(secret='x' * 32); assert 'jwt' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd="layers/common")


# ---- token policy settings --------------------------------------------------------

def test_an_issuer_without_an_audience_is_refused_unless_waived() -> None:
    with pytest.raises(ConfigurationError, match="JWT_AUDIENCE"):
        Settings.from_env({**BASE_ENV, "JWT_ISSUER": ISSUER})
    waived = Settings.from_env({**BASE_ENV, "JWT_ISSUER": ISSUER, "JWT_AUDIENCE_WAIVED": "true"})
    assert waived.jwt_audience == "" and waived.jwt_audience_waived
    assert Settings.from_env({**BASE_ENV, "JWT_ISSUER": ISSUER, "JWT_AUDIENCE": CLIENT_ID}).jwt_audience == CLIENT_ID


def test_auth_settings_defaults() -> None:
    settings = Settings.from_env(BASE_ENV)
    assert (settings.jwks_cache_seconds, settings.jwks_min_refetch_seconds) == (300, 30)
    assert (settings.jwt_max_age_seconds, settings.jwt_secret_cache_seconds, settings.jwt_token_use) == (86_400, 300, "")


@pytest.mark.parametrize("env", [
    {"JWKS_CACHE_SECONDS": "five"}, {"JWKS_CACHE_SECONDS": "0"}, {"JWKS_MIN_REFETCH_SECONDS": "0"},
    {"JWKS_CACHE_SECONDS": "20", "JWKS_MIN_REFETCH_SECONDS": "30"}, {"JWT_MAX_AGE_SECONDS": "-1"},
    {"JWT_SECRET_CACHE_SECONDS": "30"}, {"JWT_TOKEN_USE": "refresh"}, {"JWT_AUDIENCE_WAIVED": "yes"},
    {"JWT_ISSUER": "http://auth.example.com", "JWT_AUDIENCE": "a"},
    {"JWT_ISSUER": ISSUER, "JWT_AUDIENCE": "a", "JWKS_URL": "http://keys.example.com/jwks.json"},
    {"JWT_ISSUER": ISSUER, "JWT_AUDIENCE": "a", "JWKS_URL": "file:///etc/passwd"},
], ids=repr)
def test_bad_auth_settings_are_a_configuration_error(env: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError):
        Settings.from_env({**BASE_ENV, **env})


# ---- RS256: the issuer's key set --------------------------------------------------

def test_rs256_tokens_from_an_issuer(issuer: Issuer, key_clock: FakeClock) -> None:
    verifier = verifier_for(issuer, key_clock)
    assert verifier.verify(issuer.token()).user_id == "alice"
    assert verifier.verify(issuer.token(sub="bob")).user_id == "bob"
    assert issuer.requests == 1  # the key set is held
    for bad in (issuer.token(iss="https://evil.example"), issuer.token(aud="other"), issuer.token(aud=None),
                issuer.token(iss=None), token("alice"),  # HS256 is not accepted by an RS256 deployment
                issuer.token(sign_with="k2")):  # k1's kid, another key's signature
        assert refuses(verifier, bad)


def test_a_key_the_issuer_dropped_is_refused_once_the_held_set_expires(issuer: Issuer, key_clock: FakeClock) -> None:
    verifier = verifier_for(issuer, key_clock)
    assert verifier.verify(issuer.token("k1")).user_id == "alice"
    issuer.publish("k2")  # k1 revoked
    key_clock.advance(299)
    assert verifier.verify(issuer.token("k1")).user_id == "alice"  # still within JWKS_CACHE_SECONDS
    assert issuer.requests == 1
    key_clock.advance(2)
    assert refuses(verifier, issuer.token("k1"))
    assert issuer.requests == 2
    assert verifier.verify(issuer.token("k2")).user_id == "alice"


def test_a_new_kid_refetches_and_then_the_dropped_kid_is_refused(gateway: ApiGateway, monkeypatch: pytest.MonkeyPatch,
                                                                  issuer: Issuer, key_clock: FakeClock) -> None:
    use_issuer(gateway, monkeypatch, issuer, key_clock)
    assert gateway.connect(query={"token": issuer.token("k1")})[0] == 200
    issuer.publish("k2")  # rotation: k2 added, k1 dropped
    key_clock.advance(31)
    assert gateway.connect(query={"token": issuer.token("k2", sub="bob")})[0] == 200
    assert issuer.requests == 2
    assert refused(gateway, issuer.token("k1", sub="carol"))


def test_jwks_cache_seconds_bounds_how_long_keys_are_trusted(gateway: ApiGateway, monkeypatch: pytest.MonkeyPatch,
                                                             issuer: Issuer, key_clock: FakeClock) -> None:
    use_issuer(gateway, monkeypatch, issuer, key_clock, JWKS_CACHE_SECONDS="60", JWKS_MIN_REFETCH_SECONDS="10")
    assert gateway.connect(query={"token": issuer.token("k1")})[0] == 200
    issuer.publish("k2")
    key_clock.advance(61)
    assert refused(gateway, issuer.token("k1"))


def test_an_unknown_kid_flood_refetches_at_most_once_per_interval(issuer: Issuer, key_clock: FakeClock) -> None:
    verifier = verifier_for(issuer, key_clock)
    verifier.verify(issuer.token("k1"))
    assert issuer.requests == 1
    for second in range(30):  # 30 s of unknown kids, ten a second
        for _ in range(10):
            assert refuses(verifier, issuer.token(uuid.uuid4().hex, sign_with="k1"))
        key_clock.advance(1)
        assert issuer.requests == 2, second  # the first unknown kid refetched; the rest waited
    assert refuses(verifier, issuer.token("k9", sign_with="k1"))
    assert issuer.requests == 3  # JWKS_MIN_REFETCH_SECONDS later: one more
    assert verifier.verify(issuer.token("k1")).user_id == "alice"  # real tokens were never held back


def test_tokens_that_cannot_verify_cost_no_fetch(issuer: Issuer, key_clock: FakeClock) -> None:
    verifier = verifier_for(issuer, key_clock)
    for bad in (token("alice"), "garbage", jwt.encode({"sub": "a", "exp": int(time.time()) + 60},
                                                      issuer.private["k1"], algorithm="RS256")):  # no kid
        assert refuses(verifier, bad)
    assert issuer.requests == 0


def test_a_new_key_is_picked_up_when_tokens_use_it(issuer: Issuer, key_clock: FakeClock) -> None:
    verifier = verifier_for(issuer, key_clock)
    verifier.verify(issuer.token("k1"))
    issuer.publish("k1", "k2")
    assert verifier.verify(issuer.token("k2")).user_id == "alice"  # the first refetch is never held back
    assert issuer.requests == 2


def test_key_endpoint_answering_non_json_is_a_401_not_a_500(gateway: ApiGateway, monkeypatch: pytest.MonkeyPatch,
                                                            issuer: Issuer, key_clock: FakeClock,
                                                            realtime_logs: list[logging.LogRecord]) -> None:
    use_issuer(gateway, monkeypatch, issuer, key_clock)
    issuer.body = b"<html>Service Unavailable</html>"
    tok = issuer.token()
    assert refused(gateway, tok)
    warnings = [r for r in realtime_logs if r.getMessage().startswith("JWKS fetch failed")]
    assert [(w.levelname, w.__dict__["error"], w.__dict__["jwks_url"]) for w in warnings] == [
        ("WARNING", "JSONDecodeError", issuer.url)]
    assert tok not in logged_text(realtime_logs)
    assert gateway.connect()[0] == 200  # anonymous connections do not need keys


BROKEN_KEY_SETS: dict[str, dict[str, Any]] = {
    "server error": {"status": 500},
    "not found": {"status": 404},
    "redirect": {"status": 302, "headers": {"Location": "https://evil.example/jwks.json"}},
    "a JSON array": {"body": b"[]"},
    "a JSON string": {"body": b'"keys"'},
    "no keys": {"body": b'{"keys": []}'},
    "keys not a list": {"body": b'{"keys": "k1"}'},
    "keys not objects": {"body": b'{"keys": [1, null, "x"]}'},
    "invalid UTF-8": {"body": b'{"keys": ["\xff\xfe"]}'},
    "larger than the limit": {"body": b'{"keys": [], "pad": "' + b"x" * MAX_JWKS_BYTES + b'"}'},
    "an empty body": {"body": b""},
}


@pytest.mark.parametrize("kind", sorted(BROKEN_KEY_SETS))
def test_a_broken_key_endpoint_is_a_401(issuer: Issuer, key_clock: FakeClock, kind: str) -> None:
    for name, value in BROKEN_KEY_SETS[kind].items():
        setattr(issuer, name, value)
    assert refuses(verifier_for(issuer, key_clock), issuer.token())


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # signing with the weak key
@pytest.mark.parametrize("jwk", [
    {"kty": "oct", "k": base64.urlsafe_b64encode(b"k" * 32).decode(), "kid": "k1"},  # a symmetric key
    {"kty": "RSA", "kid": "k1", "n": "AQAB"},  # no exponent
    "weak",  # a 1024-bit RSA key
], ids=repr)
def test_unusable_keys_in_the_set_verify_nothing(issuer: Issuer, key_clock: FakeClock, jwk: Any) -> None:
    if jwk == "weak":
        issuer.add_key("k1", bits=1024)
        jwk = issuer.jwk("k1")
    issuer.body = json.dumps({"keys": [jwk]}).encode()
    assert refuses(verifier_for(issuer, key_clock), issuer.token())


def test_key_endpoint_that_hangs_is_a_401_after_the_timeout(issuer: Issuer, key_clock: FakeClock) -> None:
    issuer.hang = True
    # A second, not 0.2 s: the issuer counts a request once it has read it, which a loaded
    # machine (CI runs two test workers on two cores) may not do within 0.2 s.
    assert refuses(verifier_for(issuer, key_clock, jwks_timeout=1.0), issuer.token())
    assert issuer.requests == 1


def test_key_endpoint_that_drips_is_cut_at_one_deadline(issuer: Issuer, key_clock: FakeClock) -> None:
    """Every byte arrives well within a per-read timeout; the whole answer does not."""
    issuer.drip = True
    assert refuses(verifier_for(issuer, key_clock, jwks_timeout=0.3), issuer.token())


def test_key_fetch_times_out_in_five_seconds_by_default() -> None:
    settings = Settings.from_env({**BASE_ENV, "JWT_ISSUER": ISSUER, "JWT_AUDIENCE": CLIENT_ID})
    verifier = TokenVerifier.from_settings(settings)
    assert verifier.jwks is not None and verifier.jwks.timeout == JWKS_TIMEOUT_SECONDS == 5
    assert verifier.jwks.uri == ISSUER + "/.well-known/jwks.json"


def test_a_failed_fetch_is_retried_only_after_the_interval(issuer: Issuer, key_clock: FakeClock) -> None:
    verifier = verifier_for(issuer, key_clock)
    issuer.status = 503
    assert refuses(verifier, issuer.token())
    issuer.status = 200
    key_clock.advance(29)
    assert refuses(verifier, issuer.token())  # an endpoint that is down is not asked once per handshake
    assert issuer.requests == 1
    key_clock.advance(1)
    assert verifier.verify(issuer.token()).user_id == "alice"
    assert issuer.requests == 2


def test_held_keys_survive_a_failed_refetch(issuer: Issuer, key_clock: FakeClock) -> None:
    verifier = verifier_for(issuer, key_clock)
    verifier.verify(issuer.token("k1"))
    issuer.status = 500
    assert refuses(verifier, issuer.token("k2"))  # the refetch failed...
    assert verifier.verify(issuer.token("k1")).user_id == "alice"  # ...and k1 is still trusted until it expires
    key_clock.advance(301)
    assert refuses(verifier, issuer.token("k1"))


# ---- token_use and Cognito's client_id -------------------------------------------

def test_token_use_is_checked_when_set(issuer: Issuer, key_clock: FakeClock) -> None:
    id_only = verifier_for(issuer, key_clock, token_use="id")
    assert id_only.verify(issuer.token(token_use="id")).user_id == "alice"
    for bad in (issuer.token(token_use="access"), issuer.token()):
        assert refuses(id_only, bad)


def test_access_tokens_match_the_audience_against_client_id(issuer: Issuer, key_clock: FakeClock) -> None:
    """Cognito's access tokens carry no `aud`; their app client is `client_id`."""
    access = verifier_for(issuer, key_clock, token_use="access")
    assert access.verify(issuer.token(token_use="access", aud=None, client_id=CLIENT_ID)).user_id == "alice"
    for bad in (issuer.token(token_use="access", aud=None, client_id="other-client"),
                issuer.token(token_use="access", aud=None),
                issuer.token(token_use="id", client_id=CLIENT_ID)):
        assert refuses(access, bad)


def test_token_use_through_connect(gateway: ApiGateway, monkeypatch: pytest.MonkeyPatch,
                                   issuer: Issuer, key_clock: FakeClock) -> None:
    use_issuer(gateway, monkeypatch, issuer, key_clock, JWT_TOKEN_USE="id")
    assert gateway.connect(query={"token": issuer.token(token_use="id")})[0] == 200
    assert refused(gateway, issuer.token(token_use="access", sub="bob"))


# ---- HS256 from Secrets Manager, and its rotation ---------------------------------

@pytest.fixture
def secrets(aws: None) -> Any:
    client = boto3.client("secretsmanager", region_name="us-east-1")
    calls: list[str] = []
    client.meta.events.register("provide-client-params.secrets-manager.GetSecretValue",
                                lambda params, **_: calls.append(params.get("VersionStage", "")))
    client.calls = calls  # type: ignore[attr-defined]
    return client


def arn_verifier(client: Any, arn: str, clock: FakeClock, **env: str) -> TokenVerifier:
    settings = Settings.from_env({**BASE_ENV, "JWT_SECRET_ARN": arn, **env})
    return TokenVerifier.from_settings(settings, client, clock=clock)


def test_secret_read_once_from_secrets_manager(secrets: Any, key_clock: FakeClock) -> None:
    arn = secrets.create_secret(Name="realtime/jwt", SecretString=SECRET)["ARN"]
    verifier = arn_verifier(secrets, arn, key_clock)
    assert secrets.calls == ["AWSCURRENT", "AWSPREVIOUS"]  # both stages, at cold start
    for user in ("alice", "bob", "carol"):
        assert verifier.verify(token(user, "Alice")).user_id == user
    assert len(secrets.calls) == 2


def test_a_rotated_secret_is_accepted_at_once_and_the_previous_one_too(secrets: Any, key_clock: FakeClock) -> None:
    arn = secrets.create_secret(Name="realtime/jwt", SecretString=SECRET)["ARN"]
    verifier = arn_verifier(secrets, arn, key_clock)
    secrets.put_secret_value(SecretId=arn, SecretString=OTHER_SECRET)  # AWSCURRENT new, AWSPREVIOUS old
    assert verifier.verify(token("alice", secret=OTHER_SECRET)).user_id == "alice"  # failed, re-read, verified
    assert verifier.verify(token("bob")).user_id == "bob"  # signed before the rotation
    assert len(secrets.calls) == 4


def test_a_cold_start_during_rotation_accepts_both_versions(secrets: Any, key_clock: FakeClock) -> None:
    arn = secrets.create_secret(Name="realtime/jwt", SecretString=SECRET)["ARN"]
    secrets.put_secret_value(SecretId=arn, SecretString=OTHER_SECRET)
    verifier = arn_verifier(secrets, arn, key_clock)
    assert verifier.verify(token("alice")).user_id == "alice"
    assert verifier.verify(token("bob", secret=OTHER_SECRET)).user_id == "bob"
    assert len(secrets.calls) == 2


def test_secret_rereads_after_failures_are_at_most_one_a_minute(secrets: Any, key_clock: FakeClock) -> None:
    arn = secrets.create_secret(Name="realtime/jwt", SecretString=SECRET)["ARN"]
    verifier = arn_verifier(secrets, arn, key_clock)
    forged = token("mallory", secret="x" * 40)
    for _ in range(59):
        assert refuses(verifier, forged)
        key_clock.advance(1)
    assert len(secrets.calls) == 4  # cold start + one re-read
    key_clock.advance(1)
    assert refuses(verifier, forged)
    assert len(secrets.calls) == 6


def test_a_secret_moved_out_of_both_stages_stops_verifying(secrets: Any, key_clock: FakeClock) -> None:
    """Rotating twice revokes a leaked secret within JWT_SECRET_CACHE_SECONDS."""
    arn = secrets.create_secret(Name="realtime/jwt", SecretString=SECRET)["ARN"]
    verifier = arn_verifier(secrets, arn, key_clock, JWT_SECRET_CACHE_SECONDS="120")
    leaked = token("mallory")
    secrets.put_secret_value(SecretId=arn, SecretString=OTHER_SECRET)
    secrets.put_secret_value(SecretId=arn, SecretString="a-third-secret-that-is-long-enough-!!")
    assert verifier.verify(leaked).user_id == "mallory"  # held until the cache expires
    key_clock.advance(121)
    assert refuses(verifier, leaked)


def test_a_short_secret_in_secrets_manager_is_a_configuration_error(secrets: Any, key_clock: FakeClock) -> None:
    arn = secrets.create_secret(Name="realtime/jwt", SecretString="too-short")["ARN"]
    with pytest.raises(ConfigurationError):
        arn_verifier(secrets, arn, key_clock)


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # signing with the short secret
def test_a_short_rotated_secret_is_ignored(secrets: Any, key_clock: FakeClock,
                                           realtime_logs: list[logging.LogRecord]) -> None:
    arn = secrets.create_secret(Name="realtime/jwt", SecretString=SECRET)["ARN"]
    verifier = arn_verifier(secrets, arn, key_clock)
    secrets.put_secret_value(SecretId=arn, SecretString="short")
    assert refuses(verifier, jwt.encode({"sub": "a", "exp": int(time.time()) + 60}, "short", algorithm="HS256"))
    assert verifier.verify(token("alice")).user_id == "alice"  # AWSPREVIOUS still verifies
    assert any(r.levelname == "ERROR" and "shorter than" in r.getMessage() for r in realtime_logs)
    assert "short" not in " ".join(str(r.args) for r in realtime_logs)  # the secret itself is never logged


def test_an_unreadable_secret_refuses_tokens_but_not_anonymous_clients(
        gateway: ApiGateway, monkeypatch: pytest.MonkeyPatch, realtime_logs: list[logging.LogRecord]) -> None:
    monkeypatch.delenv("JWT_SECRET")
    monkeypatch.setenv("JWT_SECRET_ARN", "arn:aws:secretsmanager:us-east-1:123456789012:secret:realtime/missing-AbCdEf")
    gateway.reset_runtime()
    assert refused(gateway, token("alice"))
    assert gateway.connect()[0] == 200
    assert any(r.levelname == "ERROR" and "could not be read" in r.getMessage() for r in realtime_logs)


def test_rotation_through_connect(gateway: ApiGateway, monkeypatch: pytest.MonkeyPatch) -> None:
    client = boto3.client("secretsmanager", region_name="us-east-1")
    arn = client.create_secret(Name="realtime/jwt", SecretString=SECRET)["ARN"]
    monkeypatch.delenv("JWT_SECRET")
    monkeypatch.setenv("JWT_SECRET_ARN", arn)
    gateway.reset_runtime()
    assert gateway.connect(query={"token": token("alice")})[0] == 200
    client.put_secret_value(SecretId=arn, SecretString=OTHER_SECRET)
    assert gateway.connect(query={"token": token("bob", secret=OTHER_SECRET)})[0] == 200
    assert gateway.connect(query={"token": token("carol")})[0] == 200
    assert refused(gateway, token("mallory", secret="y" * 40))
    assert runtime.verifier() is runtime.verifier()  # one verifier per container, secrets re-read inside it


# ---- display names ----------------------------------------------------------------

@pytest.mark.parametrize(("raw", "shown"), [
    ("Alice", "Alice"),
    ("\u202eAlice", "Alice"),  # right-to-left override
    ("Al\u200bice\u200d", "Alice"),  # zero-width space and joiner
    ("Alice\u2066 Admin\u2069", "Alice Admin"),  # bidi isolates
    ("\ufeffAlice\u00ad", "Alice"),  # byte-order mark, soft hyphen
    ("Alice\nAdmin\r\n", "Alice Admin"),
    ("Alice\u2028Admin", "Alice Admin"),  # line separator
    ("  Alice \u00a0\u3000 Admin  ", "Alice Admin"),
    ("\uff21\uff4c\uff49\uff43\uff45", "Alice"),  # full-width
    ("Al\x00ice\x1b[31m", "Alice[31m"),
    ("\ue000Alice", "Alice"),  # private use
    ("Zoë 李", "Zoë 李"),
    ("\u200b\u202e ", None),
    ("", None),
    (42, None),
    (None, None),
])
def test_display_names_are_cleaned(raw: Any, shown: str | None) -> None:
    assert clean_name(raw) == shown


def test_display_names_are_capped_at_64_characters() -> None:
    assert MAX_NAME_CHARS == 64
    assert clean_name("A" * 200) == "A" * 64
    assert clean_name("Alice " + "\u200b" * 100 + "B" * 100) == "Alice " + "B" * 58
    assert clean_name("x" * 63 + " y") == "x" * 63


def test_presence_shows_the_cleaned_name(gateway: ApiGateway) -> None:
    gateway.put_document("roadmap", "Roadmap")
    watcher = gateway.login("wes")
    gateway.send(watcher, {"action": "subscribe", "stream": "document", "document": "roadmap"})
    mallory = gateway.login("mallory", "\u202enimdA ecilA" + "\u200b" * 10 + "x" * 100)
    gateway.send(mallory, {"action": "enter", "document": "roadmap", "phase": "view"})
    (entry,) = gateway.last(watcher, "document")["phases"]["view"]
    assert entry == {"user": "mallory", "name": "nimdA ecilA" + "x" * 53}
