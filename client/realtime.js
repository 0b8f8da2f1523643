// serverless-realtime browser client: protocol v1 (docs/protocol.md).
//
// A dependency-free ES module: `<script type="module">import {connect} from "./realtime.js"`.
//
//   const client = connect("wss://abc.execute-api.eu-west-1.amazonaws.com/prod", {token: getToken});
//   client.on("state", (state) => ...);            // connecting | open | reconnecting | closed
//   client.stream("users").listen(({users}) => ...);
//   await client.subscribe("users");                // resolves on the server's ack
//   await client.enter("roadmap", "edit");           // rejects with an Error carrying .code
//
// What it does for the page:
// - reconnects with exponential backoff and full jitter (capped at 30 s), then re-subscribes
//   every stream and re-enters every presence it held;
// - reconnects proactively before API Gateway's 2-hour limit, opening the new socket (and
//   replaying subscriptions and presence on it) before closing the old one;
// - sends a heartbeat every 25 s, and treats a heartbeat left unanswered as a dead socket;
// - buffers sends made while offline (bounded; the oldest is dropped first and reported with a
//   "drop" event) and flushes them on reconnect;
// - drops notifications whose `seq` is not higher than the highest seen for their `pk`.

/** Protocol version this module speaks. */
export const PROTOCOL_VERSION = 1;

const OPEN = 1; // WebSocket.OPEN

/**
 * @typedef {"connecting" | "open" | "reconnecting" | "closed"} ConnectionState
 *
 * @typedef {object} Timers
 * @property {(fn: () => void, ms: number) => any} setTimeout
 * @property {(handle: any) => void} clearTimeout
 * @property {(fn: () => void, ms: number) => any} setInterval
 * @property {(handle: any) => void} clearInterval
 * @property {() => number} now  milliseconds
 *
 * @typedef {object} ConnectOptions
 * @property {string | null | (() => string | null | undefined | Promise<string | null | undefined>)} [token]
 *   A JWT, or a function returning one (called before every connection attempt, so it can
 *   fetch a fresh short-lived token). No token: an anonymous connection.
 * @property {new (url: string) => WebSocket} [WebSocket]  constructor (tests inject a fake)
 * @property {Partial<Timers>} [timers]  timer functions (tests inject a fake clock)
 * @property {() => number} [random]  uniform in [0, 1) (tests make jitter deterministic)
 * @property {number} [heartbeatMs=25000]  interval of heartbeats on an open socket
 * @property {number} [backoffBaseMs=1000]  first reconnect delay ceiling
 * @property {number} [backoffMaxMs=30000]  cap of the reconnect delay ceiling
 * @property {number} [maxConnectionMs=6900000]  age at which to reconnect proactively
 *   (API Gateway closes connections at 2 h; default 1 h 55 min, minus up to `maxConnectionJitterMs`)
 * @property {number} [maxConnectionJitterMs=300000]  spreads proactive reconnects of many pages
 * @property {number} [ackTimeoutMs=10000]  a request not answered in this time rejects ("timeout")
 * @property {number} [openTimeoutMs=10000]  a socket not open in this time is abandoned
 * @property {number} [bufferSize=100]  offline sends kept at most (oldest dropped first)
 * @property {boolean} [dedupe=true]  drop notifications whose seq is not higher than the last for their pk
 * @property {boolean} [reconnectWhenOnline=true]  in a browser, skip the backoff wait on the window's "online" event
 *
 * @typedef {{stream: string, document?: string, [key: string]: any}} StreamParams
 *
 * @typedef {object} DropEvent
 * @property {object} frame  the frame that was dropped
 * @property {string} reason  "buffer_full"
 *
 * @typedef {object} ReconnectingEvent
 * @property {number} attempt  1 for the first retry
 * @property {number} delay  milliseconds until the attempt
 */

/** An error answered by the server (`code` from the `error` frame), or raised by the client
 * (`timeout`, `dropped`, `cancelled`, `closed`, `disconnected`). */
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

/** Parse a decimal `seq` as a BigInt (null when it is not one). */
function parseSeq(seq) {
  if (typeof seq === "number" && Number.isSafeInteger(seq)) return BigInt(seq);
  if (typeof seq !== "string" || !/^\d+$/.test(seq)) return null;
  return BigInt(seq);
}

/** Keys of wanted state (JSON: no separator can collide with a slug). */
function subscriptionKey(params) {
  return JSON.stringify(params.stream === "document" ? [params.stream, String(params.document)] : [params.stream]);
}

function unsubscriptionKey(key) {
  const [stream, document] = JSON.parse(key);
  return document === undefined ? {stream} : {stream, document};
}

