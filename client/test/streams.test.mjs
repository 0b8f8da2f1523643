// Generic streams and bindings (issue 12): any declared stream, keyed by its params; writes
// that settle on their ack and are never sent twice.
import assert from "node:assert/strict";
import {test} from "node:test";

import {stableJson} from "../realtime.js";
import {settle} from "./fakes.mjs";
import {open, reconnect, sent, setup} from "./helpers.mjs";

// ------------------------------------------------------------------ streams of any name

test("stableJson sorts keys at every level, so equal params give equal keys", () => {
  assert.equal(stableJson({b: 1, a: {d: [1, {f: 2, e: 3}], c: "x"}}), '{"a":{"c":"x","d":[1,{"e":3,"f":2}]},"b":1}');
  assert.equal(stableJson({document: "a", stream: "s"}), stableJson({stream: "s", document: "a"}));
});

test("any stream subscribes with its params as they are, and each set of params is its own subscription", async () => {
  const {client, sockets} = await open();
  client.subscribe("comments", {document: "roadmap"});
  client.subscribe("comments", {document: "welcome"});
  client.subscribe("orders", {shop: "north", region: "eu"});
  assert.deepEqual(sent(sockets[0]), [
    {action: "subscribe", stream: "comments", document: "roadmap"},
    {action: "subscribe", stream: "comments", document: "welcome"},
    {action: "subscribe", stream: "orders", shop: "north", region: "eu"},
  ]);
  assert.equal(client.subscribed().length, 3);
});

test("the same params in another order are the same subscription", async () => {
  const {client, sockets} = await open();
  const first = client.subscribe("orders", {shop: "north", region: "eu"});
  const second = client.subscribe("orders", {region: "eu", shop: "north"});
  assert.equal(first, second, "the second call joins the request on its way");
  assert.equal(sockets[0].frames("subscribe").length, 1);
  sockets[0].ackAll();
  await first;
  client.unsubscribe("orders", {region: "eu", shop: "north"});
  assert.deepEqual(client.subscribed(), []);
});

test("stream, action and id in params are not part of the identity", async () => {
  const {client, sockets} = await open();
  client.subscribe("comments", {document: "a", action: "x", id: 99, stream: "other"});
  assert.deepEqual(sent(sockets[0]), [{action: "subscribe", stream: "comments", document: "a"}]);
  assert.notEqual(sockets[0].last().id, 99);
});

test("after a reconnect every subscription of every stream is replayed with its params", async () => {
  const env = await open();
  const {client, sockets} = env;
  client.subscribe("comments", {document: "roadmap"});
  client.subscribe("comments", {document: "welcome"});
  client.subscribe("orders", {shop: "north"});
  sockets[0].ackAll();
  await settle();
  client.unsubscribe("comments", {document: "welcome"});
  sockets[0].ackAll();
  const next = await reconnect(env);
  assert.deepEqual(sent(next), [
    {action: "subscribe", stream: "comments", document: "roadmap"},
    {action: "subscribe", stream: "orders", shop: "north"},
  ]);
});

test("client.stream(name, params) listens to that subscription's payloads only", async () => {
  const {client, sockets} = await open();
  const roadmap = [];
  const all = [];
  client.stream("comments", {document: "roadmap"}).listen((p) => roadmap.push(p.n));
  client.stream("comments").listen((p) => all.push(p.n));
  sockets[0].push("comments", {document: "roadmap", comments: [], full: true, n: 1}); // snapshot: own field
  sockets[0].push("comments", {action: "create", model: "comment", pk: {document: "welcome", id: "c1"}, n: 2}); // pk
  sockets[0].push("comments", {action: "update", model: "comment", pk: "c3", data: {document: "roadmap"}, n: 3}); // data
  sockets[0].push("comments", {reset: true, n: 4}); // names nothing: could be anyone's
  assert.deepEqual(roadmap, [1, 3, 4]);
  assert.deepEqual(all, [1, 2, 3, 4]);
  assert.equal(client.stream("comments", {document: "roadmap"}), client.stream("comments", {document: "roadmap"}));
});

test("a stream handle subscribes and unsubscribes with its own params", async () => {
  const {client, sockets} = await open();
  const roadmap = client.stream("comments", {document: "roadmap"});
  roadmap.subscribe();
  sockets[0].ackAll();
  await settle();
  roadmap.unsubscribe();
  assert.deepEqual(sent(sockets[0]), [
    {action: "subscribe", stream: "comments", document: "roadmap"},
    {action: "unsubscribe", stream: "comments", document: "roadmap"},
  ]);
});

