// The Django Channels `WebSocketBridge` look-alike (client/bridge.js), fed the frames
// Channels' own bridge handles: the demultiplexer's {stream, payload} envelope both ways.
import assert from "node:assert/strict";
import {test} from "node:test";

import {bridgeUrl, WebSocketBridge} from "../bridge.js";
import {FakeClock, fakeWebSocket, settle} from "./fakes.mjs";
import {URL} from "./helpers.mjs";

async function bridged() {
  const clock = new FakeClock();
  const {FakeWebSocket, sockets} = fakeWebSocket();
  const bridge = new WebSocketBridge({WebSocket: FakeWebSocket, timers: clock, random: () => 0.5, firstReconnectMaxMs: 1000});
  bridge.connect(URL);
  await settle();
  sockets[0].accept();
  return {bridge, clock, sockets};
}

/** A frame as Channels 1.x data binding sends it (plus this backend's seq). */
const binding = (action, pk, seq) => ({action, model: "values.intvalue", pk, data: {name: "x", value: pk}, seq: String(seq)});

test("demultiplex(stream, cb) gets (payload, stream) for that stream's frames", async () => {
  const {bridge, sockets} = await bridged();
  const got = [];
  bridge.listen();
  bridge.demultiplex("intval", (payload, stream) => got.push([stream, payload.action, payload.pk]));
  bridge.demultiplex("mystream", (payload, stream) => got.push([stream, payload.hello]));
  sockets[0].push("intval", binding("create", 5, 1));
  sockets[0].push("mystream", {hello: "world"});
  sockets[0].push("intval", binding("update", 5, 2));
  assert.deepEqual(got, [["intval", "create", 5], ["mystream", "world"], ["intval", "update", 5]]);
});

test("a frame without a stream goes to listen's callback as (frame, null)", async () => {
  const {bridge, sockets} = await bridged();
  const got = [];
  bridge.listen((payload, stream) => got.push([payload, stream]));
  sockets[0].pushRaw(JSON.stringify({prop1: "value1"}));
  assert.deepEqual(got, [[{prop1: "value1"}, null]]);
});

test("as in Channels, a stream's frame goes only to its demultiplexed callback, never to listen's", async () => {
  const {bridge, sockets} = await bridged();
  const fallback = [];
  bridge.listen((payload) => fallback.push(payload));
  sockets[0].push("nobody-listens", {x: 1});
  assert.deepEqual(fallback, []);
});

test("nothing is dispatched before listen(), as in Channels", async () => {
  const {bridge, sockets} = await bridged();
  const got = [];
  bridge.demultiplex("intval", (payload) => got.push(payload.pk));
  sockets[0].push("intval", binding("create", 1, 1));
  bridge.listen();
  sockets[0].push("intval", binding("create", 2, 2));
  assert.deepEqual(got, [2]);
});

test("a later demultiplex for the same stream replaces the earlier callback", async () => {
  const {bridge, sockets} = await bridged();
  const got = [];
  bridge.listen();
  bridge.demultiplex("s", () => got.push("first"));
  bridge.demultiplex("s", () => got.push("second"));
  sockets[0].push("s", {});
  assert.deepEqual(got, ["second"]);
});

test("stream(name).send(payload) sends the demultiplexer envelope", async () => {
  const {bridge, sockets} = await bridged();
  bridge.stream("intval").send({action: "create", data: {name: "x", value: 1}});
  bridge.stream("comments").send({action: "update", pk: {document: "d", id: "1"}, version: 2, data: {body: "b"}, id: 7});
  assert.deepEqual(sockets[0].sent, [
    {stream: "intval", payload: {action: "create", data: {name: "x", value: 1}}},
    {stream: "comments", payload: {action: "update", pk: {document: "d", id: "1"}, version: 2, data: {body: "b"}, id: 7}},
  ]);
});

test("send(msg) sends the message as it is", async () => {
  const {bridge, sockets} = await bridged();
  bridge.send({prop1: "value1", prop2: "value1"});
  assert.deepEqual(sockets[0].sent, [{prop1: "value1", prop2: "value1"}]);
});

test("the one added line: subscribe() is kept and replayed after a reconnect", async () => {
  const {bridge, clock, sockets} = await bridged();
  const got = [];
  bridge.listen();
  bridge.demultiplex("comments", (payload) => got.push(payload.pk.id));
  const subscribed = bridge.subscribe("comments", {document: "d"});
  sockets[0].ackAll();
  await subscribed;
  sockets[0].drop();
  await clock.advance(500);
  sockets[1].accept();
  assert.deepEqual(sockets[1].sent.map(({id, ...f}) => f), [{action: "subscribe", stream: "comments", document: "d"}]);
  sockets[1].push("comments", {action: "create", model: "comment", pk: {document: "d", id: "after"}, seq: "3"});
  assert.deepEqual(got, ["after"]);
});

test("duplicate notifications are dropped before they reach the bridge's callbacks", async () => {
  const {bridge, sockets} = await bridged();
  const got = [];
  bridge.listen();
  bridge.demultiplex("intval", (payload) => got.push(`${payload.action}@${payload.seq}`));
  sockets[0].push("intval", binding("create", 5, 10));
  sockets[0].push("intval", binding("create", 5, 10)); // at-least-once: redelivered
  sockets[0].push("intval", binding("update", 5, 11));
  assert.deepEqual(got, ["create@10", "update@11"]);
});

test("error frames reach a callback demultiplexed for the error stream", async () => {
  const {bridge, sockets} = await bridged();
  const errors = [];
  bridge.listen();
  bridge.demultiplex("error", (payload) => errors.push(payload.code));
  bridge.client.on("error", () => {});
  bridge.stream("comments").send({action: "create", data: {}});
  sockets[0].push("error", {code: "bad_request", message: "data.body is missing"});
  assert.deepEqual(errors, ["bad_request"]);
});

test("send before connect() is an error that says so", () => {
  const bridge = new WebSocketBridge();
  assert.throws(() => bridge.send({}), /connect\(\) first/);
});

test("bridgeUrl: absolute as given; none is the page's host; /path is relative to it (wss on https)", () => {
  const page = {protocol: "https:", host: "app.example.com:8443"};
  assert.equal(bridgeUrl("wss://api.example.com/prod", page), "wss://api.example.com/prod");
  assert.equal(bridgeUrl(undefined, page), "wss://app.example.com:8443");
  assert.equal(bridgeUrl("/ws/", page), "wss://app.example.com:8443/ws/");
  assert.equal(bridgeUrl("/ws/", {protocol: "http:", host: "127.0.0.1:8000"}), "ws://127.0.0.1:8000/ws/");
  assert.throws(() => bridgeUrl("/ws/", undefined), /page location/);
});

test("close() closes the connection for good", async () => {
  const {bridge, clock, sockets} = await bridged();
  bridge.close();
  await clock.advance(60000);
  assert.equal(bridge.client.state, "closed");
  assert.equal(sockets.length, 1);
});
