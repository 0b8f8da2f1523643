// serverless-realtime browser client: protocol v1 (docs/protocol.md). The generic core:
// it knows frames, streams, subscriptions, presence and bindings, not any application's
// streams (the reference app's models are in monitor.js; a Django Channels
// `WebSocketBridge` look-alike is in bridge.js).
//
// A dependency-free ES module: `<script type="module">import {connect} from "./realtime.js"`.
//
//   const client = connect("wss://abc.execute-api.eu-west-1.amazonaws.com/prod", {token: getToken});
//   client.on("state", (state) => ...);        // connecting | open | reconnecting | refused | closed
//   const comments = client.stream("comments", {document: "roadmap"});
//   comments.listen((payload) => ...);          // only this subscription's payloads
//   await comments.subscribe();                  // resolves on the server's ack
//   await client.binding("comments").create({document: "roadmap", body: "Hi"}); // {pk, version}
//   await client.enter("roadmap", "edit");       // rejects with an Error carrying .code
//
// What it does for the page:
// - reconnects with exponential backoff and full jitter (capped at 30 s; the first attempt
//   after a drop waits 0-5 s so a gateway restart does not bring every page back at once),
//   then re-subscribes every stream (with the highest history cursor it saw, from a frame
//   or a subscribe's ack, so the server replays what was missed) and re-enters every
//   presence it held; after a `reset` (the server cannot replay) it subscribes again
//   without a cursor for a fresh snapshot;
// - stops after `maxRefusals` handshakes in a row failed before opening (state `refused`)
//   until `retry()`; a page that was open keeps trying for `refusedAfterMs` after a drop
//   first (a gateway restart or a network outage is not a refusal);
// - reconnects proactively before API Gateway's 2-hour limit, opening the new socket (and
//   replaying subscriptions and presence on it) before closing the old one;
// - heartbeats every 25 s while it holds presence, else every 5 minutes, and treats an
//   unanswered heartbeat as a dead socket;
// - buffers sends made while offline (bounded; the oldest is dropped first and reported with
//   a "drop" event) and flushes them on reconnect; never sends a write twice;
// - refuses to send a frame over 8,192 bytes of UTF-8 (`too_large`): the server would answer
//   `too_large`, and API Gateway closes the socket on frames of 32 KB;
// - drops notifications whose `seq` is not higher than the highest seen for their (model, pk),
//   and published events whose `event` id it has seen already on that stream.

/** Protocol version this module speaks. */
export const PROTOCOL_VERSION = 1;

/** The server's limit for a client frame, in bytes of UTF-8 (docs/protocol.md). */
export const MAX_FRAME_BYTES = 8192;

const OPEN = 1; // WebSocket.OPEN

/** Frame fields that are not part of a subscription's identity. */
const CONTROL_FIELDS = new Set(["stream", "action", "id", "since"]);

/** Requests the server may get twice without harm: the only ones sent again on another socket. */
const IDEMPOTENT_ACTIONS = new Set(["subscribe", "unsubscribe", "enter", "leave", "heartbeat"]);

/** Published event ids remembered per stream (the oldest forgotten first): far more than a
 * replay sends (the server's `REPLAY_LIMIT`, 500) or a retry can repeat. */
const EVENTS_REMEMBERED = 2000;

/** Answers that say "not now" rather than "no": a replay answered so is tried again later. */
const TRANSIENT_CODES = new Set(["rate_limited", "internal"]);

/**
 * @typedef {"connecting" | "open" | "reconnecting" | "refused" | "closed"} ConnectionState
 *
 * @typedef {object} Timers
 * @property {(fn: () => void, ms: number) => any} setTimeout
 * @property {(handle: any) => void} clearTimeout
 * @property {(fn: () => void, ms: number) => any} setInterval
 * @property {(handle: any) => void} clearInterval
 * @property {() => number} now  milliseconds
 *
 * @typedef {string | null | (() => string | null | undefined | Promise<string | null | undefined>)} TokenSource
 *
 * @typedef {object} ConnectOptions
 * @property {TokenSource} [token]
 *   A JWT, or a function returning one (called before every connection attempt, so it can
 *   fetch a fresh short-lived token). No token: an anonymous connection.
 * @property {new (url: string) => WebSocket} [WebSocket]  constructor (tests inject a fake)
 * @property {Partial<Timers>} [timers]  timer functions (tests inject a fake clock)
 * @property {() => number} [random]  uniform in [0, 1) (tests make jitter deterministic)
 * @property {number} [heartbeatMs=25000]  heartbeat interval while holding presence
 *   (presence expires 60 s after the connection's last frame)
 * @property {number} [idleHeartbeatMs=300000]  heartbeat interval without presence
 *   (inside API Gateway's 10-minute idle timeout)
 * @property {number} [backoffBaseMs=1000]  first reconnect delay ceiling
 * @property {number} [backoffMaxMs=30000]  cap of the reconnect delay ceiling
 * @property {number} [firstReconnectMaxMs=5000]  the first attempt after a drop waits uniform [0, this)
 * @property {number} [maxRefusals=5]  handshakes in a row that fail before opening, then state `refused`
 * @property {number} [refusedAfterMs=300000]  after a drop, a page that was open is not `refused`
 *   before this long: an unreachable server looks like a refusal to a browser, and a gateway
 *   restart or an outage of a few minutes should end by itself
 * @property {number} [maxConnectionMs=6900000]  age at which to reconnect proactively
 *   (API Gateway closes connections at 2 h; default 1 h 55 min, minus up to `maxConnectionJitterMs`)
 * @property {number} [maxConnectionJitterMs=300000]  spreads proactive reconnects of many pages
 * @property {number} [ackTimeoutMs=10000]  a request not answered in this time rejects ("timeout")
 * @property {number} [openTimeoutMs=10000]  a socket not open in this time is abandoned
 * @property {number} [bufferSize=100]  offline sends kept at most (oldest dropped first)
 * @property {number} [maxFrameBytes=8192]  larger frames are refused before sending ("too_large")
 * @property {boolean} [dedupe=true]  drop notifications whose seq is not higher than the last for their
 *   (model, pk), and published events (`event`) already seen on their stream
 * @property {boolean} [reconnectWhenOnline=true]  in a browser, skip the backoff wait (or leave
 *   `refused`) on the window's "online" event
 *
 * @typedef {object} DropEvent
 * @property {object} frame  the frame that was dropped
 * @property {string} reason  "buffer_full"
 *
 * @typedef {object} ReconnectingEvent
 * @property {number} attempt  1 for the first retry
 * @property {number} delay  milliseconds until the attempt
 *
 * @typedef {object} ResetEvent
 * @property {string} stream
 * @property {Record<string, any>} params  the subscription's identity, e.g. {document: "roadmap"}
 */