function presenceKey(document, phase) {
  return JSON.stringify([String(document), String(phase)]);
}

function unpresenceKey(key) {
  const [document, phase] = JSON.parse(key);
  return {document, phase};
}

function withToken(url, token) {
  if (!token) return url;
  return `${url}${url.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}`;
}

/** One logical stream of the connection: `listen(cb)` gets every payload of that stream. */
export class Stream {
  /** @param {RealtimeClient} client @param {string} name */
  constructor(client, name) {
    this.client = client;
    this.name = name;
    /** @type {Set<(payload: any) => void>} */
    this.listeners = new Set();
  }

  /** @param {(payload: any) => void} callback @returns {() => void} stops listening */
  listen(callback) {
    this.listeners.add(callback);
    return () => this.listeners.delete(callback);
  }

  /** Subscribe to this stream (`{document}` for the `document` stream). */
  subscribe(params = {}) {
    return this.client.subscribe(this.name, params);
  }

  unsubscribe(params = {}) {
    return this.client.unsubscribe(this.name, params);
  }

  _dispatch(payload) {
    for (const callback of [...this.listeners]) {
      try {
        callback(payload);
      } catch (error) {
        this.client._report(error);
      }
    }
  }
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
    this.backoffBaseMs = options.backoffBaseMs ?? 1000;
    this.backoffMaxMs = options.backoffMaxMs ?? 30000;
    this.maxConnectionMs = options.maxConnectionMs ?? (2 * 60 - 5) * 60 * 1000;
    this.maxConnectionJitterMs = options.maxConnectionJitterMs ?? 5 * 60 * 1000;
    this.ackTimeoutMs = options.ackTimeoutMs ?? 10000;
    this.openTimeoutMs = options.openTimeoutMs ?? 10000;
    this.bufferSize = Math.max(1, options.bufferSize ?? 100);
    this.dedupe = options.dedupe ?? true;