test("removed: true ends only the subscription it names, on any stream", async () => {
  const env = await open();
  const {client, sockets} = env;
  client.subscribe("comments", {document: "gone"});
  client.subscribe("comments", {document: "kept"});
  client.subscribe("document", {document: "gone"});
  sockets[0].ackAll();
  await settle();
  sockets[0].push("comments", {document: "gone", removed: true});
  assert.deepEqual(client.subscribed().map((s) => `${s.stream}/${s.document}`), ["comments/kept", "document/gone"]);
  const next = await reconnect(env);
  assert.deepEqual(sent(next).map((f) => `${f.stream}/${f.document}`), ["comments/kept", "document/gone"]);
});

// ------------------------------------------------------------------ bindings: the frames

test("create sends the exact frame and resolves with the ack's pk and version", async () => {
  const {client, sockets} = await open();
  const created = client.binding("comments").create({document: "roadmap", body: "Looks good"});
  const frame = sockets[0].last();
  assert.deepEqual(frame, {action: "create", stream: "comments", data: {document: "roadmap", body: "Looks good"}, id: frame.id});
  sockets[0].ack(frame.id, {pk: {document: "roadmap", id: "c1"}, version: 1});
  assert.deepEqual(await created, {id: frame.id, pk: {document: "roadmap", id: "c1"}, version: 1});
});

test("update sends pk, version and data, and resolves with the next version", async () => {
  const {client, sockets} = await open();
  const pk = {document: "roadmap", id: "c1"};
  const updated = client.binding("comments").update(pk, {body: "Edited"}, 3);
  const frame = sockets[0].last();
  assert.deepEqual(frame, {action: "update", stream: "comments", pk, version: 3, data: {body: "Edited"}, id: frame.id});
  sockets[0].ack(frame.id, {pk, version: 4});
  assert.equal((await updated).version, 4);
});

test("delete sends pk and version", async () => {
  const {client, sockets} = await open();
  const pk = {document: "roadmap", id: "c1"};
  const deleted = client.binding("comments").delete(pk, 4);
  const frame = sockets[0].last();
  assert.deepEqual(frame, {action: "delete", stream: "comments", pk, version: 4, id: frame.id});
  sockets[0].ack(frame.id, {pk});
  await deleted;
});

for (const code of ["bad_request", "forbidden", "not_found", "conflict", "unauthenticated", "rate_limited"]) {
  test(`a write answered ${code} rejects with that code`, async () => {
    const {client, sockets} = await open();
    const writing = client.binding("comments").update({document: "d", id: "c"}, {body: "x"}, 1);
    sockets[0].error(sockets[0].last().id, code, `answered ${code}`);
    await assert.rejects(writing, {code, message: `answered ${code}`});
  });
}

test("a malformed write rejects with bad_request and sends nothing", async () => {
  const {client, sockets} = await open();
  const comments = client.binding("comments");
  await assert.rejects(comments.create("not an object"), {code: "bad_request"});
  await assert.rejects(comments.update({document: "d", id: "c"}, {body: "x"}), {code: "bad_request"}); // no version
  await assert.rejects(comments.update(null, {body: "x"}, 1), {code: "bad_request"});
  await assert.rejects(comments.delete({document: "d", id: "c"}, -1), {code: "bad_request"});
  assert.deepEqual(sockets[0].sent, []);
});

// ------------------------------------------------------------------ bindings: never twice

test("a write in flight when the socket drops rejects with disconnected and is not sent again", async () => {
  const env = await open();
  const {client, sockets} = env;
  client.subscribe("comments", {document: "d"});
  sockets[0].ackAll();
  const writing = client.binding("comments").create({document: "d", body: "once"});
  sockets[0].drop();
  await assert.rejects(writing, {code: "disconnected"});
  const next = await reconnect(env);
  assert.deepEqual(next.frames("create"), [], "a blind retry could duplicate the comment");
  assert.deepEqual(next.frames("subscribe").length, 1, "state is replayed, writes are not");
});

test("a write acknowledged before the drop stays resolved and is not sent again", async () => {
  const env = await open();
  const {client, sockets} = env;
  const writing = client.binding("comments").create({document: "d", body: "once"});
  sockets[0].ack(sockets[0].last().id, {pk: {document: "d", id: "c1"}, version: 1});
  const next = await reconnect(env);
  assert.equal((await writing).version, 1);
  assert.deepEqual(next.frames("create"), []);
});

