// The demo page's pure helpers (client/demo-helpers.js).
import assert from "node:assert/strict";
import {test} from "node:test";

import {ALERT_CHARS, alertResult, alertText, commentTime, imageUrl, moreText, personParts, websocketOverride} from "../demo-helpers.js";

const page = {hostname: "demo.example.com", href: "https://demo.example.com/index.html?user=alice"};

test("?ws= naming this page's own host is used (any port, ws or wss)", () => {
  assert.deepEqual(websocketOverride("wss://demo.example.com/prod", page), {url: "wss://demo.example.com/prod"});
  assert.deepEqual(websocketOverride("ws://DEMO.example.com:3001", page), {url: "ws://DEMO.example.com:3001"});
});

test("?ws= naming loopback is used: 127.0.0.1, ::1, localhost", () => {
  for (const url of ["ws://127.0.0.1:3001", "ws://[::1]:3001/", "ws://localhost:3001"]) {
    assert.deepEqual(websocketOverride(url, page), {url}, url);
  }
});

test("?ws= naming any other host is ignored, and the reason names the host and the risk", () => {
  for (const url of ["wss://evil.example/prod", "ws://demo.example.com.evil.example", "ws://localhost.evil.example",
                     "ws://127.0.0.2:3001", "wss://user:pw@evil.example"]) {
    const answer = websocketOverride(url, page);
    assert.equal("url" in answer, false, url);
    assert.match(answer.reason, /token/, url);
  }
  assert.match(websocketOverride("wss://evil.example:444/x", page).reason, /Ignored \?ws=evil\.example:444/);
});

test("?ws= that is not a ws:// or wss:// URL is ignored", () => {
  assert.match(websocketOverride("not a url", page).reason, /not a URL/);
  assert.match(websocketOverride("https://demo.example.com/", page).reason, /ws:\/\/ or wss:\/\//);
  assert.match(websocketOverride("javascript:alert(1)", page).reason, /ws:\/\/ or wss:\/\//);
});

test("a page on loopback accepts its own host too", () => {
  assert.deepEqual(websocketOverride("ws://127.0.0.1:3001", {hostname: "127.0.0.1"}), {url: "ws://127.0.0.1:3001"});
});

test("personParts: the name with the id, or the id alone when there is no other name", () => {
  assert.deepEqual(personParts({user: "alice", name: "Alice"}), {name: "Alice", user: "alice"});
  assert.deepEqual(personParts({user: "alice", name: "alice"}), {name: null, user: "alice"});
  assert.deepEqual(personParts({user: "alice", name: "   "}), {name: null, user: "alice"});
  assert.deepEqual(personParts({user: "alice"}), {name: null, user: "alice"});
});

test("moreText: 'and N more' only when some were left out", () => {
  assert.equal(moreText(0), "");
  assert.equal(moreText(54), "and 54 more");
  assert.equal(moreText(1234), "and 1,234 more");
});

test("imageUrl: same-origin paths and https only", () => {
  assert.equal(imageUrl("/static/welcome.png", page), "https://demo.example.com/static/welcome.png");
  assert.equal(imageUrl("https://cdn.example/a.png", page), "https://cdn.example/a.png");
  assert.equal(imageUrl("http://tracker.example/p.gif", page), null);
  assert.equal(imageUrl("javascript:alert(1)", page), null);
  assert.equal(imageUrl("", page), null);
  assert.equal(imageUrl(undefined, page), null);
});

test("alertText: title and text when they are strings, else the payload as JSON, clipped", () => {
  assert.deepEqual(alertText({text: "Your export is ready"}), {heading: "Alert", body: "Your export is ready"});
  assert.deepEqual(alertText({title: "Billing", text: "Paid"}), {heading: "Alert: Billing", body: "Paid"});
  assert.deepEqual(alertText({level: 3}), {heading: "Alert", body: '{"level":3}'});
  assert.deepEqual(alertText({title: "Only a title"}), {heading: "Alert: Only a title", body: ""});
  assert.deepEqual(alertText({text: 42}), {heading: "Alert", body: '{"text":42}'});
  const long = alertText({text: "é".repeat(1000)});
  assert.equal([...long.body].length, ALERT_CHARS);
  assert.ok(long.body.endsWith("…"));
});

test("alertResult: 202 names the event; 400, 403, 502 and a missing route say what happened", () => {
  assert.deepEqual(alertResult(202, {eventId: "e-1", bus: "realtime-realtime"}),
                   {ok: true, text: "Published: event e-1 on bus realtime-realtime"});
  assert.match(alertResult(400, {error: "payload must be a JSON object"}).text, /malformed \(400\): payload must be/);
  assert.match(alertResult(403, {error: "writes are taken only from the demo page's own origin"}).text, /^Refused \(403\)/);
  assert.match(alertResult(502, {error: "throttled"}).text, /event bus did not take it \(502\): throttled/);
  assert.match(alertResult(404, null).text, /no POST \/dev\/alerts route/);
  for (const status of [400, 403, 404, 502, 500]) assert.equal(alertResult(status, {}).ok, false);
});

test("commentTime: the server's ISO time as people read it; anything else as it is", () => {
  const shown = commentTime("2026-02-03T04:05:06.789+00:00");
  assert.match(shown, /2026/);
  assert.doesNotMatch(shown, /T04:05/);
  assert.equal(commentTime("not a time"), "not a time");
  assert.equal(commentTime(42), "42");
});