    /** @type {ConnectionState} */
    this.state = "connecting";
    /** @type {any} the socket frames go out on (null while there is none) */
    this.socket = null;
    /** @type {any} a proactive replacement, while it opens and replays */
    this.pendingSocket = null;
    this.attempt = 0;
    this.everOpened = false;
    this.closedByUser = false;
    this.opening = false;
    this.nextId = 1;
    /** @type {Map<string, Stream>} */
    this.streams = new Map();
    /** @type {Map<string, Set<Function>>} */
    this.handlers = new Map();
    /** Subscriptions the page wants: key -> {params, request?}. */
    this.subscriptions = new Map();
    /** Presence the page holds: key -> {params: {document, phase}, request?}. */
    this.presence = new Map();
    /** Requests awaiting their ack or error, by id. */
    this.pending = new Map();
    /** Frames sent while offline, oldest first: {frame, request?}. */
    this.buffer = [];
    /** Highest notification seq per pk. @type {Map<string, bigint>} */
    this.seqs = new Map();
    this._reconnectTimer = null;
    this._heartbeatTimer = null;
    this._proactiveTimer = null;
    this._heartbeat = null;
    this._online = null;
    if (options.reconnectWhenOnline ?? true) {
      const target = globalThis.window;
      if (target && typeof target.addEventListener === "function") {
        this._online = () => this.reconnect();
        target.addEventListener("online", this._online);
      }
    }
    this._open(false);
  }

  // ------------------------------------------------------------------ events

  /**
   * Listen to client events:
   * - "state": the new ConnectionState (also emitted under its own name: "connecting",
   *   "open", "reconnecting" with a ReconnectingEvent, "closed");
   * - "drop": a DropEvent, a buffered send dropped because the buffer was full;
   * - "error": an error frame no request was waiting for, or a RealtimeError of a replayed
   *   subscription or presence (e.g. the document became private): the client forgot it;
   * - "disconnected" ({code, reason}), "renewing" / "renewed" (proactive reconnect);
   * - "frame": every server frame, as parsed.
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

  /** The stream of that name: its listeners get every payload on it. @param {string} name */
  stream(name) {
    let stream = this.streams.get(name);
    if (!stream) {
      stream = new Stream(this, name);
      this.streams.set(name, stream);
    }
    return stream;
  }

  /**
   * Subscribe to a stream; resolves with the ack once the server confirmed it (its snapshot
   * has reached the listeners by then), rejects with a RealtimeError (`.code`: the error
   * frame's code, or `timeout`, `dropped`, `cancelled`, `closed`). Kept across reconnects
   * until `unsubscribe`.
   * @param {string} stream  users | documents | document | notifications
   * @param {{document?: string, [key: string]: any}} [params]
   */
  subscribe(stream, params = {}) {
    const wanted = {stream, ...params};
    return this._want(this.subscriptions, subscriptionKey(wanted), wanted, {action: "subscribe", ...wanted});
  }

  /** Stop receiving a stream. @param {string} stream @param {{document?: string}} [params] */
  unsubscribe(stream, params = {}) {
    const wanted = {stream, ...params};
    return this._unwant(this.subscriptions, subscriptionKey(wanted), {action: "unsubscribe", ...wanted});
  }

  /** Join a phase of a document (signed-in users only); held across reconnects until `leave`.
   * @param {string} document @param {string} phase */
  enter(document, phase) {
    const params = {document, phase};
    return this._want(this.presence, presenceKey(document, phase), params, {action: "enter", ...params});
  }

  /** Leave a phase. @param {string} document @param {string} phase */
  leave(document, phase) {
    return this._unwant(this.presence, presenceKey(document, phase), {action: "leave", document, phase});
  }

  /** The phases held, as [{document, phase}]. */
  held() {
    return [...this.presence.values()].map(({params}) => ({...params}));
  }

  /** The subscriptions kept, as [{stream, document?}]. */
  subscribed() {
    return [...this.subscriptions.values()].map(({params}) => ({...params}));
  }

  /**
   * Send any frame with an `id`: resolves on its ack, rejects with a RealtimeError on its
   * error frame. Buffered while offline. @param {object} frame
   */
  request(frame) {
    return this._request({...frame}).promise;
  }

  /** Send a frame, no answer awaited (buffered while offline). @param {object} frame */
  send(frame) {
    if (this.closedByUser) return false;
    if (this._isOpen(this.socket)) return this._transmit(this.socket, frame);
    this._buffer({frame});
    return false;
  }

  /** Reconnect now: skips the backoff wait when offline, renews the socket when open. */
  reconnect() {
    if (this.closedByUser) return;
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

  /** Close for good: no reconnect; unsettled requests reject with code "closed". */
  close(code = 1000, reason = "") {
    if (this.closedByUser) return;
    this.closedByUser = true;
    if (this._online) globalThis.window?.removeEventListener?.("online", this._online);
    this.timers.clearTimeout(this._reconnectTimer);
    this.timers.clearTimeout(this._proactiveTimer);
    this._stopHeartbeat();
    for (const socket of [this.socket, this.pendingSocket]) if (socket) this._discard(socket, code, reason);
    this.socket = null;
    this.pendingSocket = null;
    const closed = (r) => new RealtimeError("closed", "the client was closed", r.frame);
    for (const request of [...this.pending.values()]) this._settle(request, closed(request));
    for (const {request} of this.buffer.splice(0)) if (request) this._settle(request, closed(request));
    for (const owner of [this.subscriptions, this.presence]) {
      for (const entry of owner.values()) if (entry.request) this._settle(entry.request, closed(entry.request));
    }
    this._setState("closed");
  }

  // ------------------------------------------------------------------ requests

  /** Record wanted state and ask the server for it. */
  _want(owner, key, params, frame) {
    const entry = owner.get(key);
    if (entry?.request && !entry.request.settled) return entry.request.promise; // already on its way
    const fresh = {params, request: null};
    owner.set(key, fresh);
    fresh.request = this._request(frame, {owner, key});
    return fresh.request.promise;
  }

  /** Forget wanted state; tell the server only if a live socket holds it. */
  _unwant(owner, key, frame) {
    const entry = owner.get(key);
    owner.delete(key);
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

  /**
   * A request: {id, frame, owner?, key?, silent?, socket, timer, settled, promise}.
   * Sent now when open, else buffered.
   */
  _request(frame, {owner = null, key = null} = {}) {
    const request = this._newRequest(frame, owner, key);
    if (this.closedByUser) this._settle(request, new RealtimeError("closed", "the client was closed", request.frame));
    else if (this._isOpen(this.socket)) this._sendRequest(this.socket, request);
    else this._buffer({frame: request.frame, request});
    return request;
  }

  _newRequest(frame, owner = null, key = null, silent = false) {
    const id = this.nextId++;
    const request = {id, frame: {...frame, id}, owner, key, silent, socket: null, timer: null, settled: false,
                     resolve: null, reject: null, promise: null};
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
      if (entry.request === request) entry.request = null;
      // The page's own request failed: it is not wanted any more. A replay (nobody's
      // promise) is forgotten only when the server refused it; otherwise the next socket
      // tries again.
      if (error && (!request.silent || isRefusal(error))) request.owner.delete(request.key);
    }
    if (error) {
      request.reject(error);
      if (request.silent && error.code !== "closed") this._emit("error", error);
    } else {
      request.resolve(ack ?? {id: request.id});
    }
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
      if (proactive) this._scheduleProactive(this._retryLater());
      else this._scheduleReconnect();
      return;
    }
    if (proactive) this.pendingSocket = socket;
    else this.socket = socket;
    socket._openTimer = this.timers.setTimeout(() => {
      if (socket.readyState !== OPEN) this._discard(socket, 4000, "open timeout", true);
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
    this.everOpened = true;
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
    for (const [owner, action] of [[this.subscriptions, "subscribe"], [this.presence, "enter"]]) {
      for (const [key, entry] of owner) {
        const mine = entry.request;
        if (mine && !mine.settled) {
          if (buffered.has(mine) || mine.socket === socket) continue;
          this._sendRequest(socket, mine); // sent on a lost socket, never answered: same id, same promise
          continue;
        }
        entry.request = this._newRequest({action, ...entry.params}, owner, key, true);
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
    if (socket !== this.socket && socket !== this.pendingSocket) return;
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
      return;
    }
    if (stream === "error") {
      const request = payload?.id !== undefined && payload?.id !== null ? this.pending.get(String(payload.id)) : undefined;
      if (request) this._settle(request, new RealtimeError(payload.code ?? "error", payload.message ?? "", request.frame));
      else this._emit("error", payload);
      if (payload?.code === "unauthenticated" && /not registered/.test(payload?.message ?? "") && socket === this.socket) {
        this._discard(socket, 4002, "not registered", true); // the server forgot this socket
      }
      return;
    }
    if (typeof stream !== "string") return;
    if (stream === "notifications" && this.dedupe && !this._fresh(payload)) return;
    if (stream === "document" && payload?.removed) {
      // The server ended that subscription.
      const key = subscriptionKey({stream, document: payload.document});
      const entry = this.subscriptions.get(key);
      if (entry && !(entry.request && !entry.request.settled)) this.subscriptions.delete(key);
    }
    this.streams.get(stream)?._dispatch(payload);
  }

  /** Keep the highest seq per pk; false for a notification seen already (or overtaken). */
  _fresh(payload) {
    const seq = parseSeq(payload?.seq);
    if (seq === null || payload?.pk === undefined || payload?.pk === null) return true;
    const pk = String(payload.pk);
    const last = this.seqs.get(pk);
    if (last !== undefined && seq <= last) return false;
    this.seqs.set(pk, seq);
    return true;
  }

  _onClose(socket, event) {
    this.timers.clearTimeout(socket._openTimer);
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
    const delay = backoffDelay(this.attempt, this.random, this.backoffBaseMs, this.backoffMaxMs);
    this.attempt += 1;
    this._setState("reconnecting", {attempt: this.attempt, delay});
    this.timers.clearTimeout(this._reconnectTimer);
    this._reconnectTimer = this.timers.setTimeout(() => {
      this._reconnectTimer = null;
      this._open(false);
    }, delay);
  }

  // ------------------------------------------------------------------ heartbeat

  _startHeartbeat() {
    this._stopHeartbeat();
    this._heartbeatTimer = this.timers.setInterval(() => this._beat(), this.heartbeatMs);
  }

  _stopHeartbeat() {
    this.timers.clearInterval(this._heartbeatTimer);
    this._heartbeatTimer = null;
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
    for (const [owner, action] of [[this.subscriptions, "subscribe"], [this.presence, "enter"]]) {
      for (const [key, entry] of owner) {
        const request = this._newRequest({action, ...entry.params}, owner, key, true);
        request.replacement = true;
        this._sendRequest(socket, request);
        requests.push(request);
      }
    }
    await Promise.allSettled(requests.map((r) => r.promise));
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
    this.everOpened = true;
    const replayed = socket._replayed ?? {subscriptions: new Set(), presence: new Set()};
    const buffered = new Set(this.buffer.map((item) => item.request).filter(Boolean));
    // Undos still in flight on the old socket go out again here (see _retire).
    const undoing = new Set();
    for (const request of this.pending.values()) {
      const {action, id, ...rest} = request.frame;
      if (request.socket !== socket && action === "leave") undoing.add(presenceKey(rest.document, rest.phase));
      if (request.socket !== socket && action === "unsubscribe") undoing.add(subscriptionKey(rest));
    }
    for (const [owner, action, done] of [[this.subscriptions, "subscribe", replayed.subscriptions],
                                         [this.presence, "enter", replayed.presence]]) {
      for (const [key, entry] of owner) {
        const mine = entry.request;
        if (mine && !mine.settled) {
          // Asked for on the old socket during the overlap: ask again here, same id.
          if (!buffered.has(mine) && mine.socket !== socket) this._sendRequest(socket, mine);
        } else if (!done.has(key)) {
          entry.request = this._newRequest({action, ...entry.params}, owner, key, true);
          this._sendRequest(socket, entry.request);
        }
      }
      // Dropped during the overlap but replayed here: undo it here too.
      for (const key of done) {
        if (owner.has(key) || undoing.has(key)) continue;
        const frame = action === "enter" ? {action: "leave", ...unpresenceKey(key)}
          : {action: "unsubscribe", ...unsubscriptionKey(key)};
        this._transmit(socket, frame);
      }
    }
    this._setState("open");
    this._flush(socket);
    this._startHeartbeat();
    this._scheduleProactive();
    this._emit("renewed", {});
  }

  /** Close the old socket; its requests still in flight go out again on the new one. */
  _retire(old) {
    this._discard(old, 1000, "renewed");
    for (const request of [...this.pending.values()]) {
      if (request.socket === old) this._sendRequest(this.socket, request);
    }
  }
}

/** A server refusal (not a transport failure). */
function isRefusal(error) {
  return !["timeout", "disconnected", "closed", "cancelled", "dropped"].includes(error.code);
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

// ---------------------------------------------------------------------- models

/**
 * @typedef {{user: string, name?: string}} Person
 * @typedef {{document: string, title?: string, phases: Record<string, Person[]>}} DocumentEntry
 */

/**
 * The `documents` stream as a list: `full: true` replaces it, `full: false` updates entries
 * (`removed: true` deletes one). Subscribes on `start()`; `onChange(cb)` gets the entries.
 */
export class DocumentList {
  /** @param {RealtimeClient} client */
  constructor(client) {
    this.client = client;
    /** @type {Map<string, DocumentEntry>} */
    this.entries = new Map();
    this.listeners = new Set();
    this._stop = client.stream("documents").listen((payload) => this.apply(payload));
  }

  /** Subscribe (resolves on the ack, after the snapshot). */
  start() {
    return this.client.subscribe("documents");
  }

  /** Apply one `documents` payload (exposed for tests and custom transports). */
  apply(payload) {
    if (!payload || !Array.isArray(payload.documents)) return;
    if (payload.full) this.entries.clear();
    for (const entry of payload.documents) {
      if (!entry || typeof entry.document !== "string") continue;
      if (entry.removed) this.entries.delete(entry.document);
      else this.entries.set(entry.document, {...this.entries.get(entry.document), ...entry});
    }
    const list = this.list();
    for (const callback of [...this.listeners]) callback(list, payload);
  }

  /** @returns {DocumentEntry[]} in the server's order, later additions last */
  list() {
    return [...this.entries.values()];
  }

  get(slug) {
    return this.entries.get(slug);
  }

  /** @param {(entries: DocumentEntry[], payload: object) => void} callback */
  onChange(callback) {
    this.listeners.add(callback);
    return () => this.listeners.delete(callback);
  }

  stop() {
    this._stop();
    this.listeners.clear();
    return this.client.unsubscribe("documents");
  }
}

/**
 * One document's presence (`document` stream): `onChange(cb)` gets `{document, title,
 * phases}`, or `{document, removed: true}` when it is deleted or no longer readable.
 */
export class DocumentPresence {
  /** @param {RealtimeClient} client @param {string} slug */
  constructor(client, slug) {
    this.client = client;
    this.slug = slug;
    /** @type {DocumentEntry | {document: string, removed: true} | null} */
    this.current = null;
    this.listeners = new Set();
    this._stop = client.stream("document").listen((payload) => {
      if (payload?.document !== slug) return;
      this.current = payload;
      for (const callback of [...this.listeners]) callback(payload);
    });
  }

  start() {
    return this.client.subscribe("document", {document: this.slug});
  }

  enter(phase) {
    return this.client.enter(this.slug, phase);
  }

  leave(phase) {
    return this.client.leave(this.slug, phase);
  }

  /** Phases this client holds on the document. */
  held() {
    return this.client.held().filter((p) => p.document === this.slug).map((p) => p.phase);
  }

  onChange(callback) {
    this.listeners.add(callback);
    return () => this.listeners.delete(callback);
  }

  /** Unsubscribe and leave every phase held here. */
  stop() {
    this._stop();
    this.listeners.clear();
    const leaving = this.held().map((phase) => this.client.leave(this.slug, phase).catch(() => {}));
    const unsubscribing = this.current?.removed ? Promise.resolve() :
      this.client.unsubscribe("document", {document: this.slug}).catch(() => {});
    return Promise.all([...leaving, unsubscribing]);
  }
}
