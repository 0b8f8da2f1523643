// Test doubles for client/realtime.js: a fake WebSocket (the test plays the server) and a
// fake clock (timers run when the test advances time). No dependencies.

export class FakeClock {
  constructor() {
    this.time = 0;
    this.tasks = new Set();
    this.setTimeout = (fn, ms) => this._add(fn, ms, null);
    this.setInterval = (fn, ms) => this._add(fn, ms, ms);
    this.clearTimeout = (task) => this.tasks.delete(task);
    this.clearInterval = (task) => this.tasks.delete(task);
    this.now = () => this.time;
  }

  _add(fn, ms, every) {
    const task = {fn, at: this.time + Math.max(0, Number(ms) || 0), every};
    this.tasks.add(task);
    return task;
  }

  /** Run every timer due in the next `ms` milliseconds, in order, letting promises settle. */
  async advance(ms) {
    const end = this.time + ms;
    await settle();
    for (;;) {
      let next = null;
      for (const task of this.tasks) if (task.at <= end && (!next || task.at < next.at)) next = task;
      if (!next) break;
      this.time = next.at;
      if (next.every) next.at += Math.max(1, next.every);
      else this.tasks.delete(next);
      next.fn();
      await settle();
    }
    this.time = end;
    await settle();
  }
}

/** Let pending promise callbacks (and the client's async steps) run. */
export async function settle() {
  for (let i = 0; i < 5; i += 1) await new Promise((resolve) => setImmediate(resolve));
}

/** A WebSocket class recording every instance in `sockets`. The fake server answers
 * heartbeats by itself unless `ackHeartbeats` is false. */
export function fakeWebSocket({ackHeartbeats = true} = {}) {
  const sockets = [];
  class FakeWebSocket {
    static CONNECTING = 0;
    static OPEN = 1;
    static CLOSING = 2;
    static CLOSED = 3;

    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.sent = [];
      this.closedWith = null;
      this.onopen = this.onmessage = this.onerror = this.onclose = null;
      sockets.push(this);
    }

    send(data) {
      if (this.readyState !== 1) throw new Error("InvalidStateError: not open");
      const frame = JSON.parse(data);
      this.sent.push(frame);
      if (ackHeartbeats && frame.action === "heartbeat" && frame.id !== undefined) {
        queueMicrotask(() => this.readyState === 1 && this.ack(frame.id));
      }
    }

    close(code = 1005, reason = "") {
      if (this.readyState >= 2) return;
      this.closedWith = {code, reason};
      this.readyState = 3;
      queueMicrotask(() => this.onclose?.({code, reason, wasClean: true}));
    }

    // ---- the test plays the server

    accept() {
      this.readyState = 1;
      this.onopen?.({});
    }

    refuse() {
      this.readyState = 3;
      this.onerror?.({});
      this.onclose?.({code: 1006, reason: "", wasClean: false});
    }

    drop(code = 1001) {
      this.readyState = 3;
      this.onclose?.({code, reason: "Going away", wasClean: code !== 1006});
    }

    /** A server frame; `extra` adds fields beside the payload (e.g. {cursor}). */
    push(stream, payload, extra = {}) {
      this.onmessage?.({data: JSON.stringify({stream, payload, ...extra})});
    }

    /** Any text the server sends, as it is. */
    pushRaw(data) {
      this.onmessage?.({data});
    }

    ack(id, extra = {}) {
      this.push("ack", {id, ...extra});
    }

    error(id, code, message) {
      this.push("error", {id, code, message});
    }

    /** Frames sent with that action. */
    frames(action) {
      return this.sent.filter((frame) => frame.action === action);
    }

    last(action) {
      const frames = action ? this.frames(action) : this.sent;
      return frames[frames.length - 1];
    }

    /** Answer every frame sent so far that carries an id and has no answer yet. */
    ackAll() {
      this.acked ??= new Set();
      for (const frame of this.sent) {
        if (frame.id === undefined || this.acked.has(frame.id)) continue;
        this.acked.add(frame.id);
        this.ack(frame.id);
      }
    }
  }
  return {FakeWebSocket, sockets};
}
