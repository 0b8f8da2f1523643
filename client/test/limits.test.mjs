// Scale, limits and refusals (issues 11, 13, 15, client side): heartbeat cadence, spread-out
// reconnects, refused handshakes, oversize frames, "not now" answers.
import assert from "node:assert/strict";
import {test} from "node:test";

import {MAX_FRAME_BYTES} from "../realtime.js";
import {settle} from "./fakes.mjs";
import {open, reconnect, sent, setup} from "./helpers.mjs";

// ------------------------------------------------------------------ heartbeat cadence

test("without presence the client heartbeats every 5 minutes, not every 25 s", async () => {
  const {clock, sockets} = await open();
  await clock.advance(299999);
  assert.equal(sockets[0].frames("heartbeat").length, 0);
  await clock.advance(1);
  assert.equal(sockets[0].frames("heartbeat").length, 1);
  await clock.advance(300000);
  assert.equal(sockets[0].frames("heartbeat").length, 2);
});

test("entering presence switches to 25 s; leaving the last phase switches back to 5 minutes", async () => {
  const {client, clock, sockets} = await open();
  await clock.advance(100000);
  client.enter("doc", "view");
  sockets[0].ackAll();
  await clock.advance(25000);
  assert.equal(sockets[0].frames("heartbeat").length, 1, "25 s after entering");
  client.enter("doc", "edit");
  client.leave("doc", "view");
  sockets[0].ackAll();
  await clock.advance(25000);
  assert.equal(sockets[0].frames("heartbeat").length, 2, "still holding edit");
  client.leave("doc", "edit");
  sockets[0].ackAll();
  await clock.advance(299999);
  assert.equal(sockets[0].frames("heartbeat").length, 2);
  await clock.advance(1);
  assert.equal(sockets[0].frames("heartbeat").length, 3);
});

test("presence refused by the server does not keep the fast heartbeat", async () => {
  const {client, clock, sockets} = await open();
  const entering = client.enter("doc", "view");
  sockets[0].error(sockets[0].last("enter").id, "unauthenticated", "sign in first");
  await assert.rejects(entering, {code: "unauthenticated"});
  await clock.advance(250000);
  assert.equal(sockets[0].frames("heartbeat").length, 0);
});

test("the idle heartbeat still detects a dead socket", async () => {
  const {client, clock, sockets} = await open({ackHeartbeats: false, ackTimeoutMs: 10000});
  await clock.advance(300000 + 9999);
  assert.equal(sockets[0].closedWith, null);
  await clock.advance(1);
  assert.ok(sockets[0].closedWith, "the unanswered heartbeat closed it");
  assert.equal(client.state, "reconnecting");
});

test("a request left unanswered sends a heartbeat at once, so a dead socket is found before the next beat", async () => {
  const {client, clock, sockets} = await open({ackHeartbeats: false, ackTimeoutMs: 10000});
  const subscribing = client.subscribe("users");
  const rejected = assert.rejects(subscribing, {code: "timeout"});
  await clock.advance(10000);
  await rejected;
  assert.equal(sockets[0].frames("heartbeat").length, 1, "probed right away");
  await clock.advance(10000);
  assert.ok(sockets[0].closedWith, "the probe went unanswered too: dead");
  assert.equal(clock.now(), 20000, "long before the 5-minute beat");
});

// ------------------------------------------------------------------ reconnect spread

test("the first reconnect after a drop waits random() * 5 s by default, then the backoff continues", async () => {
  const delays = [];
  const {client, clock, sockets} = await setup({firstReconnectMaxMs: undefined, random: () => 0.9});
  client.on("reconnecting", ({delay}) => delays.push(delay));
  sockets[0].accept();
  sockets[0].drop();
  await clock.advance(4499);
  assert.equal(sockets.length, 1, "not before 0.9 * 5 s");
  await clock.advance(1);
  assert.equal(sockets.length, 2);
  sockets[1].refuse();
  await clock.advance(1800);
  sockets[2].refuse();
  assert.deepEqual(delays, [4500, 1800, 3600]); // 0.9 of 5 s, then of 2 s and 4 s
});