/** An error answered by the server (`code` from the `error` frame), or raised by the client
 * (`timeout`, `dropped`, `cancelled`, `closed`, `disconnected`, `too_large`, `bad_request`). */
export class RealtimeError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {object} [frame]  the client frame it answers
   */
  constructor(code, message, frame) {
    super(message);
    this.name = "RealtimeError";
    this.code = code;
    this.frame = frame;
  }
}

/** The largest reconnect delay for an attempt: base * 2^attempt, capped.
 * @param {number} attempt  0 for the first retry
 * @param {number} [baseMs]
 * @param {number} [maxMs]
 */
export function backoffCeiling(attempt, baseMs = 1000, maxMs = 30000) {
  return Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
}

/** Full jitter: a delay uniform in [0, ceiling). */
export function backoffDelay(attempt, random = Math.random, baseMs = 1000, maxMs = 30000) {
  return Math.floor(random() * backoffCeiling(attempt, baseMs, maxMs));
}

/** JSON with object keys sorted at every level: equal values, equal strings. */
export function stableJson(value) {
  if (Array.isArray(value)) return `[${value.map((item) => stableJson(item ?? null)).join(",")}]`;
  if (value && typeof value === "object") {
    const keys = Object.keys(value).filter((key) => value[key] !== undefined).sort();
    return `{${keys.map((key) => `${JSON.stringify(key)}:${stableJson(value[key])}`).join(",")}}`;
  }
  return JSON.stringify(value ?? null);
}

/** Bytes of the UTF-8 encoding of a string. */
export function utf8Length(text) {
  return new TextEncoder().encode(text).length;
}

/** A subscription's identity: its params without the control fields. */
function identityOf(params) {
  const identity = {};
  for (const [name, value] of Object.entries(params ?? {})) {
    if (!CONTROL_FIELDS.has(name) && value !== undefined) identity[name] = value;
  }
  return identity;
}

/** Key of wanted state: stable JSON of the sorted params (`stream` included). Parsing it
 * back gives the params. */
function subscriptionKey(stream, params) {
  return stableJson({...identityOf(params), stream});
}

function presenceKey(document, phase) {
  return stableJson({document: String(document), phase: String(phase)});
}

function same(a, b) {
  if ((a && typeof a === "object") || (b && typeof b === "object")) return stableJson(a) === stableJson(b);
  return String(a) === String(b);
}

/** The value a payload gives for an identity field: its own, its pk's, or its data's. */
function lookup(payload, name) {
  for (const source of [payload, payload?.pk, payload?.data]) {
    if (source && typeof source === "object" && source[name] !== undefined) return source[name];
  }
  return undefined;
}

/** Whether a payload can belong to a subscription of that identity: no field it names
 * contradicts it (a payload naming none of them can belong to any). */
function concerns(payload, identity) {
  return Object.entries(identity).every(([name, expected]) => {
    const found = lookup(payload, name);
    return found === undefined || same(found, expected);
  });
}

/** Parse a decimal `seq` as a BigInt (null when it is not one). */
function parseSeq(seq) {
  if (typeof seq === "number" && Number.isSafeInteger(seq) && seq >= 0) return BigInt(seq);
  if (typeof seq !== "string" || !/^\d+$/.test(seq)) return null;
  return BigInt(seq);
}

function withToken(url, token) {
  if (!token) return url;
  return `${url}${url.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}`;
}

/** Whether the browser says it is offline (a failed handshake then proves nothing). */
function offline() {
  return globalThis.navigator?.onLine === false;
}

/**
 * One logical stream of the connection, or one subscription of it (`params`): `listen(cb)`
 * gets every payload on that stream that can belong to those params (`cb(payload, frame)`).
 */
export class Stream {
  /** @param {RealtimeClient} client @param {string} name @param {Record<string, any>} [params] */
  constructor(client, name, params = {}) {
    this.client = client;
    this.name = name;
    /** The subscription's identity, e.g. {document: "roadmap"}. */
    this.params = identityOf(params);
    /** @type {Set<(payload: any, frame: object) => void>} */
    this.listeners = new Set();
  }

  /** @param {(payload: any, frame: object) => void} callback @returns {() => void} stops listening */
  listen(callback) {
    this.listeners.add(callback);
    return () => this.listeners.delete(callback);
  }

  /** Subscribe with this stream's params (plus `params`, e.g. `{since}`). */
  subscribe(params = {}) {
    return this.client.subscribe(this.name, {...this.params, ...params});
  }

  unsubscribe(params = {}) {
    return this.client.unsubscribe(this.name, {...this.params, ...params});
  }

  /** Ask for the snapshot again (after a `reset`). */
  resubscribe() {
    return this.client.resubscribe(this.name, this.params);
  }

  _dispatch(payload, frame) {
    if (!concerns(payload, this.params)) return;
    for (const callback of [...this.listeners]) {
      try {
        callback(payload, frame);
      } catch (error) {
        this.client._report(error);
      }
    }
  }
}

/**
 * Writes to a binding stream (e.g. `comments`). Each settles on the server's ack (`{id, pk,
 * version}`) or rejects with a RealtimeError: the server's code (`bad_request`, `forbidden`,
 * `not_found`, `conflict`, `unauthenticated`, `rate_limited`, `too_large`), or `disconnected`
 * (the socket dropped before the answer: the write may or may not have happened), `timeout`,
 * `dropped`, `closed`. Writes are never sent twice: not replayed, not retried.
 */
export class Binding {
  /** @param {RealtimeClient} client @param {string} stream */
  constructor(client, stream) {
    this.client = client;
    this.stream = stream;
  }

  /** @param {Record<string, any>} data */
  create(data) {
    if (!isObject(data)) return this._invalid("create needs a data object");
    return this.client._write({action: "create", stream: this.stream, data});
  }

  /** @param {string | Record<string, any>} pk @param {Record<string, any>} data @param {number} version */
  update(pk, data, version) {
    if (!isPk(pk) || !isObject(data) || !isVersion(version)) {
      return this._invalid("update needs a pk, a data object and the version it changes");
    }
    return this.client._write({action: "update", stream: this.stream, pk, version, data});
  }

  /** @param {string | Record<string, any>} pk @param {number} version */
  delete(pk, version) {
    if (!isPk(pk) || !isVersion(version)) return this._invalid("delete needs a pk and the version it deletes");
    return this.client._write({action: "delete", stream: this.stream, pk, version});
  }