test("a write made offline is sent once, after the replay, when the socket opens", async () => {
  const {client, clock, sockets} = await open();
  client.subscribe("comments", {document: "d"});
  sockets[0].ackAll();
  sockets[0].drop();
  const writing = client.binding("comments").create({document: "d", body: "offline"});
  await clock.advance(500);
  sockets[1].accept();
  assert.deepEqual(sockets[1].sent.map((f) => f.action), ["subscribe", "create"]);
  sockets[1].ack(sockets[1].last("create").id, {pk: {document: "d", id: "c9"}, version: 1});
  assert.equal((await writing).pk.id, "c9");
  sockets[1].drop();
  await clock.advance(500);
  sockets[2].accept();
  assert.deepEqual(sockets[2].frames("create"), []);
});

test("a write that times out rejects with timeout and is not retried", async () => {
  const {client, clock, sockets} = await open({ackTimeoutMs: 3000});
  const writing = client.binding("comments").create({document: "d", body: "slow"});
  const rejected = assert.rejects(writing, {code: "timeout"});
  await clock.advance(3000);
  await rejected;
  await clock.advance(60000);
  assert.equal(sockets.flatMap((s) => s.frames("create")).length, 1);
});

test("renewal: a write in flight stays on the old socket, which closes once it is answered", async () => {
  const {client, clock, sockets, states} = await open({maxConnectionMs: 1000, maxConnectionJitterMs: 0});
  client.subscribe("comments", {document: "d"});
  sockets[0].ackAll();
  await settle();
  const writing = client.binding("comments").create({document: "d", body: "during the overlap"});
  await clock.advance(1000);
  sockets[1].accept();
  sockets[1].ackAll();
  await settle();
  assert.equal(client.socket, sockets[1], "the replacement took over");
  assert.deepEqual(sockets[1].frames("create"), [], "the write was not sent twice");
  assert.equal(sockets[0].closedWith, null, "the old socket waits for the write's answer");
  sockets[0].ack(sockets[0].last("create").id, {pk: {document: "d", id: "c1"}, version: 1});
  assert.equal((await writing).pk.id, "c1");
  await settle();
  assert.deepEqual(sockets[0].closedWith, {code: 1000, reason: "renewed"});
  assert.deepEqual(states, ["open"]);
});

test("renewal: the old socket's notifications are ignored while it waits for a write", async () => {
  const {client, clock, sockets} = await open({maxConnectionMs: 1000, maxConnectionJitterMs: 0});
  const seen = [];
  client.stream("comments").listen((p) => seen.push(p.seq));
  client.subscribe("comments", {document: "d"});
  sockets[0].ackAll();
  client.binding("comments").create({document: "d", body: "x"});
  await clock.advance(1000);
  sockets[1].accept();
  sockets[1].ackAll();
  await settle();
  sockets[0].push("comments", {action: "create", model: "comment", pk: {document: "d", id: "old"}, seq: "1"});
  sockets[1].push("comments", {action: "create", model: "comment", pk: {document: "d", id: "new"}, seq: "2"});
  assert.deepEqual(seen, ["2"]);
});

test("renewal: if the old socket closes before the write's answer, the write rejects with disconnected", async () => {
  const {client, clock, sockets} = await open({maxConnectionMs: 1000, maxConnectionJitterMs: 0});
  const writing = client.binding("comments").create({document: "d", body: "x"});
  await clock.advance(1000);
  sockets[1].accept();
  await settle();
  assert.equal(client.socket, sockets[1]);
  sockets[0].drop();
  await assert.rejects(writing, {code: "disconnected"});
  assert.equal(client.state, "open");
  assert.deepEqual(sockets[1].frames("create"), []);
});

test("renewal: an unanswered write times out and then the old socket closes", async () => {
  const {client, clock, sockets} = await open({maxConnectionMs: 1000, maxConnectionJitterMs: 0, ackTimeoutMs: 5000});
  const writing = client.binding("comments").create({document: "d", body: "x"});
  writing.catch(() => {});
  await clock.advance(1000);
  sockets[1].accept();
  await settle();
  await clock.advance(4000);
  await assert.rejects(writing, {code: "timeout"});
  assert.deepEqual(sockets[0].closedWith, {code: 1000, reason: "renewed"});
});

test("writes buffered offline go out once even with other requests around them", async () => {
  const {client, sockets} = await setup();
  const a = client.binding("comments").create({document: "d", body: "a"});
  client.subscribe("comments", {document: "d"});
  const b = client.binding("comments").delete({document: "d", id: "c0"}, 2);
  sockets[0].accept();
  assert.deepEqual(sockets[0].sent.map((f) => f.action), ["create", "subscribe", "delete"]);
  sockets[0].ackAll();
  await Promise.all([a, b]);
});
