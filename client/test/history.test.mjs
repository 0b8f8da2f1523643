// Notifications of any binding stream, deduped per (model, pk); history cursors and catch-up
// after a reconnect (issue 14, client side).
import assert from "node:assert/strict";
import {test} from "node:test";

import {settle} from "./fakes.mjs";
import {open, reconnect, sent} from "./helpers.mjs";

const comment = (id, seq, extra = {}) => ({action: "update", model: "comment", pk: {document: "d", id},
                                            data: {id, document: "d", body: `v${seq}`}, seq: String(seq), ...extra});

// ------------------------------------------------------------------ dedupe per (model, pk)

test("notifications on any stream are deduped by seq per pk", async () => {
  const {client, sockets} = await open();
  const seen = [];
  client.stream("comments").listen((n) => seen.push(`${n.pk.id}@${n.seq}`));
  for (const [id, seq] of [["a", 9], ["a", 10], ["a", 10], ["a", 9], ["b", 5]]) sockets[0].push("comments", comment(id, seq));
  assert.deepEqual(seen, ["a@9", "a@10", "b@5"]);
});

test("two models' sequence numbers are not compared: the same pk of another model is its own", async () => {
  const {client, sockets} = await open();
  const seen = [];
  client.stream("audit").listen((n) => seen.push(`${n.model}@${n.seq}`));
  sockets[0].push("audit", {action: "create", model: "document", pk: "x", seq: "900"});
  sockets[0].push("audit", {action: "create", model: "comment", pk: "x", seq: "5"}); // another table's stream
  sockets[0].push("audit", {action: "update", model: "comment", pk: "x", seq: "5"}); // a duplicate of that one
  assert.deepEqual(seen, ["document@900", "comment@5"]);
});

test("a pk object is keyed by its content, whatever the order of its keys", async () => {
  const {client, sockets} = await open();
  const seen = [];
  client.stream("comments").listen((n) => seen.push(n.seq));
  sockets[0].push("comments", {action: "create", model: "comment", pk: {document: "d", id: "1"}, seq: "7"});
  sockets[0].push("comments", {action: "create", model: "comment", pk: {id: "1", document: "d"}, seq: "7"});
  sockets[0].push("comments", {action: "create", model: "comment", pk: {id: "2", document: "d"}, seq: "7"});
  assert.deepEqual(seen, ["7", "7"]);
});

test("payloads without a seq (snapshots, presence) are never deduped", async () => {
  const {client, sockets} = await open();
  const seen = [];
  client.stream("document").listen((p) => seen.push(p.title));
  sockets[0].push("document", {document: "d", title: "A", phases: {}});
  sockets[0].push("document", {document: "d", title: "A", phases: {}});
  assert.deepEqual(seen, ["A", "A"]);
});

// ------------------------------------------------------------------ cursors

test("the last cursor of a subscription is sent as since when it is replayed after a reconnect", async () => {
  const env = await open();
  const {client, sockets} = env;
  client.subscribe("comments", {document: "d"});
  sockets[0].ackAll();
  await settle();
  sockets[0].push("comments", comment("a", 1), {cursor: "c-1"});
  sockets[0].push("comments", comment("a", 2), {cursor: "c-2"});
  assert.equal(client.cursor("comments", {document: "d"}), "c-2");
  const next = await reconnect(env);
  assert.deepEqual(sent(next), [{action: "subscribe", stream: "comments", document: "d", since: "c-2"}]);
});

test("a subscription that never saw a cursor is replayed without since", async () => {
  const env = await open();
  env.client.subscribe("users");
  env.sockets[0].ackAll();
  env.sockets[0].push("users", {users: 2});
  const next = await reconnect(env);
  assert.deepEqual(sent(next), [{action: "subscribe", stream: "users"}]);
});