  _invalid(message) {
    return Promise.reject(new RealtimeError("bad_request", message));
  }
}

function isObject(value) {
  return !!value && typeof value === "object" && !Array.isArray(value);
}

function isPk(pk) {
  return (typeof pk === "string" && pk !== "") || isObject(pk);
}

function isVersion(version) {
  return Number.isSafeInteger(version) && version >= 0;
}

/**
 * A protocol v1 connection that survives disconnects. Made by `connect()`.
 *
 * State the page asked for (subscriptions, presence) is kept here and replayed on every new
 * socket; each request (`subscribe`, `enter`, ...) carries an `id` and settles on its answer.
 */
export class RealtimeClient {
  /** @param {string} url @param {ConnectOptions} [options] */
  constructor(url, options = {}) {
    this.url = url;
    this.options = options;
    /** @type {TokenSource} */
    this.token = options.token ?? null;
    this.WebSocket = options.WebSocket ?? globalThis.WebSocket;
    if (!this.WebSocket) throw new TypeError("no WebSocket constructor: pass options.WebSocket");
    const t = options.timers ?? {};
    /** @type {Timers} */
    this.timers = {
      setTimeout: t.setTimeout ?? ((fn, ms) => globalThis.setTimeout(fn, ms)),
      clearTimeout: t.clearTimeout ?? ((h) => globalThis.clearTimeout(h)),
      setInterval: t.setInterval ?? ((fn, ms) => globalThis.setInterval(fn, ms)),
      clearInterval: t.clearInterval ?? ((h) => globalThis.clearInterval(h)),
      now: t.now ?? (() => Date.now()),
    };
    this.random = options.random ?? Math.random;
    this.heartbeatMs = options.heartbeatMs ?? 25000;
    this.idleHeartbeatMs = options.idleHeartbeatMs ?? 5 * 60 * 1000;
    this.backoffBaseMs = options.backoffBaseMs ?? 1000;
    this.backoffMaxMs = options.backoffMaxMs ?? 30000;
    this.firstReconnectMaxMs = options.firstReconnectMaxMs ?? 5000;
    this.maxRefusals = Math.max(1, options.maxRefusals ?? 5);
    this.refusedAfterMs = Math.max(0, options.refusedAfterMs ?? 5 * 60 * 1000);
    this.maxConnectionMs = options.maxConnectionMs ?? (2 * 60 - 5) * 60 * 1000;
    this.maxConnectionJitterMs = options.maxConnectionJitterMs ?? 5 * 60 * 1000;
    this.ackTimeoutMs = options.ackTimeoutMs ?? 10000;
    this.openTimeoutMs = options.openTimeoutMs ?? 10000;
    this.bufferSize = Math.max(1, options.bufferSize ?? 100);
    this.maxFrameBytes = options.maxFrameBytes ?? MAX_FRAME_BYTES;
    this.dedupe = options.dedupe ?? true;

    /** @type {ConnectionState} */
    this.state = "connecting";
    /** @type {any} the socket frames go out on (null while there is none) */
    this.socket = null;
    /** @type {any} a proactive replacement, while it opens and replays */
    this.pendingSocket = null;
    /** Replaced sockets kept open until the writes in flight on them are answered. */
    this.retiring = new Set();
    this.attempt = 0;
    /** Handshakes in a row that failed before opening. */
    this.refusals = 0;
    this.everOpened = false;
    this.closedByUser = false;
    this.opening = false;
    this.nextId = 1;
    /** Streams by subscription key (a stream without params has the key of its name alone). */
    this.streams = new Map();
    /** @type {Map<string, Set<Function>>} */
    this.handlers = new Map();
    /** Subscriptions the page wants: key -> {params, request?, cursor?, replayed?} (`replayed`:
     * the highest cursor of the frames of a replay still in flight). */
    this.subscriptions = new Map();
    /** Presence the page holds: key -> {params: {document, phase}, request?}. */
    this.presence = new Map();
    /** Requests awaiting their ack or error, by id. */
    this.pending = new Map();
    /** Frames sent while offline, oldest first: {frame, request?}. */
    this.buffer = [];
    /** Highest notification seq per (stream, model, pk). @type {Map<string, bigint>} */
    this.seqs = new Map();
    /** Published event ids seen, per stream, oldest first. @type {Map<string, Set<string>>} */
    this.events = new Map();
    /** When the last open socket dropped (null while open, or before any socket opened). */
    this._droppedAt = null;
    this._reconnectTimer = null;
    this._heartbeatTimer = null;
    this._heartbeatEveryMs = null;
    this._proactiveTimer = null;
    this._heartbeat = null;
    this._afterDrop = false;
    this._resendTimers = new Set();
    this._online = null;
    if (options.reconnectWhenOnline ?? true) {
      const target = globalThis.window;
      if (target && typeof target.addEventListener === "function") {
        this._online = () => (this.state === "refused" ? this.retry() : this.reconnect());
        target.addEventListener("online", this._online);
      }
    }
    this._open(false);
  }

  // ------------------------------------------------------------------ events

  /**
   * Listen to client events:
   * - "state": the new ConnectionState (also emitted under its own name: "connecting",
   *   "open", "reconnecting" with a ReconnectingEvent, "refused" with {refusals}, "closed");
   * - "drop": a DropEvent, a buffered send dropped because the buffer was full;
   * - "error": an error frame no request was waiting for, a RealtimeError of a replayed
   *   subscription or presence (e.g. the document became private: the client forgot it),
   *   or a `send()` refused before sending (`too_large`);
   * - "reset": a ResetEvent, the server could not replay what this subscription missed (its
   *   cursor is gone); the client subscribes again without a cursor by itself (a snapshot
   *   comes, where the stream has one), so a page only says that something may be missing;
   * - "disconnected" ({code, reason}), "renewing" / "renewed" (proactive reconnect);
   * - "frame": every server frame, as parsed; "message": every frame that reached (or would
   *   reach) listeners, after dedupe, ack and error frames included.
   * @param {string} type @param {(detail: any) => void} callback @returns {() => void}
   */
  on(type, callback) {
    if (!this.handlers.has(type)) this.handlers.set(type, new Set());
    this.handlers.get(type).add(callback);
    return () => this.handlers.get(type)?.delete(callback);
  }

  _emit(type, detail) {
    for (const callback of [...(this.handlers.get(type) ?? [])]) {
      try {
        callback(detail);
      } catch (error) {
        this._report(error);
      }
    }
  }

  _report(error) {
    globalThis.console?.error?.(error);
  }

  _setState(state, detail) {
    if (this.state === state && state !== "reconnecting") return;
    this.state = state;
    this._emit("state", state);
    this._emit(state, detail);
  }