test("the first attempt of a page that never connected is not delayed by the spread", async () => {
  const delays = [];
  const {client, sockets} = await setup({firstReconnectMaxMs: undefined, random: () => 0.9});
  client.on("reconnecting", ({delay}) => delays.push(delay));
  sockets[0].refuse();
  assert.deepEqual(delays, [900]);
});

// ------------------------------------------------------------------ refused handshakes

/** Let time pass until the client makes its next connection attempt. */
async function nextAttempt({clock, sockets}) {
  const before = sockets.length;
  for (let waited = 0; sockets.length === before; waited += 100) {
    assert.ok(waited < 120000, "no new attempt");
    await clock.advance(100);
  }
}

test("after 5 handshakes in a row fail before opening, the client stops with state refused", async () => {
  const {client, clock, sockets, states} = await setup();
  const refused = [];
  client.on("refused", (detail) => refused.push(detail));
  for (let i = 0; i < 4; i += 1) {
    sockets.at(-1).refuse();
    await nextAttempt({clock, sockets});
  }
  sockets.at(-1).refuse();
  assert.equal(client.state, "refused");
  assert.deepEqual(refused, [{refusals: 5}]);
  assert.equal(states.at(-1), "refused");
  await clock.advance(3600000);
  assert.equal(sockets.length, 5, "no sixth attempt");
});

test("maxRefusals sets how many refusals it takes", async () => {
  const {client, clock, sockets} = await setup({maxRefusals: 2});
  sockets[0].refuse();
  await nextAttempt({clock, sockets});
  sockets[1].refuse();
  assert.equal(client.state, "refused");
  await clock.advance(60000);
  assert.equal(sockets.length, 2);
});

test("retry() calls the token function again and tries at once; success clears the count", async () => {
  let calls = 0;
  const {client, clock, sockets} = await setup({maxRefusals: 2, token: async () => `t${++calls}`});
  sockets[0].refuse();
  await nextAttempt({clock, sockets});
  sockets[1].refuse();
  assert.equal(client.state, "refused");
  client.retry();
  await settle();
  assert.equal(sockets.length, 3);
  assert.equal(sockets[2].url.endsWith("token=t3"), true, "a fresh token");
  sockets[2].accept();
  assert.equal(client.state, "open");
  assert.equal(client.refusals, 0);
});

test("retry({token}) replaces the token first", async () => {
  const {client, clock, sockets} = await setup({maxRefusals: 1, token: "expired"});
  sockets[0].refuse();
  assert.equal(client.state, "refused");
  client.retry({token: "fresh"});
  await clock.advance(0);
  assert.equal(sockets[1].url.endsWith("token=fresh"), true);
});

test("a refused client keeps what the page wants and replays it after retry()", async () => {
  const {client, clock, sockets} = await open({maxRefusals: 1, refusedAfterMs: 0});
  client.subscribe("users");
  client.enter("doc", "edit");
  sockets[0].ackAll();
  await settle();
  sockets[0].drop();
  await clock.advance(500);
  sockets[1].refuse();
  assert.equal(client.state, "refused");
  client.retry();
  await settle();
  sockets[2].accept();
  assert.deepEqual(sent(sockets[2]), [{action: "subscribe", stream: "users"}, {action: "enter", document: "doc", phase: "edit"}]);
});

test("a socket that opened and then dropped is not a refusal", async () => {
  const {client, clock, sockets} = await setup({maxRefusals: 1, refusedAfterMs: 0});
  for (let i = 0; i < 3; i += 1) {
    sockets.at(-1).accept();
    sockets.at(-1).drop();
    assert.equal(client.state, "reconnecting");
    await nextAttempt({clock, sockets});
  }
  sockets.at(-1).refuse(); // the first refusal counts: maxRefusals is 1
  assert.equal(client.state, "refused");
});

test("a handshake that never answers (open timeout) is not a refusal", async () => {
  const {client, clock, sockets} = await setup({maxRefusals: 1, openTimeoutMs: 5000});
  await clock.advance(5000);
  assert.ok(sockets[0].closedWith, "abandoned");
  assert.equal(client.state, "reconnecting");
  await nextAttempt({clock, sockets});
  assert.equal(sockets.length, 2);
});

