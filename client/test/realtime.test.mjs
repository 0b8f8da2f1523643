// Unit tests of client/realtime.js against a fake WebSocket and a fake clock:
// node --test client/test/
import assert from "node:assert/strict";
import {test} from "node:test";

import {backoffCeiling, backoffDelay, RealtimeError} from "../realtime.js";
import {settle} from "./fakes.mjs";
import {open, setup, URL} from "./helpers.mjs";

// ------------------------------------------------------------------ connecting, state

test("connects with the token in the query string, and reports its states", async () => {
  const {client, sockets, states} = await setup({token: "a b&c"});
  assert.equal(sockets.length, 1);
  assert.equal(sockets[0].url, `${URL}?token=a%20b%26c`);
  assert.equal(client.state, "connecting");
  sockets[0].accept();
  assert.deepEqual(states, ["open"]);
  sockets[0].drop();
  assert.deepEqual(states, ["open", "reconnecting"]);
  client.close();
  assert.deepEqual(states, ["open", "reconnecting", "closed"]);
});

test("a token function is called before every attempt (a fresh token each time)", async () => {
  let calls = 0;
  const {sockets, clock} = await setup({token: async () => `t${++calls}`});
  sockets[0].refuse();
  await clock.advance(1000);
  assert.equal(sockets.length, 2);
  assert.deepEqual(sockets.map((s) => s.url), [`${URL}?token=t1`, `${URL}?token=t2`]);
});

test("no token: an anonymous connection (no query string)", async () => {
  const {sockets} = await setup();
  assert.equal(sockets[0].url, URL);
});

test("close() stops for good: no reconnect, pending requests reject with code closed", async () => {
  const {client, clock, sockets, states} = await open();
  const pending = client.subscribe("users");
  client.close();
  await assert.rejects(pending, {code: "closed"});
  await clock.advance(120000);
  assert.equal(sockets.length, 1);
  assert.equal(states.at(-1), "closed");
  assert.equal(sockets[0].closedWith.code, 1000);
});

// ------------------------------------------------------------------ backoff

test("backoff ceilings double from 1 s and are capped at 30 s", () => {
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 10, 100].map((n) => backoffCeiling(n)),
    [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000]);
  // Full jitter: uniform in [0, ceiling).
  assert.equal(backoffDelay(3, () => 0), 0);
  assert.equal(backoffDelay(3, () => 0.999999), 7999);
  assert.equal(backoffDelay(30, () => 0.5), 15000);
});

test("reconnect attempts wait random() * min(30 s, 1 s * 2^n) and reset after a success", async () => {
  const delays = [];
  const {client, clock, sockets} = await setup({maxRefusals: Infinity});
  client.on("reconnecting", ({delay}) => delays.push(delay));
  const opened = [];
  for (let i = 0; i < 8; i += 1) {
    sockets.at(-1).refuse();
    const before = sockets.length;
    const started = clock.now();
    // Nothing before the delay is over...
    await clock.advance(delays.at(-1) - 1);
    assert.equal(sockets.length, before, `attempt ${i + 1} came early`);
    // ...and the attempt right when it is.
    await clock.advance(1);
    assert.equal(sockets.length, before + 1, `attempt ${i + 1} did not come`);
    opened.push(clock.now() - started);
  }
  assert.deepEqual(delays, [500, 1000, 2000, 4000, 8000, 15000, 15000, 15000]);
  assert.deepEqual(opened, delays);
  // A success resets the backoff.
  sockets.at(-1).accept();
  sockets.at(-1).drop();
  assert.equal(delays.at(-1), 500);
  assert.equal(client.state, "reconnecting");
});

test("full jitter: the delay follows random() between 0 and the ceiling", async () => {
  const values = [0, 0.25, 0.999];
  const delays = [];
  const {client, clock, sockets} = await setup({random: () => values.shift() ?? 0});
  client.on("reconnecting", ({delay}) => delays.push(delay));
  sockets[0].refuse();
  await clock.advance(0);
  sockets[1].refuse();
  await clock.advance(500);
  sockets[2].refuse();
  assert.deepEqual(delays, [0, 500, 3996]);
});