test("the page's own subscribe asks for the snapshot: no since unless the page gives one", async () => {
  const {client, sockets} = await open();
  client.subscribe("comments", {document: "d", since: "saved-cursor"});
  client.subscribe("comments", {document: "e"});
  assert.deepEqual(sent(sockets[0]), [
    {action: "subscribe", stream: "comments", document: "d", since: "saved-cursor"},
    {action: "subscribe", stream: "comments", document: "e"},
  ]);
});

test("each subscription keeps its own cursor: a frame's cursor goes to the subscription it names", async () => {
  const env = await open();
  const {client, sockets} = env;
  client.subscribe("comments", {document: "d"});
  client.subscribe("comments", {document: "e"});
  sockets[0].ackAll();
  sockets[0].push("comments", comment("a", 1), {cursor: "d-1"});
  sockets[0].push("comments", {action: "create", model: "comment", pk: {document: "e", id: "b"}, seq: "2"}, {cursor: "e-1"});
  sockets[0].push("comments", {document: "d", comments: [], full: true}, {cursor: "d-2"});
  const next = await reconnect(env);
  assert.deepEqual(sent(next), [
    {action: "subscribe", stream: "comments", document: "d", since: "d-2"},
    {action: "subscribe", stream: "comments", document: "e", since: "e-1"},
  ]);
});

test("a cursor on a frame that could belong to two subscriptions is not kept (a wrong one would skip history)", async () => {
  const env = await open();
  const {client, sockets} = env;
  client.subscribe("comments", {document: "d"});
  client.subscribe("comments", {document: "e"});
  sockets[0].ackAll();
  sockets[0].push("comments", {note: "names no document"}, {cursor: "which?"});
  assert.equal(client.cursor("comments", {document: "d"}), null);
  assert.equal(client.cursor("comments", {document: "e"}), null);
});

test("the only subscription of a stream gets its frames' cursors even when they name nothing", async () => {
  const {client, sockets} = await open();
  client.subscribe("activity");
  sockets[0].ackAll();
  sockets[0].push("activity", {action: "create", model: "event", pk: "1", seq: "1"}, {cursor: "a-1"});
  assert.equal(client.cursor("activity"), "a-1");
});

test("a duplicate dropped by dedupe does not move the cursor back", async () => {
  const {client, sockets} = await open();
  client.subscribe("comments", {document: "d"});
  sockets[0].ackAll();
  sockets[0].push("comments", comment("a", 2), {cursor: "c-2"});
  sockets[0].push("comments", comment("a", 1), {cursor: "c-1"}); // a late redelivery
  assert.equal(client.cursor("comments", {document: "d"}), "c-2");
});

test("unsubscribing forgets the cursor: subscribing again asks for the snapshot", async () => {
  const {client, sockets} = await open();
  client.subscribe("comments", {document: "d"});
  sockets[0].ackAll();
  sockets[0].push("comments", comment("a", 1), {cursor: "c-1"});
  client.unsubscribe("comments", {document: "d"});
  sockets[0].ackAll();
  client.subscribe("comments", {document: "d"});
  assert.deepEqual(sent(sockets[0]).at(-1), {action: "subscribe", stream: "comments", document: "d"});
});

test("the replay and the live stream overlap at the seam: each notification reaches the page once, in order", async () => {
  const env = await open();
  const {client, sockets} = env;
  const seen = [];
  client.stream("comments", {document: "d"}).listen((n) => seen.push(n.seq));
  client.subscribe("comments", {document: "d"});
  sockets[0].ackAll();
  sockets[0].push("comments", comment("a", 1), {cursor: "c-1"});
  sockets[0].push("comments", comment("b", 2), {cursor: "c-2"});
  const next = await reconnect(env);
  assert.equal(next.last("subscribe").since, "c-2");
  // Replayed after c-2 (missed while offline), one of them also delivered live right away.
  next.push("comments", comment("a", 3), {cursor: "c-3"});
  next.push("comments", comment("c", 4), {cursor: "c-4"});
  next.ackAll();
  next.push("comments", comment("c", 4), {cursor: "c-4"}); // the same write, live
  next.push("comments", comment("b", 2), {cursor: "c-2"}); // an old page redelivered
  next.push("comments", comment("a", 5), {cursor: "c-5"});
  assert.deepEqual(seen, ["1", "2", "3", "4", "5"]);
  assert.equal(client.cursor("comments", {document: "d"}), "c-5");
});

