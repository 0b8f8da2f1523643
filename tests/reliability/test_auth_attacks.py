"""Auth attacks through the real handlers (extends tests/test_auth.py, no duplicates).

Covered there: expired, wrong key, `alg: none`, nbf/iat in the future, missing claims,
one truncation, garbage, HS512, a token in `Authorization`, a simple cross-site Origin.
Here: every truncation, alg/key confusion, header-chosen keys (`jku`, `x5u`, `jwk`), any
key set the issuer's endpoint could answer, wrong issuer or audience through `$connect`,
tokens in other places, Origin spoofing variants, anonymous reach, a reader removed
mid-session, and a client naming another connection.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests import streams
from tests.apigw import SECRET, ApiGateway, LambdaContext, token
from tests.issuer import CLIENT_ID, ISSUER, FakeClock, Issuer, issuer, key_clock, serving, verifier_for  # noqa: F401
from tests.reliability import invariants
from tests.reliability.conftest import fuzz_settings
from tests.streams import image, record


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def refused(gw: ApiGateway, tok: str, **kw: Any) -> bool:
    before = invariants.scan(gw.dynamodb)
    status, _ = gw.connect(query={"token": tok}, **kw)
    return status == 401 and invariants.scan(gw.dynamodb) == before


@fuzz_settings(60)
@given(cut=st.integers(1, 400))
def test_every_truncation_is_refused(gateway: ApiGateway, cut: int) -> None:
    good = token("alice", "Alice")
    truncated = good[: max(0, len(good) - cut)]
    assert refused(gateway, truncated)


@fuzz_settings(60)
@given(position=st.integers(0, 400), char=st.sampled_from("AaZz09-_."))
def test_every_single_character_change_is_refused(gateway: ApiGateway, position: int, char: str) -> None:
    good = token("alice", "Alice")
    i = position % len(good)
    forged = good[:i] + char + good[i + 1:]
    if forged == good:
        return
    header, payload, signature = forged.split(".") if forged.count(".") == 2 else ("", "", "")
    # Changing only the unused low bits of the last base64url character can decode to the same bytes.
    if (header, payload) == tuple(good.split(".")[:2]) and _same_bytes(signature, good.split(".")[2]):
        return
    assert refused(gateway, forged)


def _same_bytes(a: str, b: str) -> bool:
    def dec(s: str) -> bytes:
        return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))

    try:
        return dec(a) == dec(b)
    except Exception:  # noqa: BLE001
        return False


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_unsigned_tokens_in_every_spelling(gateway: ApiGateway, alg: str) -> None:
    claims = {"sub": "alice", "exp": int(time.time()) + 300}
    for signature in ("", "AAAA", b64({"x": 1})):
        assert refused(gateway, f"{b64({'alg': alg, 'typ': 'JWT'})}.{b64(claims)}.{signature}")


def test_signature_of_another_token_is_refused(gateway: ApiGateway) -> None:
    """A valid header and signature stitched onto someone else's claims."""
    mine, theirs = token("mallory").split("."), token("alice").split(".")
    assert refused(gateway, f"{mine[0]}.{theirs[1]}.{mine[2]}")


def test_other_algorithms_and_kid_tricks(gateway: ApiGateway) -> None:
    claims = {"sub": "alice", "exp": int(time.time()) + 300}
    # A kid never selects a key for HS256: a path-like kid changes nothing (still valid, still alice).
    assert gateway.connect(query={"token": jwt.encode(claims, SECRET, algorithm="HS256",
                                                       headers={"kid": "../../etc/passwd"})})[0] == 200
    for headers in ({"alg": "RS256"}, {"alg": "ES256"}, {"alg": "HS256", "crit": ["exp"]}, {"alg": "PS256"}):
        assert refused(gateway, f"{b64({**headers, 'typ': 'JWT'})}.{b64(claims)}.{b64({'sig': 1})}")