test("a socket that never opens is abandoned after openTimeoutMs and retried", async () => {
  const {clock, sockets} = await setup({openTimeoutMs: 5000});
  await clock.advance(5000);
  assert.ok(sockets[0].closedWith, "the stuck socket was closed");
  await clock.advance(500);
  assert.equal(sockets.length, 2);
});

test("reconnect() skips the backoff wait", async () => {
  const {client, clock, sockets} = await setup({random: () => 0.99});
  sockets[0].refuse();
  await clock.advance(10);
  assert.equal(sockets.length, 1);
  client.reconnect();
  await settle();
  assert.equal(sockets.length, 2);
});

// ------------------------------------------------------------------ requests: ack, error, timeout

test("subscribe resolves on the ack, after the snapshot reached the listeners", async () => {
  const {client, sockets} = await open();
  const seen = [];
  client.stream("users").listen((payload) => seen.push(payload));
  let resolved = false;
  const done = client.subscribe("users").then((ack) => {
    resolved = true;
    return ack;
  });
  const frame = sockets[0].last("subscribe");
  assert.deepEqual(frame, {action: "subscribe", stream: "users", id: frame.id});
  sockets[0].push("users", {users: 3});
  await settle();
  assert.equal(resolved, false, "resolved before the ack");
  sockets[0].ack(frame.id);
  assert.deepEqual(await done, {id: frame.id});
  assert.deepEqual(seen, [{users: 3}]);
});

test("requests reject with the error frame's code and message; the page forgets them", async () => {
  const {client, sockets} = await open();
  const subscribing = client.subscribe("document", {document: "secret"});
  const entering = client.enter("welcome", "edit");
  const [sub, enter] = sockets[0].sent;
  sockets[0].error(sub.id, "forbidden", "you may not read this document");
  sockets[0].error(enter.id, "unauthenticated", "sign in first");
  await assert.rejects(subscribing, (error) => {
    assert.ok(error instanceof RealtimeError && error instanceof Error);
    assert.equal(error.code, "forbidden");
    assert.equal(error.message, "you may not read this document");
    assert.equal(error.frame.document, "secret");
    return true;
  });
  await assert.rejects(entering, {code: "unauthenticated", message: "sign in first"});
  assert.deepEqual(client.subscribed(), []);
  assert.deepEqual(client.held(), []);
});

test("an error frame nobody waits for is reported as an error event", async () => {
  const {client, sockets} = await open();
  const errors = [];
  client.on("error", (e) => errors.push(e));
  sockets[0].push("error", {code: "bad_request", message: "not JSON"});
  assert.deepEqual(errors, [{code: "bad_request", message: "not JSON"}]);
});

test("a request without an answer rejects with code timeout after ackTimeoutMs", async () => {
  const {client, clock} = await open({ackTimeoutMs: 3000});
  const done = client.subscribe("documents");
  let settled = false;
  done.catch(() => (settled = true));
  await clock.advance(2999);
  assert.equal(settled, false);
  await clock.advance(1);
  await assert.rejects(done, {code: "timeout"});
});

test("ids are unique and echoed: answers settle the right request whatever their order", async () => {
  const {client, sockets} = await open();
  const a = client.subscribe("users");
  const b = client.subscribe("documents");
  const [fa, fb] = sockets[0].sent;
  assert.notEqual(fa.id, fb.id);
  sockets[0].error(fb.id, "internal", "boom");
  sockets[0].ack(fa.id);
  assert.deepEqual(await a, {id: fa.id});
  await assert.rejects(b, {code: "internal"});
});

test("request() sends any frame with an id and settles on its answer", async () => {
  const {client, sockets} = await open();
  const done = client.request({action: "heartbeat"});
  sockets[0].ack(sockets[0].last("heartbeat").id);
  await done;
});

// ------------------------------------------------------------------ demultiplexing

test("stream(name).listen gets only that stream's payloads; unlisten stops them", async () => {
  const {client, sockets} = await open();
  const users = [];
  const docs = [];
  const stop = client.stream("users").listen((p) => users.push(p));
  client.stream("documents").listen((p) => docs.push(p));
  sockets[0].push("users", {users: 1});
  sockets[0].push("documents", {documents: [], full: true});
  stop();
  sockets[0].push("users", {users: 2});
  assert.deepEqual(users, [{users: 1}]);
  assert.deepEqual(docs, [{documents: [], full: true}]);
  assert.equal(client.stream("users"), client.stream("users"));
});