test("a token function that fails is not a refusal: no handshake happened", async () => {
  let fail = true;
  const {client, clock, sockets} = await setup({maxRefusals: 1, token: async () => {
    if (fail) throw new Error("token endpoint down");
    return "t";
  }});
  const noise = console.error;
  console.error = () => {};
  try {
    for (let i = 0; i < 4; i += 1) await clock.advance(30000);
  } finally {
    console.error = noise;
  }
  assert.equal(sockets.length, 0);
  assert.equal(client.state, "reconnecting");
  fail = false;
  await nextAttempt({clock, sockets});
  assert.equal(sockets.length, 1);
});

test("a refusal count is of refusals in a row: one open in between starts it over", async () => {
  const {client, clock, sockets} = await setup({maxRefusals: 2, refusedAfterMs: 0});
  sockets[0].refuse();
  await nextAttempt({clock, sockets});
  sockets[1].accept();
  sockets[1].drop();
  await nextAttempt({clock, sockets});
  sockets[2].refuse();
  assert.equal(client.state, "reconnecting");
  await nextAttempt({clock, sockets});
  sockets[3].refuse();
  assert.equal(client.state, "refused");
});

test("failures while the browser says it is offline are not refusals", async () => {
  const had = Object.getOwnPropertyDescriptor(globalThis, "navigator");
  Object.defineProperty(globalThis, "navigator", {value: {onLine: false}, configurable: true});
  try {
    const {client, clock, sockets} = await setup({maxRefusals: 1});
    sockets[0].refuse();
    await nextAttempt({clock, sockets});
    sockets[1].refuse();
    assert.equal(client.state, "reconnecting");
  } finally {
    if (had) Object.defineProperty(globalThis, "navigator", had);
    else delete globalThis.navigator;
  }
});

test("reconnect() does not leave refused (only retry() does)", async () => {
  const {client, sockets} = await setup({maxRefusals: 1});
  sockets[0].refuse();
  client.reconnect();
  await settle();
  assert.equal(sockets.length, 1);
  assert.equal(client.state, "refused");
});

// ------------------------------------------------------------------ oversize frames

test("a request over 8,192 bytes of UTF-8 rejects with too_large before sending; the socket stays", async () => {
  const {client, sockets} = await open();
  const body = "é".repeat(4100); // 4,100 characters, 8,200 bytes
  const writing = client.binding("comments").create({document: "d", body});
  await assert.rejects(writing, (error) => {
    assert.equal(error.code, "too_large");
    assert.match(error.message, /8192/);
    return true;
  });
  assert.deepEqual(sockets[0].sent, []);
  assert.equal(sockets[0].closedWith, null);
  assert.equal(client.state, "open");
});

test("a frame of exactly 8,192 bytes is sent; one byte more is not", async () => {
  const {client, sockets} = await open();
  const frameOf = (n) => ({action: "custom", pad: "x".repeat(n)});
  const overhead = JSON.stringify({...frameOf(0), id: 1}).length;
  const fits = client.request(frameOf(MAX_FRAME_BYTES - overhead));
  assert.equal(sockets[0].sent.length, 1);
  assert.equal(JSON.stringify(sockets[0].sent[0]).length, MAX_FRAME_BYTES);
  sockets[0].ackAll();
  await fits;
  await assert.rejects(client.request(frameOf(MAX_FRAME_BYTES - overhead + 1)), {code: "too_large"});
  assert.equal(sockets[0].sent.length, 1);
});

test("send() of an oversize frame reports an error event and sends nothing", async () => {
  const {client, sockets} = await open();
  const errors = [];
  client.on("error", (e) => errors.push(e.code));
  assert.equal(client.send({action: "custom", pad: "x".repeat(9000)}), false);
  assert.deepEqual(errors, ["too_large"]);
  assert.deepEqual(sockets[0].sent, []);
});

test("an oversize subscribe is refused and not kept as wanted state", async () => {
  const {client, clock, sockets} = await open();
  await assert.rejects(client.subscribe("comments", {document: "x".repeat(9000)}), {code: "too_large"});
  assert.deepEqual(client.subscribed(), []);
  sockets[0].drop();
  await clock.advance(500);
  sockets[1].accept();
  assert.deepEqual(sockets[1].sent, [], "nothing to replay");
});