def test_hs256_signed_with_the_public_key_on_an_rs256_deployment(issuer: Issuer, key_clock: FakeClock) -> None:
    """Key confusion: the issuer's public key used as an HMAC secret must not verify."""
    import hashlib
    import hmac

    from cryptography.hazmat.primitives import serialization

    from realtime.auth import AuthError

    verifier = verifier_for(issuer, key_clock)
    public_pem = issuer.private["k1"].public_key().public_bytes(serialization.Encoding.PEM,
                                                                 serialization.PublicFormat.SubjectPublicKeyInfo)
    jwk_json = json.dumps(issuer.jwk("k1")).encode()
    claims = {"sub": "alice", "exp": int(time.time()) + 60, "iss": ISSUER, "aud": CLIENT_ID}
    for alg in ("HS256", "RS256"):  # RS256 in the header, HMAC in the signature
        header = b64({"alg": alg, "typ": "JWT", "kid": "k1"})
        signing_input = f"{header}.{b64(claims)}".encode()
        for secret in (public_pem, jwk_json):
            digest = hmac.new(secret, signing_input, hashlib.sha256).digest()
            sig = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
            with pytest.raises(AuthError):
                verifier.verify(f"{header}.{b64(claims)}.{sig}")


def test_a_token_cannot_choose_where_keys_come_from(issuer: Issuer, key_clock: FakeClock) -> None:
    """`jku`, `x5u` and an embedded `jwk` in the header are ignored: keys come from the configured set only."""
    from realtime.auth import AuthError

    verifier = verifier_for(issuer, key_clock)
    issuer.add_key("mallory")
    with serving(Issuer()) as elsewhere:
        elsewhere.private["mallory"] = issuer.private["mallory"]
        elsewhere.publish("mallory")
        for header in ({"jku": elsewhere.url}, {"x5u": elsewhere.url}, {"jwk": issuer.jwk("mallory")}):
            claims = {"sub": "alice", "iss": ISSUER, "aud": CLIENT_ID, "exp": int(time.time()) + 60}
            forged = jwt.encode(claims, issuer.private["mallory"], algorithm="RS256", headers={"kid": "k1", **header})
            with pytest.raises(AuthError):
                verifier.verify(forged)
        assert elsewhere.requests == 0
    assert issuer.requests == 1


@fuzz_settings(40)
@given(key_set=st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["keys", "kty", "kid", "n", "e", "alg", "use", "k", "crv", "x", "y"]) | st.text(max_size=5),
        inner, max_size=6),
    max_leaves=20))
def test_any_key_set_is_a_401_never_a_crash(issuer: Issuer, key_clock: FakeClock, key_set: Any) -> None:
    from realtime.auth import AuthError

    issuer.body = json.dumps(key_set).encode()
    verifier = verifier_for(issuer, key_clock)
    with pytest.raises(AuthError) as refused_:
        verifier.verify(issuer.token())
    assert refused_.value.status == 401


