// The reference application's part of the client: the concurrency monitor's models (the
// document list with presence, one document's presence and fields, its comments), built on
// the generic core in realtime.js. Another application writes its own models the same way.
//
//   import {connect} from "./realtime.js";
//   import {Alerts, DocumentList, DocumentPresence, Comments} from "./monitor.js";

import {RealtimeError} from "./realtime.js";

/** Names a `documents` list entry carries per phase at most (the rest is in `counts`). */
export const LIST_NAMES = 3;
/** Users a `document` roster carries per phase at most (the rest is in `counts`). */
export const ROSTER_LIMIT = 100;
/** A comment's body, in characters (code points), at most. */
export const COMMENT_MAX_CHARS = 2000;

/**
 * @typedef {{user: string, name?: string}} Person
 * @typedef {{document: string, title?: string, phases: Record<string, Person[]>,
 *            counts?: Record<string, number>, data?: Record<string, any>}} DocumentEntry
 * @typedef {{id: string, document: string, author: string, body: string,
 *            created_at?: string | number, version: number, pending?: boolean}} Comment
 */

/**
 * Who is in a phase: the people listed, how many there are (`counts` when the server
 * truncated the list, else the list's length) and how many were left out.
 * @param {DocumentEntry | null | undefined} entry @param {string} phase
 * @returns {{people: Person[], count: number, more: number}}
 */
export function phaseRoster(entry, phase) {
  const people = Array.isArray(entry?.phases?.[phase]) ? entry.phases[phase] : [];
  const counted = entry?.counts?.[phase];
  const count = Number.isSafeInteger(counted) && counted >= people.length ? counted : people.length;
  return {people, count, more: count - people.length};
}

/** Order of the list: by title as people read it, then by slug. */
export function byTitle(a, b) {
  const order = String(a.title || a.document).localeCompare(String(b.title || b.document), undefined,
    {sensitivity: "base", numeric: true});
  if (order) return order;
  return a.document < b.document ? -1 : a.document > b.document ? 1 : 0;
}

function notify(listeners, ...args) {
  for (const callback of [...listeners]) callback(...args);
}

/**
 * The `documents` stream as a list: `full: true` replaces it, `full: false` updates entries
 * (`removed: true` deletes one). Subscribes on `start()`; `onChange(cb)` gets the entries,
 * sorted by title.
 */
export class DocumentList {
  /** @param {import("./realtime.js").RealtimeClient} client */
  constructor(client) {
    this.client = client;
    /** @type {Map<string, DocumentEntry>} */
    this.entries = new Map();
    this.listeners = new Set();
    this._stops = [client.stream("documents").listen((payload) => this.apply(payload))];
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
    notify(this.listeners, this.list(), payload);
  }

  /** @returns {DocumentEntry[]} sorted by title, then slug */
  list() {
    return [...this.entries.values()].sort(byTitle);
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
    for (const stop of this._stops) stop();
    this.listeners.clear();
    return this.client.unsubscribe("documents");
  }
}

/**
 * One document (`document` stream): its presence, and its fields (`data`: from the
 * subscribe snapshot when the server sends them, then from `update` notifications when the
 * app subscribed to `notifications`). `onChange(cb)` gets `{document, title, phases, counts?,
 * data?}`, or `{document, removed: true}` when it is deleted or no longer readable.
 */
export class DocumentPresence {
  /** @param {import("./realtime.js").RealtimeClient} client @param {string} slug */
  constructor(client, slug) {
    this.client = client;
    this.slug = slug;
    /** @type {DocumentEntry | {document: string, removed: true} | null} */
    this.current = null;
    /** The document's whitelisted fields (slug, title, abstract, image), once known. */
    this.data = null;
    this.listeners = new Set();
    this._stops = [
      client.stream("document", {document: slug}).listen((payload) => this.apply(payload)),
      client.stream("notifications").listen((payload) => this._noted(payload)),
    ];
  }

  start() {
    return this.client.subscribe("document", {document: this.slug});
  }

  /** Apply one `document` payload (exposed for tests and custom transports). */
  apply(payload) {
    if (payload?.document !== this.slug || payload.reset) return;
    if (payload.data && typeof payload.data === "object") this.data = {...this.data, ...payload.data};
    this.current = payload.removed ? payload : {...payload, data: this.data ?? undefined};
    notify(this.listeners, this.current);
  }

