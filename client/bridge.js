// A Django Channels (1.x) `WebSocketBridge` look-alike on the serverless-realtime client, so
// page code written for Channels' bridge runs against this backend:
//
//   import {WebSocketBridge} from "./bridge.js";
//   const bridge = new WebSocketBridge({token: getToken});   // options: realtime.js ConnectOptions
//   bridge.connect("wss://abc.execute-api.eu-west-1.amazonaws.com/prod");
//   bridge.listen((payload, stream) => ...);             // frames without a stream (none here)
//   bridge.demultiplex("comments", (payload, stream) => ...);
//   bridge.subscribe("comments", {document: "roadmap"}); // the one added line: Channels joined
//                                                        // groups on the server, this backend
//                                                        // subscribes (kept across reconnects)
//   bridge.stream("comments").send({action: "create", data: {document: "roadmap", body: "Hi"}});
//
// Frames are the demultiplexer's: `stream(name).send(payload)` sends `{"stream": name,
// "payload": payload}`, which the server takes as the flat frame; a server frame
// `{"stream": s, "payload": p}` calls the callback demultiplexed for `s` with `(p, s)`. As
// in Channels, nothing is dispatched before `listen()`, a stream has one callback (the last
// given), and a frame without `stream` goes to the `listen` callback as `(frame, null)`.
// Unlike Channels' bridge (reconnecting-websocket underneath), the connection re-subscribes
// and re-enters after a reconnect, replays missed history, and drops duplicate
// notifications.

import {connect} from "./realtime.js";

/** The bridge's URL rules: none is this page's host, `/path` is relative to it. */
export function bridgeUrl(url, location = globalThis.location) {
  if (url !== undefined && url !== null && !String(url).startsWith("/")) return String(url);
  if (!location?.host) throw new TypeError("a relative WebSocket URL needs a page location");
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.host}${url ?? ""}`;
}

export class WebSocketBridge {
  /** @param {import("./realtime.js").ConnectOptions} [options] */
  constructor(options = {}) {
    this.options = {...options};
    /** @type {import("./realtime.js").RealtimeClient | null} the connection underneath */
    this.client = null;
    /** Callbacks by stream name. */
    this.streams = {};
    this.default_cb = null;
    this._listening = false;
  }

  /**
   * Open the connection. `protocols` is accepted for the bridge's signature and ignored
   * (API Gateway routes on `action`, not on subprotocols); `options` add to the constructor's.
   * @param {string} [url] @param {string | string[]} [protocols] @param {import("./realtime.js").ConnectOptions} [options]
   */
  connect(url, protocols, options = {}) {
    this.client?.close();
    this.client = connect(bridgeUrl(url), {...this.options, ...options});
    this.client.on("message", (frame) => this._dispatch(frame));
  }

  /** Start dispatching; `cb(frame, null)` gets frames that carry no stream. */
  listen(cb) {
    this.default_cb = cb ?? null;
    this._listening = true;
  }

  /** `cb(payload, stream)` gets every payload of that stream (one callback per stream). */
  demultiplex(stream, cb) {
    this.streams[stream] = cb;
  }

  /** Send a frame as it is (a flat frame: `{action, ...}`). */
  send(msg) {
    this._connected().send(msg);
  }

  /** `stream(name).send(payload)` sends the demultiplexer envelope `{stream, payload}`. */
  stream(name) {
    return {send: (payload) => this._connected().send({stream: name, payload})};
  }

  /** Subscribe through the client (kept and replayed across reconnects); resolves on the ack. */
  subscribe(stream, params = {}) {
    return this._connected().subscribe(stream, params);
  }

  close() {
    this.client?.close();
  }

  _connected() {
    if (!this.client) throw new Error("WebSocketBridge: call connect() first");
    return this.client;
  }

  _dispatch(frame) {
    if (!this._listening) return;
    if (frame.stream !== undefined) {
      const callback = this.streams[frame.stream];
      if (callback) callback(frame.payload, frame.stream);
    } else if (this.default_cb) {
      this.default_cb(frame, null);
    }
  }
}