test("the proactive replacement subscribes with the cursor too", async () => {
  const {client, clock, sockets} = await open({maxConnectionMs: 1000, maxConnectionJitterMs: 0});
  client.subscribe("comments", {document: "d"});
  sockets[0].ackAll();
  sockets[0].push("comments", comment("a", 1), {cursor: "c-1"});
  await clock.advance(1000);
  sockets[1].accept();
  assert.deepEqual(sent(sockets[1]), [{action: "subscribe", stream: "comments", document: "d", since: "c-1"}]);
});

// ------------------------------------------------------------------ reset

test("reset: the cursor is dropped, the page is told, and the next replay asks for the snapshot", async () => {
  const env = await open();
  const {client, sockets} = env;
  const resets = [];
  const payloads = [];
  client.on("reset", (event) => resets.push(event));
  client.stream("comments", {document: "d"}).listen((p) => payloads.push(p));
  client.subscribe("comments", {document: "d"});
  sockets[0].ackAll();
  sockets[0].push("comments", comment("a", 1), {cursor: "c-1"});
  let next = await reconnect(env);
  assert.equal(next.last("subscribe").since, "c-1");
  next.push("comments", {reset: true});
  next.ackAll();
  assert.deepEqual(resets, [{stream: "comments", params: {document: "d"}}]);
  assert.deepEqual(payloads.at(-1), {reset: true}, "the stream's listeners see it too");
  assert.equal(client.cursor("comments", {document: "d"}), null);
  next = await reconnect(env);
  assert.deepEqual(sent(next), [{action: "subscribe", stream: "comments", document: "d"}]);
});

test("a reset naming nobody resets every subscription of that stream (a reload costs less than a gap)", async () => {
  const {client, sockets} = await open();
  const resets = [];
  client.on("reset", ({params}) => resets.push(params.document));
  client.subscribe("comments", {document: "d"});
  client.subscribe("comments", {document: "e"});
  client.subscribe("users");
  sockets[0].ackAll();
  sockets[0].push("comments", {reset: true});
  assert.deepEqual(resets, ["d", "e"]);
});

test("a reset naming one subscription resets only that one", async () => {
  const {client, sockets} = await open();
  const resets = [];
  client.on("reset", ({params}) => resets.push(params.document));
  client.subscribe("comments", {document: "d"});
  client.subscribe("comments", {document: "e"});
  sockets[0].ackAll();
  sockets[0].push("comments", comment("x", 1, {pk: {document: "e", id: "x"}}), {cursor: "e-1"});
  sockets[0].push("comments", {reset: true, document: "d"});
  assert.deepEqual(resets, ["d"]);
  assert.equal(client.cursor("comments", {document: "e"}), "e-1");
});

test("resubscribe asks for the snapshot again without a cursor, after the subscribe in flight", async () => {
  const env = await open();
  const {client, sockets} = env;
  client.subscribe("comments", {document: "d"});
  sockets[0].ackAll();
  sockets[0].push("comments", comment("a", 1), {cursor: "c-1"});
  const next = await reconnect(env); // the replay with since is in flight
  next.push("comments", {reset: true});
  const again = client.resubscribe("comments", {document: "d"});
  assert.equal(next.frames("subscribe").length, 1, "waits for the replay's answer first");
  next.ackAll();
  await settle();
  assert.deepEqual(sent(next).at(-1), {action: "subscribe", stream: "comments", document: "d"});
  next.ackAll();
  await again;
});

test("resubscribe after the page unsubscribed sends nothing", async () => {
  const {client, sockets} = await open();
  client.subscribe("comments", {document: "d"});
  const again = client.resubscribe("comments", {document: "d"});
  client.unsubscribe("comments", {document: "d"});
  sockets[0].ackAll();
  await settle();
  sockets[0].ackAll();
  assert.deepEqual(await again, {cancelled: true});
  assert.equal(sockets[0].frames("subscribe").length, 1);
});