  // ------------------------------------------------------------------ public API

  /**
   * A stream, or one subscription of it: its listeners get every payload on that stream
   * that can belong to `params` (all of the stream's payloads without params).
   * @param {string} name @param {Record<string, any>} [params]  e.g. {document: "roadmap"}
   */
  stream(name, params = {}) {
    const key = subscriptionKey(name, params);
    let stream = this.streams.get(key);
    if (!stream) {
      stream = new Stream(this, name, params);
      this.streams.set(key, stream);
    }
    return stream;
  }

  /** Writes to a binding stream: `create`, `update`, `delete`. @param {string} stream */
  binding(stream) {
    return new Binding(this, stream);
  }

  /**
   * Subscribe to a stream; resolves with the ack once the server confirmed it (its snapshot
   * has reached the listeners by then), rejects with a RealtimeError (`.code`: the error
   * frame's code, or `timeout`, `dropped`, `cancelled`, `closed`, `too_large`). Kept across
   * reconnects until `unsubscribe`. Params other than `stream`/`action`/`id`/`since` are the
   * subscription's identity; `since` (a cursor) asks the server to replay what came after it.
   * @param {string} stream  any stream the server declares
   * @param {Record<string, any>} [params]  e.g. {document: "roadmap"}
   */
  subscribe(stream, params = {}) {
    const wanted = {...identityOf(params), stream};
    const cursor = typeof params.since === "string" ? params.since : undefined;
    return this._want(this.subscriptions, subscriptionKey(stream, params), wanted, cursor);
  }

  /** Stop receiving a stream. @param {string} stream @param {Record<string, any>} [params] */
  unsubscribe(stream, params = {}) {
    const wanted = {...identityOf(params), stream};
    return this._unwant(this.subscriptions, subscriptionKey(stream, params), {action: "unsubscribe", ...wanted});
  }

  /**
   * Ask for a subscription's snapshot again, without a cursor (after a `reset`). A subscribe
   * of it already in flight is let finish first; resolves `{cancelled: true}` when the page
   * unsubscribed meanwhile.
   * @param {string} stream @param {Record<string, any>} [params]
   */
  resubscribe(stream, params = {}) {
    const identity = identityOf(params);
    const key = subscriptionKey(stream, identity);
    const entry = this.subscriptions.get(key);
    if (entry) {
      delete entry.cursor;
      delete entry.replayed;
    }
    const inFlight = entry?.request && !entry.request.settled ? entry.request.promise : null;
    if (!inFlight) return this.subscribe(stream, identity);
    const again = () => (this.subscriptions.has(key) ? this.subscribe(stream, identity) : {cancelled: true});
    return inFlight.then(again, again);
  }

  /** Join a phase of a document (signed-in users only); held across reconnects until `leave`.
   * @param {string} document @param {string} phase */
  enter(document, phase) {
    const params = {document, phase};
    return this._want(this.presence, presenceKey(document, phase), params);
  }

  /** Leave a phase. @param {string} document @param {string} phase */
  leave(document, phase) {
    return this._unwant(this.presence, presenceKey(document, phase), {action: "leave", document, phase});
  }

  /** The phases held, as [{document, phase}]. */
  held() {
    return [...this.presence.values()].map(({params}) => ({...params}));
  }

  /** The subscriptions kept, as [{stream, ...identity}]. */
  subscribed() {
    return [...this.subscriptions.values()].map(({params}) => ({...params}));
  }

  /** The last history cursor seen for a subscription (sent as `since` when it is replayed). */
  cursor(stream, params = {}) {
    return this.subscriptions.get(subscriptionKey(stream, params))?.cursor ?? null;
  }

  /**
   * Send any frame with an `id`: resolves on its ack, rejects with a RealtimeError on its
   * error frame. Buffered while offline; never sent twice. @param {object} frame
   */
  request(frame) {
    return this._request({...frame}).promise;
  }

  /** Send a frame, no answer awaited (buffered while offline). False when it was not sent
   * now (buffered, or refused: an "error" event says why). @param {object} frame */
  send(frame) {
    if (this.closedByUser) return false;
    const tooLarge = this._tooLarge(frame);
    if (tooLarge) {
      this._emit("error", {code: tooLarge.code, message: tooLarge.message, frame});
      return false;
    }
    if (this._isOpen(this.socket)) return this._transmit(this.socket, frame);
    this._buffer({frame});
    return false;
  }

  /** Reconnect now: skips the backoff wait when offline, renews the socket when open. */
  reconnect() {
    if (this.closedByUser || this.state === "refused") return;
    if (this._isOpen(this.socket)) {
      this._renew();
      return;
    }
    if (this._reconnectTimer !== null) {
      this.timers.clearTimeout(this._reconnectTimer);
      this._reconnectTimer = null;
      this._open(false);
    }
  }

  /**
   * Try again after `refused` (or skip the backoff wait while reconnecting): the refusal
   * count starts over and the token function is called again for a fresh token. Give
   * `{token}` to replace the token (or token function) first.
   * @param {{token?: TokenSource}} [options]
   */
  retry({token} = {}) {
    if (this.closedByUser) return;
    if (token !== undefined) this.token = token;
    this.refusals = 0;
    if (this.state !== "refused") {
      this.reconnect();
      return;
    }
    this.attempt = 0;
    this._setState(this.everOpened ? "reconnecting" : "connecting", {attempt: 1, delay: 0});
    this._open(false);
  }

  /** Close for good: no reconnect; unsettled requests reject with code "closed". */
  close(code = 1000, reason = "") {
    if (this.closedByUser) return;
    this.closedByUser = true;
    if (this._online) globalThis.window?.removeEventListener?.("online", this._online);
    this.timers.clearTimeout(this._reconnectTimer);
    this.timers.clearTimeout(this._proactiveTimer);
    for (const timer of this._resendTimers) this.timers.clearTimeout(timer);
    this._resendTimers.clear();
    this._stopHeartbeat();
    for (const socket of [this.socket, this.pendingSocket, ...this.retiring]) if (socket) this._discard(socket, code, reason);
    this.socket = null;
    this.pendingSocket = null;
    this.retiring.clear();
    const closed = (r) => new RealtimeError("closed", "the client was closed", r.frame);
    for (const request of [...this.pending.values()]) this._settle(request, closed(request));
    for (const {request} of this.buffer.splice(0)) if (request) this._settle(request, closed(request));
    for (const owner of [this.subscriptions, this.presence]) {
      for (const entry of owner.values()) if (entry.request) this._settle(entry.request, closed(entry.request));
    }
    this._setState("closed");
  }