// ------------------------------------------------------------------ resubscribe, re-enter

test("after a reconnect it re-subscribes every stream and re-enters every presence", async () => {
  const {client, clock, sockets} = await open();
  client.subscribe("users");
  client.subscribe("documents");
  client.subscribe("document", {document: "roadmap"});
  client.subscribe("document", {document: "old"});
  client.subscribe("notifications");
  client.enter("roadmap", "edit");
  client.enter("roadmap", "view");
  sockets[0].ackAll();
  await settle();
  client.unsubscribe("document", {document: "old"});
  client.leave("roadmap", "view");
  sockets[0].ackAll();
  sockets[0].drop(1006);
  await clock.advance(500);
  assert.equal(sockets.length, 2);
  sockets[1].accept();
  const again = sockets[1].sent.map(({id, ...frame}) => frame);
  assert.deepEqual(again, [
    {action: "subscribe", stream: "users"},
    {action: "subscribe", stream: "documents"},
    {action: "subscribe", stream: "document", document: "roadmap"},
    {action: "subscribe", stream: "notifications"},
    {action: "enter", document: "roadmap", phase: "edit"},
  ]);
  assert.ok(sockets[1].sent.every((frame) => frame.id !== undefined), "replays carry ids");
});

test("a replay the server refuses is forgotten and reported", async () => {
  const {client, clock, sockets} = await open();
  const errors = [];
  client.on("error", (e) => errors.push(e));
  client.subscribe("document", {document: "was-public"});
  sockets[0].ackAll();
  await settle();
  sockets[0].drop();
  await clock.advance(500);
  sockets[1].accept();
  sockets[1].error(sockets[1].last("subscribe").id, "forbidden", "no longer readable");
  assert.equal(errors.length, 1);
  assert.equal(errors[0].code, "forbidden");
  assert.deepEqual(client.subscribed(), []);
  sockets[1].drop();
  await clock.advance(500);
  sockets[2].accept();
  assert.deepEqual(sockets[2].sent, []);
});

test("a request lost with its socket is answered on the next one (same promise)", async () => {
  const {client, clock, sockets} = await open();
  const entering = client.enter("roadmap", "review");
  const sent = sockets[0].last("enter");
  sockets[0].drop();
  await clock.advance(500);
  sockets[1].accept();
  const replayed = sockets[1].frames("enter");
  assert.equal(replayed.length, 1);
  assert.equal(replayed[0].id, sent.id);
  sockets[1].ack(sent.id);
  await entering;
});

test("a removed document ends its subscription: it is not replayed", async () => {
  const {client, clock, sockets} = await open();
  client.subscribe("document", {document: "gone"});
  sockets[0].ackAll();
  await settle();
  sockets[0].push("document", {document: "gone", removed: true});
  sockets[0].drop();
  await clock.advance(500);
  sockets[1].accept();
  assert.deepEqual(sockets[1].sent, []);
});

test("'connection not registered; reconnect' makes it reconnect", async () => {
  const {client, clock, sockets} = await open();
  const done = client.enter("a", "view");
  sockets[0].error(sockets[0].last("enter").id, "unauthenticated", "connection not registered; reconnect");
  await assert.rejects(done, {code: "unauthenticated"});
  await clock.advance(500);
  assert.equal(sockets.length, 2);
  assert.equal(client.state, "reconnecting");
});

// ------------------------------------------------------------------ offline buffer

test("sends made offline are buffered and flushed on open, in order", async () => {
  const {client, sockets} = await setup();
  client.send({action: "custom", n: 1});
  const subscribing = client.subscribe("users");
  client.send({action: "custom", n: 2});
  assert.deepEqual(sockets[0].sent, []);
  sockets[0].accept();
  assert.deepEqual(sockets[0].sent.map((f) => f.action + (f.n ?? "")), ["custom1", "subscribe", "custom2"]);
  sockets[0].ackAll();
  await subscribing;
});