// ------------------------------------------------------------------ the server's catch-up (issue 14)

const alert = (text) => ({text});

test("the ack's cursor is kept: a subscription that heard nothing before the drop replays from it", async () => {
  const env = await open();
  const {client, sockets} = env;
  client.subscribe("alerts");
  sockets[0].ack(sockets[0].last("subscribe").id, {cursor: "1700000000000"});
  await settle();
  assert.equal(client.cursor("alerts"), "1700000000000");
  const next = await reconnect(env);
  assert.deepEqual(sent(next), [{action: "subscribe", stream: "alerts", since: "1700000000000"}]);
});

test("the highest cursor is kept, compared as strings: a later frame or ack with a lower one does not move it back", async () => {
  const env = await open();
  const {client, sockets} = env;
  client.subscribe("alerts");
  sockets[0].push("alerts", alert("b"), {cursor: "1700000000002000aaaaaaaa", event: "e-b"});
  sockets[0].push("alerts", alert("a"), {cursor: "1700000000001000bbbbbbbb", event: "e-a"}); // from a slower container
  sockets[0].ack(sockets[0].last("subscribe").id, {cursor: "1700000000000"});
  await settle();
  assert.equal(client.cursor("alerts"), "1700000000002000aaaaaaaa");
  const next = await reconnect(env);
  assert.equal(next.last("subscribe").since, "1700000000002000aaaaaaaa");
});

test("published events are deduped on their event id, not their cursor: a retried event reaches the page once", async () => {
  const {client, sockets} = await open();
  const seen = [];
  client.stream("alerts").listen((payload, frame) => seen.push(`${payload.text}@${frame.cursor}`));
  client.subscribe("alerts");
  sockets[0].ackAll();
  sockets[0].push("alerts", alert("ready"), {cursor: "1700000000001000aaaaaaaa", event: "ev-1"});
  sockets[0].push("alerts", alert("ready"), {cursor: "1700000000009000aaaaaaaa", event: "ev-1"}); // retried: logged again
  sockets[0].push("alerts", alert("ready"), {cursor: "1700000000010000aaaaaaaa", event: "ev-2"}); // same text, another event
  assert.deepEqual(seen, ["ready@1700000000001000aaaaaaaa", "ready@1700000000010000aaaaaaaa"]);
});

test("an event id seen before a drop is still dropped when the replay sends it again", async () => {
  const env = await open();
  const {client, sockets} = env;
  const seen = [];
  client.stream("alerts").listen((payload) => seen.push(payload.text));
  client.subscribe("alerts");
  sockets[0].ack(sockets[0].last("subscribe").id, {cursor: "1700000000000"});
  sockets[0].push("alerts", alert("one"), {cursor: "1700000000001000aaaaaaaa", event: "ev-1"});
  const next = await reconnect(env);
  next.push("alerts", alert("one"), {cursor: "1700000000001000aaaaaaaa", event: "ev-1"});
  next.push("alerts", alert("two"), {cursor: "1700000000002000aaaaaaaa", event: "ev-2"});
  next.ack(next.last("subscribe").id, {cursor: "1700000000002000aaaaaaaa"});
  assert.deepEqual(seen, ["one", "two"]);
});

test("event ids are remembered per stream: the same id on another stream is its own", async () => {
  const {client, sockets} = await open();
  const seen = [];
  for (const stream of ["alerts", "billing"]) client.stream(stream).listen((p) => seen.push(`${stream}:${p.text}`));
  sockets[0].push("alerts", alert("x"), {event: "ev-1"});
  sockets[0].push("billing", alert("x"), {event: "ev-1"});
  assert.deepEqual(seen, ["alerts:x", "billing:x"]);
});