  // ------------------------------------------------------------------ requests

  /** The frame that asks the server for a piece of wanted state. */
  _wantedFrame(owner, entry) {
    if (owner === this.presence) return {action: "enter", ...entry.params};
    return entry.cursor ? {action: "subscribe", ...entry.params, since: entry.cursor} : {action: "subscribe", ...entry.params};
  }

  /** Record wanted state and ask the server for it. */
  _want(owner, key, params, cursor) {
    const entry = owner.get(key);
    if (entry?.request && !entry.request.settled) return entry.request.promise; // already on its way
    const fresh = {params, request: null};
    if (cursor) fresh.cursor = cursor;
    owner.set(key, fresh);
    // Recorded before it goes out: a request refused at once (too large, closed) must find
    // its entry to forget it.
    const request = this._newRequest(this._wantedFrame(owner, fresh), owner, key);
    fresh.request = request;
    this._issue(request);
    this._retuneHeartbeat();
    return request.promise;
  }

  /** Forget wanted state; tell the server only if a live socket holds it. */
  _unwant(owner, key, frame) {
    const entry = owner.get(key);
    owner.delete(key);
    this._retuneHeartbeat();
    const request = entry?.request;
    if (request && !request.settled) {
      const index = this.buffer.findIndex((item) => item.request === request);
      if (index >= 0) {
        // Never left the buffer: nothing to undo on the server.
        this.buffer.splice(index, 1);
        this._settle(request, new RealtimeError("cancelled", `cancelled by ${frame.action}`, request.frame));
        return Promise.resolve({cancelled: true});
      }
      if (!this._isOpen(this.socket)) {
        this._settle(request, new RealtimeError("cancelled", `cancelled by ${frame.action}`, request.frame));
      }
    }
    if (!this._isOpen(this.socket)) {
      // The socket that held it is gone, and the next one will not get it.
      return Promise.resolve({offline: true});
    }
    return this._request(frame).promise;
  }

  /** A write: sent once (now, or from the offline buffer), never replayed or retried. */
  _write(frame) {
    return this._request(frame).promise;
  }

  /**
   * A request: {id, frame, owner?, key?, silent?, socket, timer, settled, promise}.
   * Sent now when open, else buffered; refused at once when too large.
   */
  _request(frame) {
    return this._issue(this._newRequest(frame));
  }

  /** Send a new request now, buffer it, or refuse it. */
  _issue(request) {
    const tooLarge = this._tooLarge(request.frame);
    if (this.closedByUser) this._settle(request, new RealtimeError("closed", "the client was closed", request.frame));
    else if (tooLarge) this._settle(request, new RealtimeError(tooLarge.code, tooLarge.message, request.frame));
    else if (this._isOpen(this.socket)) this._sendRequest(this.socket, request);
    else this._buffer({frame: request.frame, request});
    return request;
  }

  /** Why a frame may not be sent (`too_large`), or null. */
  _tooLarge(frame) {
    let text;
    try {
      text = JSON.stringify(frame);
    } catch (error) {
      return {code: "bad_request", message: `the frame is not JSON: ${error.message}`};
    }
    const bytes = utf8Length(text);
    if (bytes <= this.maxFrameBytes) return null;
    return {code: "too_large", message: `the frame is ${bytes} bytes of UTF-8; the limit is ${this.maxFrameBytes}`};
  }

  _newRequest(frame, owner = null, key = null, silent = false) {
    const id = this.nextId++;
    const request = {id, frame: {...frame, id}, owner, key, silent, socket: null, timer: null,
                     settled: false, resolve: null, reject: null, promise: null};
    request.promise = new Promise((resolve, reject) => {
      request.resolve = resolve;
      request.reject = reject;
    });
    // Replays and heartbeats are nobody's promise: never an unhandled rejection.
    if (silent) request.promise.catch(() => {});
    return request;
  }

  _sendRequest(socket, request) {
    request.socket = socket;
    this.pending.set(String(request.id), request);
    this.timers.clearTimeout(request.timer);
    request.timer = this.timers.setTimeout(() => {
      this._settle(request, new RealtimeError("timeout", `no answer in ${this.ackTimeoutMs} ms`, request.frame));
      // An unanswered request is a hint the socket is dead: ask now rather than at the next beat.
      if (request.frame.action !== "heartbeat" && socket === this.socket) this._beat();
    }, this.ackTimeoutMs);
    this._transmit(socket, request.frame);
  }

  /** Settle a request once: resolve with the ack, or reject (and forget its wanted state). */
  _settle(request, error, ack) {
    if (request.settled) return;
    request.settled = true;
    this.timers.clearTimeout(request.timer);
    if (this.pending.get(String(request.id)) === request) this.pending.delete(String(request.id));
    const entry = request.owner?.get(request.key);
    if (entry && (entry.request === request || request.replacement)) {
      if (request.owner === this.subscriptions && request.frame.action === "subscribe") {
        if (error) delete entry.replayed;
        else this._acked(entry, ack);
      }
      if (entry.request === request) entry.request = null;
      // The page's own request failed: it is not wanted any more. A replay (nobody's
      // promise) is forgotten only when the server refused it; otherwise the next socket
      // (or, for a "not now" answer, a later resend) tries again.
      if (error && (!request.silent || isRefusal(error))) {
        request.owner.delete(request.key);
        this._retuneHeartbeat();
      } else if (error && request.silent && !request.replacement && TRANSIENT_CODES.has(error.code)) {
        this._resendLater(request.owner, request.key);
      }
    }
    if (error) {
      request.reject(error);
      if (request.silent && error.code !== "closed") this._emit("error", error);
    } else {
      request.resolve(ack ?? {id: request.id});
    }
    if (request.socket && this.retiring.has(request.socket)) this._finishRetiring(request.socket);
  }

  /** A replay answered "not now" (rate_limited, internal): ask again after a backoff. */
  _resendLater(owner, key) {
    const timer = this.timers.setTimeout(() => {
      this._resendTimers.delete(timer);
      const entry = owner.get(key);
      if (!entry || (entry.request && !entry.request.settled) || !this._isOpen(this.socket)) return;
      entry.request = this._newRequest(this._wantedFrame(owner, entry), owner, key, true);
      this._sendRequest(this.socket, entry.request);
    }, this.backoffBaseMs + backoffDelay(0, this.random, this.backoffMaxMs, this.backoffMaxMs));
    this._resendTimers.add(timer);
  }