def test_wrong_issuer_or_audience_through_connect(gateway: ApiGateway, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWT_ISSUER", "https://auth.example.com")
    monkeypatch.setenv("JWT_AUDIENCE", "realtime")
    gateway.reset_runtime()
    good = {"iss": "https://auth.example.com", "aud": "realtime"}
    assert gateway.connect(query={"token": token("alice", **good)})[0] == 200
    for claims in ({"iss": "https://evil.example.com", "aud": "realtime"},
                   {"iss": "https://auth.example.com", "aud": "other"},
                   {"iss": "https://auth.example.com"}, {"aud": "realtime"},
                   {"iss": "https://auth.example.com/", "aud": "realtime"},
                   {"iss": "https://auth.example.com", "aud": ["other", "more"]}):
        assert refused(gateway, token("alice", **claims)), claims


@pytest.mark.parametrize("sub", ["", " " * 0, "a" * 257, "bad\x00user", "line\nbreak",
                                 "\u202enimda", "ali\u200dce", "alice\u2028", "\ufeffalice", "\ue000alice"])
def test_unusable_subjects_are_refused(gateway: ApiGateway, sub: str) -> None:
    assert refused(gateway, token(sub))


@pytest.mark.parametrize("headers", [
    {"Authorization": "Bearer {t}"}, {"authorization": "{t}"}, {"Sec-WebSocket-Protocol": "{t}"},
    {"Cookie": "token={t}"}, {"X-Token": "{t}"}, {"token": "{t}"},
])
def test_tokens_anywhere_but_the_query_are_ignored(gateway: ApiGateway, headers: dict[str, str]) -> None:
    """A browser cannot set these; a client that does gets an anonymous connection, never a user."""
    watcher = gateway.login("wes")
    gateway.send(watcher, {"action": "subscribe", "stream": "users"})
    status, cid = gateway.connect(headers={k: v.format(t=token("alice")) for k, v in headers.items()})
    assert status == 200
    assert gateway.send(cid, {"action": "subscribe", "stream": "notifications"})[0]["payload"]["code"] == "unauthenticated"
    assert gateway.last(watcher, "users") == {"users": 1}
    assert invariants.Model.read(gateway.dynamodb).connections[cid].get("uid") is None


@pytest.mark.parametrize("origin", [
    "https://evil.example.net", "null", "https://app.example.com.evil.net", "https://evil.net/https://app.example.com",
    "http://app.example.com", "https://app.example.com:8443", "https://APP.example.com.evil", "https://app.example.co",
    "", " https://app.example.com", "https://app.example.com@evil.net",
])
def test_cross_site_origins_are_refused_before_the_token(gateway: ApiGateway, monkeypatch: pytest.MonkeyPatch,
                                                         origin: str) -> None:
    monkeypatch.setenv("ALLOWED_ORIGINS", "https://app.example.com")
    gateway.reset_runtime()
    before = invariants.scan(gateway.dynamodb)
    assert gateway.connect(headers={"Origin": origin}, query={"token": token("alice")})[0] == 403
    assert gateway.connect(headers={"oRiGiN": origin})[0] == 403
    assert invariants.scan(gateway.dynamodb) == before


def test_anonymous_reach(gateway: ApiGateway) -> None:
    """Anonymous: no presence, no notifications, no private document by any route."""
    gw = gateway
    gw.put_document("public", "Public")
    gw.put_document("secret", "Secret", visibility="private", owner="zoe", readers=["yan"])
    carol = gw.anonymous()
    for frame, code in (({"action": "enter", "document": "public", "phase": "view"}, "unauthenticated"),
                        ({"action": "enter", "document": "secret", "phase": "view"}, "unauthenticated"),
                        ({"action": "subscribe", "stream": "notifications"}, "unauthenticated"),
                        ({"action": "subscribe", "stream": "document", "document": "secret"}, "forbidden")):
        (reply,) = gw.send(carol, frame)
        assert reply["payload"]["code"] == code
    snapshot = gw.send(carol, {"action": "subscribe", "stream": "documents"})[0]["payload"]
    assert [d["document"] for d in snapshot["documents"]] == ["public"]
    # Zoe's presence on the secret document, and its updates, never reach Carol.
    zoe = gw.login("zoe", "Zoe")
    gw.send(zoe, {"action": "enter", "document": "secret", "phase": "edit"})
    from functions.notify import app as notify

    notify.handler(streams.event(record("MODIFY", "secret", old=image(title="Secret", visibility="private", owner="zoe"),
                                        new=image(title="Secret 2", visibility="private", owner="zoe"))), LambdaContext())
    raw = b"".join(gw.stub.received(carol))
    assert b"secret" not in raw.lower() and b"Zoe" not in raw


def test_reader_removed_mid_session(gateway: ApiGateway) -> None:
    gw = gateway
    from functions.notify import app as notify

    def write(old: dict | None, new: dict | None, name: str = "MODIFY") -> None:
        rec = record(name, "plan", old=image(**old) if old else None, new=image(**new) if new else None)
        assert notify.handler(streams.event(rec), LambdaContext()) == {"batchItemFailures": []}

    shared = {"title": "Plan", "visibility": "private", "owner": "alice", "readers": ["bob"]}
    gw.put_document("plan", **{k: v for k, v in shared.items() if k != "title"}, title="Plan")
    alice, bob = gw.login("alice", "Alice"), gw.login("bob", "Bob")
    for cid in (alice, bob):
        gw.send(cid, {"action": "subscribe", "stream": "notifications"})
        gw.send(cid, {"action": "subscribe", "stream": "documents"})
        assert gw.send(cid, {"action": "subscribe", "stream": "document", "document": "plan"})[0]["stream"] == "document"

    revoked = {**shared, "readers": []}
    gw.put_document("plan", "Plan", visibility="private", owner="alice", readers=[])
    write(shared, revoked)
    bob_notes = [f["payload"] for f in gw.frames(bob) if f["stream"] == "notifications"]
    assert [(n["action"], n["data"]) for n in bob_notes] == [("delete", {"slug": "plan"})]
    assert gw.last(bob, "document") == {"document": "plan", "removed": True}
    assert gw.last(bob, "documents") == {"documents": [{"document": "plan", "removed": True}], "full": False}
    mark = len(gw.frames(bob))

    # Afterwards: updates, presence and renames of the document never reach Bob...
    write(revoked, {**revoked, "title": "Plan B", "abstract": "secret plans"})
    gw.send(alice, {"action": "enter", "document": "plan", "phase": "edit"})
    gw.send(alice, {"action": "leave", "document": "plan", "phase": "edit"})
    assert gw.frames(bob)[mark:] == []
    assert [f["payload"]["action"] for f in gw.frames(alice) if f["stream"] == "notifications"] == ["update"]
    # ... and he cannot come back in by asking.
    for frame in ({"action": "subscribe", "stream": "document", "document": "plan"},
                  {"action": "enter", "document": "plan", "phase": "view"}):
        assert gw.send(bob, frame)[0]["payload"]["code"] == "forbidden"
    assert f"c#{bob}" not in {i["pk"]["S"] for i in invariants.scan(gw.dynamodb) if i["sk"]["S"] == "g#document/plan"}


VICTIM_FIELDS = ("connectionId", "connection_id", "conn", "cid", "to", "target", "id", "document", "sk", "pk", "gsk")


def test_a_guessed_connection_id_gives_no_power(gateway: ApiGateway) -> None:
    """The protocol never takes a connection id from the client: frames naming the victim's id
    in any field (and in the slug, encoded or not) neither post to, read for, nor change the victim."""
    gw = gateway
    gw.put_document("roadmap", "Roadmap")
    victim = gw.login("vic", "Vic")
    gw.send(victim, {"action": "subscribe", "stream": "users"})
    gw.send(victim, {"action": "subscribe", "stream": "document", "document": "roadmap"})
    gw.send(victim, {"action": "enter", "document": "roadmap", "phase": "view"})
    mallory = gw.login("mallory", "Mallory")
    victim_items = sorted(map(str, (i for i in invariants.scan(gw.dynamodb) if victim in json.dumps(i)
                                    and i["pk"]["S"] != "users")))
    heard = len(gw.frames(victim))
    frames = []
    for action, extra in (("unsubscribe", {"stream": "users"}), ("unsubscribe", {"stream": "document", "document": "roadmap"}),
                          ("leave", {"document": "roadmap", "phase": "view"}), ("heartbeat", {}),
                          ("subscribe", {"stream": "notifications"}), ("enter", {"document": "roadmap", "phase": "edit"}),
                          ("leave", {"document": "roadmap", "phase": "edit"})):
        for field in VICTIM_FIELDS:
            frames.append({"action": action, **extra, field: victim})
        frames.append({"action": "leave", "document": f"roadmap#view#{victim}", "phase": "view"})
        frames.append({"action": "leave", "document": "roadmap", "phase": f"view#{victim}"})
        frames.append({"action": action, **extra, "requestContext": {"connectionId": victim}})
    for frame in frames:
        gw.send(mallory, frame)
    after = sorted(map(str, (i for i in invariants.scan(gw.dynamodb) if victim in json.dumps(i) and i["pk"]["S"] != "users")))
    assert after == victim_items  # the victim's record, memberships and presence untouched
    # The victim heard only what everyone hears (Mallory's own presence broadcast), nothing addressed by Mallory.
    extra_frames = gw.frames(victim)[heard:]
    assert all(f["stream"] == "document" for f in extra_frames), extra_frames
    assert all(f["payload"]["phases"]["view"] == [{"user": "vic", "name": "Vic"}] for f in extra_frames)
    assert invariants.all_problems(gw.dynamodb, gw.stub.is_live) == []


def test_presence_shows_the_token_identity_not_what_the_frame_claims(gateway: ApiGateway) -> None:
    gw = gateway
    gw.put_document("roadmap", "Roadmap")
    watcher = gw.login("wes")
    gw.send(watcher, {"action": "subscribe", "stream": "document", "document": "roadmap"})
    mallory = gw.login("mallory", "Mallory")
    gw.send(mallory, {"action": "enter", "document": "roadmap", "phase": "edit", "user": "alice", "name": "Alice",
                      "uid": "alice", "sub": "alice"})
    assert gw.last(watcher, "document")["phases"]["edit"] == [{"user": "mallory", "name": "Mallory"}]