test("the buffer is bounded: the oldest send is dropped first, and the drop reported", async () => {
  const {client, sockets} = await setup({bufferSize: 3});
  const drops = [];
  client.on("drop", (event) => drops.push(event));
  const first = client.subscribe("users");
  for (let n = 1; n <= 4; n += 1) client.send({action: "custom", n});
  await assert.rejects(first, {code: "dropped"});
  assert.deepEqual(drops.map((d) => [d.reason, d.frame.action, d.frame.n]), [
    ["buffer_full", "subscribe", undefined],
    ["buffer_full", "custom", 1],
  ]);
  assert.deepEqual(client.subscribed(), [], "a dropped subscribe is not wanted any more");
  sockets[0].accept();
  assert.deepEqual(sockets[0].sent.map((f) => f.n), [2, 3, 4]);
});

test("sends made during a reconnect are flushed after the re-subscribes", async () => {
  const {client, clock, sockets} = await open();
  client.subscribe("users");
  sockets[0].ackAll();
  await settle();
  sockets[0].drop();
  client.send({action: "custom"});
  const entering = client.enter("doc", "edit");
  await clock.advance(500);
  sockets[1].accept();
  assert.deepEqual(sockets[1].sent.map((f) => f.action), ["subscribe", "custom", "enter"]);
  sockets[1].ackAll();
  await entering;
});

test("leave while offline cancels a buffered enter: nothing is sent", async () => {
  const {client, sockets} = await setup();
  const entering = client.enter("doc", "edit");
  const leaving = client.leave("doc", "edit");
  await assert.rejects(entering, {code: "cancelled"});
  assert.deepEqual(await leaving, {cancelled: true});
  sockets[0].accept();
  assert.deepEqual(sockets[0].sent, []);
});

test("heartbeats are never buffered", async () => {
  const {clock, sockets} = await open();
  sockets[0].drop();
  await clock.advance(400);
  await clock.advance(100);
  sockets[1].accept();
  assert.deepEqual(sockets[1].frames("heartbeat"), []);
});

// ------------------------------------------------------------------ notifications: dedupe

test("notifications are deduped by seq per pk, compared as integers (BigInt)", async () => {
  const {client, sockets} = await open();
  const seen = [];
  client.stream("notifications").listen((n) => seen.push(`${n.pk}@${n.seq}`));
  const note = (pk, seq) => sockets[0].push("notifications", {action: "update", model: "document", pk, data: {slug: pk}, seq});
  note("a", "9");
  note("a", "10"); // "10" < "9" as strings: must compare as integers
  note("a", "10"); // a retried batch: already seen
  note("a", "9"); // overtaken by a later write
  note("b", "5"); // another pk has its own highest seq
  note("a", "4990100000000012345678");
  note("a", "4990100000000012345677"); // beyond 2^53: Number would call these equal
  note("a", "4990100000000012345679");
  assert.deepEqual(seen, ["a@9", "a@10", "b@5", "a@4990100000000012345678", "a@4990100000000012345679"]);
});

test("the highest seq survives a reconnect (a redelivery after it is still dropped)", async () => {
  const {client, clock, sockets} = await open();
  const seen = [];
  client.stream("notifications").listen((n) => seen.push(n.seq));
  sockets[0].push("notifications", {action: "create", pk: "x", seq: "100"});
  sockets[0].drop();
  await clock.advance(500);
  sockets[1].accept();
  sockets[1].push("notifications", {action: "create", pk: "x", seq: "100"});
  sockets[1].push("notifications", {action: "update", pk: "x", seq: "101"});
  assert.deepEqual(seen, ["100", "101"]);
});

// ------------------------------------------------------------------ heartbeat

test("a heartbeat every 25 s while the client holds presence", async () => {
  const {client, clock, sockets} = await open({ackHeartbeats: false});
  client.enter("doc", "view");
  sockets[0].ackAll();
  await clock.advance(24999);
  assert.equal(sockets[0].frames("heartbeat").length, 0);
  await clock.advance(1);
  assert.equal(sockets[0].frames("heartbeat").length, 1);
  sockets[0].ackAll();
  await clock.advance(25000);
  assert.equal(sockets[0].frames("heartbeat").length, 2);
});