test("a subscribe after close() rejects with closed and is not kept", async () => {
  const {client} = await open();
  client.close();
  await assert.rejects(client.subscribe("users"), {code: "closed"});
  assert.deepEqual(client.subscribed(), []);
});

test("an oversize request made offline is refused at once, not buffered", async () => {
  const {client, sockets} = await setup();
  await assert.rejects(client.request({action: "custom", pad: "x".repeat(9000)}), {code: "too_large"});
  sockets[0].accept();
  assert.deepEqual(sockets[0].sent, []);
});

// ------------------------------------------------------------------ "not now" answers

test("a replay answered rate_limited is kept and asked for again later, not forgotten", async () => {
  const env = await open();
  const {client, clock, sockets} = env;
  const errors = [];
  client.on("error", (e) => errors.push(e.code));
  client.subscribe("users");
  sockets[0].ackAll();
  const next = await reconnect(env);
  next.error(next.last("subscribe").id, "rate_limited", "too many frames");
  assert.deepEqual(client.subscribed(), [{stream: "users"}]);
  assert.deepEqual(errors, ["rate_limited"]);
  await clock.advance(60000);
  assert.equal(next.frames("subscribe").length, 2, "asked again after a backoff");
  next.ackAll();
  await settle();
  assert.deepEqual(client.subscribed(), [{stream: "users"}]);
});

test("the page's own request answered rate_limited rejects with that code", async () => {
  const {client, sockets} = await open();
  const subscribing = client.subscribe("users");
  sockets[0].error(sockets[0].last().id, "rate_limited", "too many frames");
  await assert.rejects(subscribing, {code: "rate_limited"});
});

test("enter resolves on its ack even when the roster update comes after it", async () => {
  const {client, sockets} = await open();
  const rosters = [];
  client.stream("document", {document: "d"}).listen((p) => rosters.push(p.phases.edit.length));
  client.subscribe("document", {document: "d"});
  sockets[0].push("document", {document: "d", phases: {edit: []}});
  sockets[0].ackAll();
  const entering = client.enter("d", "edit");
  sockets[0].ack(sockets[0].last("enter").id); // the ack first...
  await entering;
  sockets[0].push("document", {document: "d", phases: {edit: [{user: "me"}]}}); // ...the roster later
  assert.deepEqual(rosters, [0, 1]);
  assert.deepEqual(client.held(), [{document: "d", phase: "edit"}]);
});

test("a page that was open keeps trying past maxRefusals while refusedAfterMs has not passed since the drop", async () => {
  const {client, clock, sockets} = await open({maxRefusals: 2, refusedAfterMs: 60000});
  const dropped = clock.now();
  sockets[0].drop();
  while (clock.now() - dropped < 30000) {
    await nextAttempt({clock, sockets});
    sockets.at(-1).refuse();
    assert.equal(client.state, "reconnecting");
  }
  assert.ok(sockets.length > 3, "more refusals than maxRefusals, and still trying");
  await nextAttempt({clock, sockets}); // the server is back
  sockets.at(-1).accept();
  assert.equal(client.state, "open");
});

test("once refusedAfterMs has passed since the drop, maxRefusals failed handshakes in a row stop it", async () => {
  const {client, clock, sockets} = await open({maxRefusals: 2, refusedAfterMs: 60000});
  const dropped = clock.now();
  sockets[0].drop();
  while (client.state !== "refused") {
    await nextAttempt({clock, sockets});
    sockets.at(-1).refuse();
  }
  assert.ok(clock.now() - dropped >= 60000, "not before refusedAfterMs");
  const attempts = sockets.length;
  await clock.advance(3600000);
  assert.equal(sockets.length, attempts, "stopped");
});

test("the default: a page that was open is not refused within 5 minutes of a drop", async () => {
  const {client, clock, sockets} = await open();
  const dropped = clock.now();
  sockets[0].drop();
  while (clock.now() - dropped < 4 * 60 * 1000) {
    await nextAttempt({clock, sockets});
    sockets.at(-1).refuse();
    assert.notEqual(client.state, "refused");
  }
  assert.ok(sockets.length > 6);
});