  _buffer(item) {
    this.buffer.push(item);
    while (this.buffer.length > this.bufferSize) {
      const dropped = this.buffer.shift();
      if (dropped.request) {
        this._settle(dropped.request, new RealtimeError("dropped", "dropped from the full offline buffer", dropped.frame));
      }
      this._emit("drop", {frame: dropped.frame, reason: "buffer_full"});
    }
  }

  // ------------------------------------------------------------------ sockets

  _isOpen(socket) {
    return !!socket && socket.readyState === OPEN;
  }

  _transmit(socket, frame) {
    try {
      socket.send(JSON.stringify(frame));
      return true;
    } catch (error) {
      this._report(error);
      return false;
    }
  }

  /** Open a socket: the main one, or (`proactive`) a replacement for an open one. */
  async _open(proactive) {
    if (this.closedByUser || (!proactive && this.opening)) return;
    if (!proactive) this.opening = true;
    let socket = null;
    try {
      const token = typeof this.token === "function" ? await this.token() : this.token;
      if (this.closedByUser) return;
      socket = new this.WebSocket(withToken(this.url, token));
    } catch (error) {
      this._report(error);
    } finally {
      if (!proactive) this.opening = false;
    }
    if (this.closedByUser) {
      if (socket) this._discard(socket);
      return;
    }
    if (!socket) {
      // No token (its function failed) or no socket: no handshake happened, not a refusal.
      if (proactive) this._scheduleProactive(this._retryLater());
      else this._scheduleReconnect();
      return;
    }
    if (proactive) this.pendingSocket = socket;
    else this.socket = socket;
    socket._openTimer = this.timers.setTimeout(() => {
      if (socket.readyState === OPEN) return;
      socket._timedOut = true;
      this._discard(socket, 4000, "open timeout", true);
    }, this.openTimeoutMs);
    socket.onopen = () => this._onOpen(socket);
    socket.onmessage = (event) => this._onMessage(socket, event.data);
    socket.onerror = () => {}; // a close event follows
    socket.onclose = (event) => this._onClose(socket, event);
  }

  _retryLater() {
    return this.backoffBaseMs + backoffDelay(0, this.random, this.backoffMaxMs, this.backoffMaxMs);
  }

  /** Stop listening to a socket and close it; `failed`: then handle it as a lost socket. */
  _discard(socket, code = 1000, reason = "", failed = false) {
    this.timers.clearTimeout(socket._openTimer);
    socket.onopen = socket.onmessage = socket.onerror = socket.onclose = null;
    try {
      socket.close(code, reason);
    } catch {
      // already closing
    }
    if (failed) this._onClose(socket, {code: 1006, reason, wasClean: false});
  }

  _onOpen(socket) {
    this.timers.clearTimeout(socket._openTimer);
    socket._openedAt = this.timers.now();
    if (socket === this.pendingSocket) {
      this._replayOnReplacement(socket);
      return;
    }
    if (socket !== this.socket) return;
    this.attempt = 0;
    this.refusals = 0;
    this.everOpened = true;
    this._droppedAt = null;
    this._setState("open");
    this._replay(socket);
    this._flush(socket);
    this._startHeartbeat();
    this._scheduleProactive();
  }

  /** On a new main socket: subscribe again and re-enter everything wanted, except requests
   * still in the buffer (the flush sends those) and requests already on this socket. */
  _replay(socket) {
    const buffered = new Set(this.buffer.map((item) => item.request).filter(Boolean));
    for (const owner of [this.subscriptions, this.presence]) {
      for (const [key, entry] of owner) {
        const mine = entry.request;
        if (mine && !mine.settled) {
          if (buffered.has(mine) || mine.socket === socket) continue;
          this._sendRequest(socket, mine); // sent on a lost socket, never answered: same id, same promise
          continue;
        }
        entry.request = this._newRequest(this._wantedFrame(owner, entry), owner, key, true);
        this._sendRequest(socket, entry.request);
      }
    }
  }

  _flush(socket) {
    for (const item of this.buffer.splice(0)) {
      if (item.request) this._sendRequest(socket, item.request);
      else this._transmit(socket, item.frame);
    }
  }

  _onMessage(socket, data) {
    const retiring = this.retiring.has(socket);
    if (socket !== this.socket && socket !== this.pendingSocket && !retiring) return;
    let frame;
    try {
      frame = JSON.parse(typeof data === "string" ? data : String(data));
    } catch {
      this._emit("error", {code: "bad_frame", message: "the server sent a frame that is not JSON"});
      return;
    }
    if (!frame || typeof frame !== "object") return;
    const {stream, payload} = frame;
    this._emit("frame", frame);
    if (stream === "ack") {
      const request = this.pending.get(String(payload?.id));
      if (request) this._settle(request, null, payload);
      this._emit("message", frame);
      return;
    }
    if (stream === "error") {
      const request = payload?.id !== undefined && payload?.id !== null ? this.pending.get(String(payload.id)) : undefined;
      if (request) this._settle(request, new RealtimeError(payload.code ?? "error", payload.message ?? "", request.frame));
      else this._emit("error", payload);
      if (payload?.code === "unauthenticated" && /not registered/.test(payload?.message ?? "") && socket === this.socket) {
        this._discard(socket, 4002, "not registered", true); // the server forgot this socket
      }
      this._emit("message", frame);
      return;
    }
    if (retiring) return; // the replacement carries every stream now
    if (typeof stream !== "string") {
      this._emit("message", frame);
      return;
    }
    if (this.dedupe && !this._fresh(stream, payload, frame)) return;
    if (typeof frame.cursor === "string") this._advance(stream, payload, frame.cursor);
    if (payload?.reset === true) this._reset(stream, payload);
    if (payload?.removed === true) this._ended(stream, payload);
    this._emit("message", frame);
    for (const listening of [...this.streams.values()]) {
      if (listening.name === stream) listening._dispatch(payload, frame);
    }
  }

  /** Subscriptions a payload of that stream can belong to. */
  _owners(stream, payload) {
    return [...this.subscriptions.values()].filter(
      (entry) => entry.params.stream === stream && concerns(payload, identityOf(entry.params)));
  }

  /** The one subscription a payload belongs to, or null when that is not certain. */
  _owner(stream, payload) {
    const owners = this._owners(stream, payload);
    return owners.length === 1 ? owners[0] : null;
  }

  /** Keep the highest cursor of a subscription (only where the frame's owner is certain: a
   * wrong cursor would replay another subscription's log). While a replay is in flight its
   * frames' cursors wait for the ack: live frames come between replayed ones, and a cursor
   * taken from one of them would skip the rest of the replay if the socket dropped now. */
  _advance(stream, payload, cursor) {
    const entry = this._owner(stream, payload);
    if (!entry) return;
    if (replaying(entry)) entry.replayed = laterCursor(entry.replayed, cursor);
    else entry.cursor = laterCursor(entry.cursor, cursor);
  }