  _noted(note) {
    if (note?.model !== "document" || note.pk !== this.slug || note.action !== "update" || !note.data) return;
    this.data = {...this.data, ...note.data};
    if (this.current && !this.current.removed) {
      this.current = {...this.current, title: note.data.title ?? this.current.title, data: this.data};
      notify(this.listeners, this.current);
    }
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
    for (const stop of this._stops) stop();
    this.listeners.clear();
    const leaving = this.held().map((phase) => this.client.leave(this.slug, phase).catch(() => {}));
    const unsubscribing = this.current?.removed ? Promise.resolve() :
      this.client.unsubscribe("document", {document: this.slug}).catch(() => {});
    return Promise.all([...leaving, unsubscribing]);
  }
}

/** Why a comment body may not be sent, or null. */
export function commentProblem(body) {
  if (typeof body !== "string" || !body.trim()) return "A comment needs some text.";
  const length = [...body].length;
  if (length > COMMENT_MAX_CHARS) return `A comment is at most ${COMMENT_MAX_CHARS.toLocaleString("en")} characters (this one has ${length.toLocaleString("en")}).`;
  return null;
}

function version(comment) {
  return Number.isSafeInteger(comment?.version) ? comment.version : -1;
}

function byCreation(a, b) {
  // Not yet confirmed by a notification: no created_at, so last.
  if (a.created_at === undefined || b.created_at === undefined) {
    if (a.created_at === b.created_at) return String(a.id) < String(b.id) ? -1 : 1;
    return a.created_at === undefined ? 1 : -1;
  }
  if (a.created_at !== b.created_at) return a.created_at < b.created_at ? -1 : 1;
  return String(a.id) < String(b.id) ? -1 : String(a.id) > String(b.id) ? 1 : 0;
}

/**
 * A document's comments (`comments` stream, model `comment`, pk `{document, id}`): the
 * snapshot (the latest 50, oldest first) then live notifications; `add`, `edit` and
 * `remove` write through the `comments` binding. `onChange(cb)` gets the comments, oldest
 * first.
 *
 * A comment's newer `version` wins over an older one whatever order they arrive in; a
 * deleted comment stays deleted (ids are never reused), even if an older snapshot or a late
 * notification still carries it.
 */
export class Comments {
  /**
   * @param {import("./realtime.js").RealtimeClient} client @param {string} slug
   * @param {{user?: string | null}} [options]  `user`: this page's user id (its comments are its own)
   */
  constructor(client, slug, {user = null} = {}) {
    this.client = client;
    this.slug = slug;
    this.user = user;
    /** @type {Map<string, Comment>} */
    this.byId = new Map();
    this.gone = new Set();
    this.loaded = false;
    this.listeners = new Set();
    this.binding = client.binding("comments");
    // After a reset the client itself subscribes again: the snapshot that follows replaces
    // the list (`full`), so nothing is missing for long.
    this._stops = [client.stream("comments", {document: slug}).listen((payload) => this.apply(payload))];
  }

  /** Subscribe (resolves on the ack, after the snapshot). */
  start() {
    return this.client.subscribe("comments", {document: this.slug});
  }

  /** Load the snapshot again (the client does after a reset; a page may want to as well). */
  reload() {
    return this.client.resubscribe("comments", {document: this.slug}).catch(() => {});
  }

  /** Apply one `comments` payload: a snapshot or a notification (exposed for tests). */
  apply(payload) {
    if (!payload || typeof payload !== "object") return;
    if (Array.isArray(payload.comments)) {
      if (payload.document !== this.slug) return;
      if (payload.full) {
        // Keep what the snapshot cannot know yet: our own writes not yet confirmed.
        for (const [id, comment] of this.byId) if (!comment.pending) this.byId.delete(id);
      }
      for (const comment of payload.comments) this._put(comment);
      this.loaded = true;
    } else if (payload.model === "comment" && payload.pk && typeof payload.pk === "object") {
      if (payload.pk.document !== this.slug) return;
      if (payload.action === "delete") this._forget(String(payload.pk.id));
      else if (payload.action === "create" || payload.action === "update") this._put({...payload.data, id: payload.data?.id ?? payload.pk.id});
      else return;
    } else {
      return;
    }
    notify(this.listeners, this.list(), payload);
  }

  _put(comment) {
    if (!comment || typeof comment !== "object" || comment.id === undefined || comment.id === null) return;
    if (comment.document !== undefined && comment.document !== this.slug) return;
    const id = String(comment.id);
    if (this.gone.has(id)) return;
    const old = this.byId.get(id);
    if (old && version(old) > version(comment)) return;
    const merged = {...old, ...comment, id, document: this.slug};
    delete merged.pending;
    this.byId.set(id, merged);
  }