test("the memory of event ids is bounded: the oldest is forgotten first", async () => {
  const {client, sockets} = await open();
  const seen = [];
  client.stream("alerts").listen((p) => seen.push(p.text));
  for (let n = 0; n <= 2000; n += 1) sockets[0].push("alerts", alert(String(n)), {event: `ev-${n}`});
  assert.equal(client.events.get("alerts").size, 2000);
  seen.length = 0;
  sockets[0].push("alerts", alert("newest again"), {event: "ev-2000"});
  sockets[0].push("alerts", alert("oldest again"), {event: "ev-0"}); // forgotten: shown again
  assert.deepEqual(seen, ["oldest again"]);
});

test("frames of a replay in flight move the cursor only at its ack: a drop mid-replay replays from the old cursor", async () => {
  const env = await open();
  const {client, sockets} = env;
  client.subscribe("comments", {document: "d"});
  sockets[0].ackAll();
  sockets[0].push("comments", comment("a", 1), {cursor: "c-1"});
  let next = await reconnect(env);
  assert.equal(next.last("subscribe").since, "c-1");
  next.push("comments", comment("b", 2), {cursor: "c-2"}); // replayed
  next.push("comments", comment("c", 9), {cursor: "c-9"}); // live, between replayed frames
  assert.equal(client.cursor("comments", {document: "d"}), "c-1");
  next = await reconnect(env); // before c-3 .. c-8 were replayed
  assert.equal(next.last("subscribe").since, "c-1");
});

test("after a replay's ack the cursor is the highest of the ack's and the replayed frames'", async () => {
  const env = await open();
  const {client, sockets} = env;
  client.subscribe("comments", {document: "d"});
  sockets[0].ackAll();
  sockets[0].push("comments", comment("a", 1), {cursor: "c-1"});
  const next = await reconnect(env);
  next.push("comments", comment("b", 2), {cursor: "c-2"});
  next.push("comments", comment("c", 9), {cursor: "c-9"});
  next.ack(next.last("subscribe").id, {cursor: "c-5"});
  await settle();
  assert.equal(client.cursor("comments", {document: "d"}), "c-9");
  next.push("comments", comment("d", 10), {cursor: "c-99"}); // live after the ack: at once
  assert.equal(client.cursor("comments", {document: "d"}), "c-99");
});

test("a reset: the ack has no cursor and the client subscribes again without since by itself", async () => {
  const env = await open();
  const {client, sockets} = env;
  const resets = [];
  client.on("reset", (event) => resets.push(event));
  client.subscribe("alerts");
  sockets[0].ack(sockets[0].last("subscribe").id, {cursor: "1700000000000"});
  const next = await reconnect(env);
  assert.equal(next.last("subscribe").since, "1700000000000");
  next.push("alerts", {reset: true});
  next.ack(next.last("subscribe").id); // no cursor
  await settle();
  assert.deepEqual(resets, [{stream: "alerts", params: {}}]);
  assert.deepEqual(sent(next), [{action: "subscribe", stream: "alerts", since: "1700000000000"},
                                {action: "subscribe", stream: "alerts"}]);
  assert.equal(client.cursor("alerts"), null);
  next.ack(next.last("subscribe").id, {cursor: "1700000005000"});
  await settle();
  assert.equal(client.cursor("alerts"), "1700000005000");
});

test("a reset carrying the subscription's params subscribes again only that subscription", async () => {
  const env = await open();
  const {client, sockets} = env;
  client.subscribe("comments", {document: "d"});
  client.subscribe("comments", {document: "e"});
  sockets[0].ackAll();
  sockets[0].push("comments", comment("a", 1), {cursor: "d-1"});
  sockets[0].push("comments", comment("b", 2, {pk: {document: "e", id: "b"}}), {cursor: "e-1"});
  const next = await reconnect(env);
  next.push("comments", {reset: true, document: "e"});
  next.ackAll();
  await settle();
  assert.deepEqual(sent(next).slice(2), [{action: "subscribe", stream: "comments", document: "e"}]);
  assert.equal(client.cursor("comments", {document: "d"}), "d-1", "the other subscription keeps its cursor");
});