  /** A subscribe's ack: its cursor is where to replay from if no frame with a cursor comes
   * before the next drop (a page that heard nothing, typically `alerts`, still catches up).
   * A replay's ack comes after every replayed frame, so their cursors count from now on. */
  _acked(entry, ack) {
    const replayed = entry.replayed;
    delete entry.replayed;
    if (typeof ack?.cursor !== "string" || !ack.cursor) return; // a reset: no cursor to keep
    entry.cursor = laterCursor(laterCursor(entry.cursor, ack.cursor), replayed);
  }

  /** The server cannot replay what was missed: forget the cursors, tell the page, and ask
   * for the snapshot again (once the subscribe in flight is answered). */
  _reset(stream, payload) {
    for (const entry of this._owners(stream, payload)) {
      delete entry.cursor;
      delete entry.replayed;
      const params = identityOf(entry.params);
      this._emit("reset", {stream, params});
      this.resubscribe(stream, params).catch(() => {}); // a refusal is reported as an error event
    }
  }

  /** `removed: true`: the server ended that subscription (e.g. the document was deleted). */
  _ended(stream, payload) {
    const entry = this._owner(stream, payload);
    if (!entry || (entry.request && !entry.request.settled)) return;
    this.subscriptions.delete(subscriptionKey(stream, entry.params));
  }

  /** False for a frame seen already. Binding events: keep the highest seq per (stream,
   * model, pk) (sequence numbers of two tables are not comparable) and drop what is not
   * higher. Published events carry no seq but their EventBridge id (`event`, the same
   * across retries): drop an id seen already on that stream. Never the cursor: a retried
   * message is logged again, under another cursor. */
  _fresh(stream, payload, frame) {
    const seq = parseSeq(payload?.seq);
    if (seq !== null && payload?.pk !== undefined && payload?.pk !== null) {
      const key = stableJson([stream, payload.model ?? null, payload.pk]);
      const last = this.seqs.get(key);
      if (last !== undefined && seq <= last) return false;
      this.seqs.set(key, seq);
      return true;
    }
    if (typeof frame?.event !== "string" || !frame.event) return true;
    let seen = this.events.get(stream);
    if (!seen) this.events.set(stream, (seen = new Set()));
    if (seen.has(frame.event)) return false;
    seen.add(frame.event);
    if (seen.size > EVENTS_REMEMBERED) seen.delete(seen.values().next().value); // the oldest
    return true;
  }

  _onClose(socket, event) {
    this.timers.clearTimeout(socket._openTimer);
    if (this.retiring.has(socket)) {
      this.retiring.delete(socket);
      this._abandon(socket);
      return;
    }
    if (socket === this.pendingSocket) {
      // The replacement failed: keep the current socket and try again later.
      this.pendingSocket = null;
      this._abandon(socket);
      this._scheduleProactive(this._retryLater());
      return;
    }
    if (socket !== this.socket) return;
    this.socket = null;
    this._stopHeartbeat();
    this.timers.clearTimeout(this._proactiveTimer);
    this._abandon(socket);
    const replacement = this.pendingSocket;
    if (replacement && this._isOpen(replacement)) {
      // The old socket went first: the replacement takes over now.
      this.pendingSocket = null;
      this._promote(replacement);
      return;
    }
    if (replacement) {
      this.pendingSocket = null;
      this._discard(replacement);
      this._abandon(replacement);
    }
    if (this.closedByUser) return;
    this._emit("disconnected", {code: event?.code, reason: event?.reason});
    if (socket._openedAt !== undefined) {
      this._afterDrop = true;
      this._droppedAt = this.timers.now();
    } else if (!socket._timedOut && !offline()) {
      // Refused (401, 403, 429) or unreachable: a browser cannot tell which. A page that was
      // open is most likely looking at a restart or an outage: it keeps trying a while first.
      this.refusals += 1;
      const recovering = this._droppedAt !== null && this.timers.now() - this._droppedAt < this.refusedAfterMs;
      if (this.refusals >= this.maxRefusals && !recovering) {
        this._setState("refused", {refusals: this.refusals});
        return;
      }
    }
    this._scheduleReconnect();
  }

  /** Requests sent on a lost socket: wanted state waits for the replay (same promise);
   * other requests reject with "disconnected" (the server may or may not have had them). */
  _abandon(socket) {
    for (const request of [...this.pending.values()]) {
      if (request.socket !== socket) continue;
      this.timers.clearTimeout(request.timer);
      this.pending.delete(String(request.id));
      request.socket = null;
      if (request.replacement) {
        request.settled = true;
        request.resolve();
        continue;
      }
      if (request.owner?.get(request.key)?.request === request) continue;
      this._settle(request, new RealtimeError("disconnected", "the connection closed before the answer", request.frame));
    }
  }

  _scheduleReconnect() {
    if (this.closedByUser) return;
    // After a drop, the first attempt is spread over 0-5 s: a gateway restart drops every
    // page at once, and they should not all come back in the same second.
    const delay = this._afterDrop && this.attempt === 0
      ? Math.floor(this.random() * this.firstReconnectMaxMs)
      : backoffDelay(this.attempt, this.random, this.backoffBaseMs, this.backoffMaxMs);
    this._afterDrop = false;
    this.attempt += 1;
    this._setState("reconnecting", {attempt: this.attempt, delay});
    this.timers.clearTimeout(this._reconnectTimer);
    this._reconnectTimer = this.timers.setTimeout(() => {
      this._reconnectTimer = null;
      this._open(false);
    }, delay);
  }

  // ------------------------------------------------------------------ heartbeat

  /** 25 s while presence is held (it expires 60 s after the last frame), else 5 minutes
   * (API Gateway closes a connection idle for 10). */
  _heartbeatInterval() {
    return this.presence.size > 0 ? this.heartbeatMs : this.idleHeartbeatMs;
  }

  _startHeartbeat() {
    this._stopHeartbeat();
    this._heartbeatEveryMs = this._heartbeatInterval();
    this._heartbeatTimer = this.timers.setInterval(() => this._beat(), this._heartbeatEveryMs);
  }

  /** Presence came or went: beat at the other interval from now (the outstanding beat stays). */
  _retuneHeartbeat() {
    if (this._heartbeatTimer === null || this._heartbeatEveryMs === this._heartbeatInterval()) return;
    this.timers.clearInterval(this._heartbeatTimer);
    this._heartbeatEveryMs = this._heartbeatInterval();
    this._heartbeatTimer = this.timers.setInterval(() => this._beat(), this._heartbeatEveryMs);
  }