  _forget(id) {
    this.gone.add(id);
    this.byId.delete(id);
  }

  /** @returns {Comment[]} oldest first */
  list() {
    return [...this.byId.values()].sort(byCreation);
  }

  get(id) {
    return this.byId.get(String(id));
  }

  /** Whether this page's user wrote it (only they get edit and delete buttons). */
  mine(comment) {
    return this.user !== null && this.user !== undefined && comment?.author === this.user;
  }

  /** Add a comment; resolves with the ack ({pk, version}). */
  async add(body) {
    const problem = commentProblem(body);
    if (problem) throw new RealtimeError("bad_request", problem);
    const ack = await this.binding.create({document: this.slug, body});
    const id = ack?.pk?.id;
    if (id !== undefined && id !== null && !this.byId.has(String(id)) && !this.gone.has(String(id))) {
      // Shown at once; the notification that follows fills in the rest (created_at).
      this.byId.set(String(id), {id: String(id), document: this.slug, author: this.user, body,
                                 version: Number.isSafeInteger(ack.version) ? ack.version : 1, pending: true});
      notify(this.listeners, this.list(), null);
    }
    return ack;
  }

  /**
   * Change a comment's body; rejects `conflict` if it changed since `version` (by default
   * the version shown now). An editor passes the version the user started from, so a change
   * made meanwhile (another tab, another service) is not overwritten unseen.
   * @param {string} id @param {string} body @param {{version?: number}} [options]
   */
  async edit(id, body, {version: from} = {}) {
    const comment = this.get(id);
    if (!comment) throw new RealtimeError("not_found", "that comment is gone");
    const problem = commentProblem(body);
    if (problem) throw new RealtimeError("bad_request", problem);
    const base = Number.isSafeInteger(from) ? from : comment.version;
    const ack = await this.binding.update({document: this.slug, id: comment.id}, {body}, base);
    const now = this.get(id);
    if (now && Number.isSafeInteger(ack?.version) && version(now) < ack.version) {
      this.byId.set(now.id, {...now, body, version: ack.version});
      notify(this.listeners, this.list(), null);
    }
    return ack;
  }

  /** Delete a comment, at the version shown; rejects `conflict` if it changed since. */
  async remove(id) {
    const comment = this.get(id);
    if (!comment) throw new RealtimeError("not_found", "that comment is gone");
    const ack = await this.binding.delete({document: this.slug, id: comment.id}, comment.version);
    if (this.byId.has(comment.id)) {
      this._forget(comment.id);
      notify(this.listeners, this.list(), null);
    }
    return ack;
  }

  /** @param {(comments: Comment[], payload: object | null) => void} callback */
  onChange(callback) {
    this.listeners.add(callback);
    return () => this.listeners.delete(callback);
  }

  stop() {
    for (const stop of this._stops) stop();
    this.listeners.clear();
    return this.client.unsubscribe("comments", {document: this.slug}).catch(() => {});
  }
}

/**
 * The `alerts` stream (signed-in users): what other AWS services publish to this user, to
 * this connection or to every subscriber (`realtime.publish` events), payloads as
 * published. No snapshot. The core replays what a dropped page missed (from the subscribe
 * ack's cursor when nothing came before the drop) and drops a second copy of an event (its
 * `event` id). `onAlert(cb)` gets `(payload, frame)`; `onMissed(cb)` is called when the
 * server could not replay what was missed (a reset: past its limit or retention).
 */
export class Alerts {
  /** @param {import("./realtime.js").RealtimeClient} client */
  constructor(client) {
    this.client = client;
    this.listeners = new Set();
    this.missed = new Set();
    this._stops = [client.stream("alerts").listen((payload, frame) => {
      if (!payload || typeof payload !== "object" || Array.isArray(payload)) return;
      if (payload.reset === true) notify(this.missed);
      else notify(this.listeners, payload, frame);
    })];
  }

  /** Subscribe (signed-in connections only: anonymous ones are answered `unauthenticated`). */
  start() {
    return this.client.subscribe("alerts");
  }

  /** @param {(payload: Record<string, any>, frame: object) => void} callback */
  onAlert(callback) {
    this.listeners.add(callback);
    return () => this.listeners.delete(callback);
  }

  /** @param {() => void} callback */
  onMissed(callback) {
    this.missed.add(callback);
    return () => this.missed.delete(callback);
  }

  stop() {
    for (const stop of this._stops) stop();
    this.listeners.clear();
    this.missed.clear();
    return this.client.unsubscribe("alerts").catch(() => {});
  }
}