test("an unanswered heartbeat means a dead socket: it reconnects", async () => {
  const {client, clock, sockets} = await open({ackTimeoutMs: 5000, ackHeartbeats: false});
  client.enter("doc", "view");
  sockets[0].ackAll();
  await clock.advance(25000 + 5000);
  assert.ok(sockets[0].closedWith, "the dead socket was closed");
  assert.equal(client.state, "reconnecting");
  await clock.advance(500);
  assert.equal(sockets.length, 2);
});

// ------------------------------------------------------------------ proactive reconnect

test("before the 2-hour limit it opens a new socket, replays, then closes the old one", async () => {
  const {client, clock, sockets, states} = await open({maxConnectionMs: 60000, maxConnectionJitterMs: 0});
  client.subscribe("users");
  client.enter("roadmap", "edit");
  sockets[0].ackAll();
  await settle();
  await clock.advance(59999);
  assert.equal(sockets.length, 1);
  await clock.advance(1);
  assert.equal(sockets.length, 2, "the replacement opens at maxConnectionMs");
  assert.equal(sockets[0].readyState, 1, "the old socket stays open meanwhile");
  sockets[1].accept();
  assert.deepEqual(sockets[1].sent.map(({id, ...f}) => f), [
    {action: "subscribe", stream: "users"},
    {action: "enter", document: "roadmap", phase: "edit"},
  ]);
  // Until the replacement holds the presence, the old one keeps it: both are open.
  await settle();
  assert.equal(sockets[0].closedWith, null);
  // Page traffic keeps going to the old socket during the overlap.
  client.send({action: "custom"});
  assert.equal(sockets[0].last().action, "custom");
  sockets[1].ackAll();
  await settle();
  assert.deepEqual(sockets[0].closedWith, {code: 1000, reason: "renewed"});
  assert.equal(sockets.flatMap((s) => s.frames("leave")).length, 0, "presence never left");
  assert.deepEqual(states, ["open"], "no reconnecting state: nothing flickered");
  client.send({action: "after"});
  assert.equal(sockets[1].last().action, "after");
  // The next renewal is scheduled on the new socket.
  await clock.advance(60000);
  assert.equal(sockets.length, 3);
});

test("the default renewal comes before 2 hours (1 h 55 min minus jitter)", async () => {
  const {clock, sockets} = await open({random: () => 0});
  await clock.advance(115 * 60 * 1000 - 1);
  assert.equal(sockets.length, 1);
  await clock.advance(1);
  assert.equal(sockets.length, 2);
});

test("a replacement that fails to open leaves the old socket in charge", async () => {
  const {client, clock, sockets, states} = await open({maxConnectionMs: 1000, maxConnectionJitterMs: 0});
  await clock.advance(1000);
  sockets[1].refuse();
  await settle();
  assert.equal(client.socket, sockets[0]);
  assert.equal(sockets[0].readyState, 1);
  assert.deepEqual(states, ["open"]);
});

test("if the old socket dies during the overlap, the open replacement takes over", async () => {
  const {client, clock, sockets, states} = await open({maxConnectionMs: 1000, maxConnectionJitterMs: 0});
  client.enter("doc", "view");
  sockets[0].ackAll();
  await settle();
  await clock.advance(1000);
  sockets[1].accept();
  sockets[0].drop();
  await settle();
  assert.equal(client.socket, sockets[1]);
  assert.equal(sockets.length, 2, "no extra reconnect");
  assert.deepEqual(states, ["open"]);
  client.send({action: "x"});
  assert.equal(sockets[1].last().action, "x");
});

test("what the page changed during the overlap reaches the replacement", async () => {
  const {client, clock, sockets} = await open({maxConnectionMs: 1000, maxConnectionJitterMs: 0});
  client.enter("doc", "view");
  sockets[0].ackAll();
  await settle();
  await clock.advance(1000);
  sockets[1].accept(); // replays enter doc/view
  client.leave("doc", "view"); // goes to the old socket
  const entering = client.enter("doc", "edit"); // goes to the old socket
  sockets[1].ackAll();
  await settle();
  const onNew = sockets[1].sent.map(({id, ...f}) => f);
  assert.deepEqual(onNew.slice(1), [
    {action: "enter", document: "doc", phase: "edit"},
    {action: "leave", document: "doc", phase: "view"},
  ]);
  sockets[1].ackAll();
  await entering;
});