  _stopHeartbeat() {
    this.timers.clearInterval(this._heartbeatTimer);
    this._heartbeatTimer = null;
    this._heartbeatEveryMs = null;
    if (this._heartbeat && !this._heartbeat.settled) {
      this._heartbeat.settled = true;
      this.timers.clearTimeout(this._heartbeat.timer);
      this.pending.delete(String(this._heartbeat.id));
    }
    this._heartbeat = null;
  }

  _beat() {
    const socket = this.socket;
    if (!this._isOpen(socket)) return;
    if (this._heartbeat && !this._heartbeat.settled) return; // the last one is still out
    const request = this._newRequest({action: "heartbeat"});
    request.promise.catch((error) => {
      // No answer to a heartbeat: the socket is dead even if TCP has not noticed yet.
      if (error.code === "timeout" && socket === this.socket) this._discard(socket, 4001, "heartbeat timeout", true);
    });
    this._heartbeat = request;
    this._sendRequest(socket, request);
  }

  // ------------------------------------------------------------------ proactive reconnect

  _scheduleProactive(delay) {
    this.timers.clearTimeout(this._proactiveTimer);
    if (this.closedByUser) return;
    const wait = delay ?? Math.max(0, this.maxConnectionMs - Math.floor(this.random() * this.maxConnectionJitterMs));
    this._proactiveTimer = this.timers.setTimeout(() => this._renew(), wait);
  }

  _renew() {
    if (this.closedByUser || this.pendingSocket || !this._isOpen(this.socket)) return;
    this._emit("renewing", {age: this.timers.now() - (this.socket._openedAt ?? 0)});
    this._open(true);
  }

  /** The replacement is open: replay everything on it, wait for the answers, then make it the
   * main socket and close the old one. Presence is held by both meanwhile: no flicker. */
  async _replayOnReplacement(socket) {
    const requests = [];
    socket._replayed = {subscriptions: new Set(this.subscriptions.keys()), presence: new Set(this.presence.keys())};
    for (const [owner, done] of [[this.subscriptions, socket._replayed.subscriptions],
                                 [this.presence, socket._replayed.presence]]) {
      for (const [key, entry] of owner) {
        const request = this._newRequest(this._wantedFrame(owner, entry), owner, key, true);
        request.replacement = true;
        this._sendRequest(socket, request);
        requests.push({request, done, key});
      }
    }
    const results = await Promise.allSettled(requests.map(({request}) => request.promise));
    // Not held by the replacement after all (refused, timed out, "not now"): _promote asks
    // again for what is still wanted, and undoes nothing.
    results.forEach((result, i) => result.status === "rejected" && requests[i].done.delete(requests[i].key));
    if (socket !== this.pendingSocket) return; // failed, or the old socket went first
    this.pendingSocket = null;
    const old = this.socket;
    this._promote(socket);
    if (old) this._retire(old);
  }

  /** Make `socket` the main socket, catching up with what changed during the overlap. */
  _promote(socket) {
    this.socket = socket;
    this.attempt = 0;
    this.refusals = 0;
    this.everOpened = true;
    this._droppedAt = null;
    const replayed = socket._replayed ?? {subscriptions: new Set(), presence: new Set()};
    const buffered = new Set(this.buffer.map((item) => item.request).filter(Boolean));
    // Undos still in flight on the old socket go out again here (see _retire).
    const undoing = new Set();
    for (const request of this.pending.values()) {
      const {action, id, ...rest} = request.frame;
      if (request.socket !== socket && action === "leave") undoing.add(presenceKey(rest.document, rest.phase));
      if (request.socket !== socket && action === "unsubscribe") undoing.add(subscriptionKey(rest.stream, rest));
    }
    for (const [owner, done, undo] of [[this.subscriptions, replayed.subscriptions, "unsubscribe"],
                                       [this.presence, replayed.presence, "leave"]]) {
      for (const [key, entry] of owner) {
        const mine = entry.request;
        if (mine && !mine.settled) {
          // Asked for on the old socket during the overlap: ask again here, same id.
          if (!buffered.has(mine) && mine.socket !== socket) this._sendRequest(socket, mine);
        } else if (!done.has(key)) {
          entry.request = this._newRequest(this._wantedFrame(owner, entry), owner, key, true);
          this._sendRequest(socket, entry.request);
        }
      }
      // Dropped during the overlap but replayed here: undo it here too.
      for (const key of done) {
        if (owner.has(key) || undoing.has(key)) continue;
        this._transmit(socket, {action: undo, ...JSON.parse(key)});
      }
    }
    this._setState("open");
    this._flush(socket);
    this._startHeartbeat();
    this._scheduleProactive();
    this._emit("renewed", {});
  }

  /** Retire the old socket. Its idempotent requests in flight go out again on the new one;
   * writes are never sent twice, so the old socket stays open (for their answers only)
   * until they are answered or time out. */
  _retire(old) {
    let waiting = false;
    for (const request of [...this.pending.values()]) {
      if (request.socket !== old) continue;
      if (request.owner || IDEMPOTENT_ACTIONS.has(request.frame.action)) this._sendRequest(this.socket, request);
      else waiting = true;
    }
    if (!waiting) {
      this._discard(old, 1000, "renewed");
      return;
    }
    this.retiring.add(old);
  }

  _finishRetiring(socket) {
    for (const request of this.pending.values()) if (request.socket === socket) return;
    this.retiring.delete(socket);
    this._discard(socket, 1000, "renewed");
  }
}

/** Whether a subscription's replay (a subscribe with `since`) is still unanswered. */
function replaying(entry) {
  return !!entry.request && !entry.request.settled && entry.request.frame.since !== undefined;
}

/** The later of two cursors: the server's cursors compare as strings (docs/protocol.md). */
function laterCursor(a, b) {
  if (typeof b !== "string" || !b) return a;
  if (typeof a !== "string" || !a) return b;
  return b > a ? b : a;
}

/** A server refusal (not a transport failure, not a "not now"). */
function isRefusal(error) {
  return !["timeout", "disconnected", "closed", "cancelled", "dropped", ...TRANSIENT_CODES].includes(error.code);
}

/**
 * Open a protocol v1 connection that reconnects by itself.
 * @param {string} url  `wss://{api}.execute-api.{region}.amazonaws.com/{stage}` (no token in it)
 * @param {ConnectOptions} [options]
 * @returns {RealtimeClient}
 */
export function connect(url, options = {}) {
  return new RealtimeClient(url, options);
}
