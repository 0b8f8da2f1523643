// The demo application, the seed's concurrency monitor: the live user counter, the document
// list with presence badges, a document page (opening it counts you as viewing it) with its
// phases and comments, notifications and alerts. Protocol work is in realtime.js, the models
// in monitor.js.
//
// Sign-in (development only): `?user=<id>&name=<display name>` in the URL; none: anonymous.
// The local stack answers `GET /dev/config` (where the WebSocket is) and `GET /dev/token`.
// `?ws=<url>` overrides the endpoint, for this page's host or loopback only (the token goes
// there). The "another AWS service" forms write with `POST /dev/documents` and `DELETE
// /dev/documents/<slug>`, and publish an alert with `POST /dev/alerts`, on the same server.
//
// The page runs under a Content-Security-Policy allowing only its own scripts and styles:
// no inline scripts, handlers or style attributes here or in index.html.

import {connect} from "./realtime.js";
import {Alerts, Comments, commentProblem, COMMENT_MAX_CHARS, DocumentList, DocumentPresence, phaseRoster} from "./monitor.js";
import {alertResult, alertText, commentTime, imageUrl, moreText, personParts, STATE_HINTS, websocketOverride} from "./demo-helpers.js";

const $ = (selector, root = document) => root.querySelector(selector);

/** Create an element: h("p", {class: "x", onclick: fn}, "text", child). */
function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) element.append(child);
  }
  return element;
}

/** Replace an element's children, skipping the ones left out (null, undefined, false). */
function fill(element, ...children) {
  element.replaceChildren(...children.flat().filter((child) => child !== null && child !== undefined && child !== false));
}

const params = new URLSearchParams(location.search);
const user = (params.get("user") || "").trim();
const me = user ? {user, name: (params.get("name") || "").trim() || user} : null;

/** Settings a page embedding the demo (or a test) may set before demo.js runs. */
const settings = {toastMs: 8000, maxToasts: 3, ...(window.DEMO_SETTINGS ?? {})};

/** Known document fields (from notifications) by slug: the list only carries titles. */
const known = new Map();

async function loadConfig() {
  const fallback = {phases: ["view", "edit", "review"]};
  let config;
  if (window.REALTIME_CONFIG?.websocket) {
    config = {...fallback, ...window.REALTIME_CONFIG};
  } else {
    const response = await fetch("/dev/config", {cache: "no-store"});
    if (!response.ok) throw new Error(`GET /dev/config: ${response.status}`);
    config = {...fallback, ...(await response.json())};
  }
  if (params.get("ws")) {
    const override = websocketOverride(params.get("ws"), location);
    if ("url" in override) config.websocket = override.url;
    else notice(override.reason, "warning", "ws-ignored");
  }
  return config;
}

/** A fresh development token before every connection attempt (they expire). */
async function devToken() {
  const query = new URLSearchParams({user: me.user, name: me.name});
  const response = await fetch(`/dev/token?${query}`, {cache: "no-store"});
  if (!response.ok) throw new Error(`GET /dev/token: ${response.status}`);
  return (await response.json()).token;
}

function notice(text, kind = "info", testid = null) {
  const element = $("#notice");
  element.hidden = !text;
  element.textContent = text || "";
  element.dataset.kind = kind;
  if (testid) element.dataset.testid = testid;
  else delete element.dataset.testid;
}

/** A person: the display name (isolated, so bidi characters cannot reorder what follows)
 * and the user id beside it. */
function person(who) {
  const {name, user: id} = personParts(who);
  if (!name) return h("span", {class: "person"}, h("bdi", {class: "uid"}, id));
  return h("span", {class: "person"}, h("bdi", {class: "name"}, name), " ", h("span", {class: "uid"}, "(", h("bdi", {}, id), ")"));
}

/** "Alice (alice), Bob (bob) and 54 more", or `empty`. */
function roster(entry, phase, empty) {
  const {people, count, more} = phaseRoster(entry, phase);
  if (!count) return [empty];
  const parts = [];
  people.forEach((who, i) => {
    if (i) parts.push(", ");
    parts.push(person(who));
  });
  if (more) parts.push(h("span", {class: "more", "data-testid": `more-${phase}`}, `${people.length ? " " : ""}${moreText(more)}`));
  return parts;
}

// ---------------------------------------------------------------------- account

function renderAccount() {
  const account = $("#account");
  account.replaceChildren();
  if (me) {
    account.append(
      h("span", {"data-testid": "signed-in-as"}, "Signed in as ", h("strong", {}, h("bdi", {}, me.name)), ` (${me.user})`),
      " ",
      h("a", {href: location.pathname, class: "link"}, "Sign out"),
    );
    return;
  }
  const form = h("form", {class: "signin", "aria-label": "Sign in (development)"},
    h("span", {class: "anonymous", "data-testid": "signed-in-as"}, "Anonymous"),
    h("label", {}, "User id ", h("input", {name: "user", required: true, size: 8, autocomplete: "username"})),
    h("label", {}, "Name ", h("input", {name: "name", size: 8})),
    h("button", {type: "submit"}, "Sign in"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const query = new URLSearchParams({user: String(data.get("user")).trim()});
    if (String(data.get("name")).trim()) query.set("name", String(data.get("name")).trim());
    location.search = `?${query}`;
  });
  account.append(form);
}

// ---------------------------------------------------------------------- notifications

const ACTIONS = {create: "New document", update: "Document updated", delete: "Document removed"};

function notify(note) {
  // Documents' create/update/delete only: not a `reset` (the notice says that), not another model.
  if (!note || !Object.hasOwn(ACTIONS, note.action) || (note.model && note.model !== "document")) return;
  const slug = note.data?.slug ?? note.pk;
  if (note.action !== "delete" && note.data) known.set(slug, {...known.get(slug), ...note.data});
  const title = note.data?.title ?? known.get(slug)?.title ?? slug;
  const heading = `${ACTIONS[note.action] ?? note.action}: ${title}`;
  const target = note.action === "delete" ? "#/" : `#/doc/${encodeURIComponent(slug)}`;
  const body = note.action === "delete" ? "It is gone, or you may no longer read it." : note.data?.abstract || "";
  show({heading, body, target, action: note.action, slug, tag: `${slug}:${note.seq}`});
}

/** An alert another AWS service published to this user (or to everyone): shown like a
 * notification, as text, with nothing to open. */
function alerted(payload, frame) {
  const {heading, body} = alertText(payload);
  show({heading, body, target: null, action: "alert", slug: null, tag: `alert:${frame.event ?? frame.cursor ?? ""}`});
}

/** By the browser once the user allowed it, else in the page. */
function show(item) {
  if ("Notification" in window && Notification.permission === "granted") {
    const shown = new Notification(item.heading, {body: item.body, tag: item.tag});
    shown.onclick = () => {
      window.focus();
      if (item.target) location.hash = item.target;
      shown.close();
    };
    return;
  }
  toast(item);
}

/**
 * In-page notifications live in their own column (or, on narrow screens, their own row):
 * in the flow of the page, so they never cover a control. At most `maxToasts` show, the
 * newest first; each goes by itself after `toastMs`, paused while pointed at or focused.
 */
function toast({heading, body, target, action, slug}) {
  const box = $("#toasts");
  let timer = null;
  const dismiss = () => {
    clearTimeout(timer);
    element.remove();
    box.closest(".notes")?.classList.toggle("has-toasts", box.children.length > 0);
  };
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(dismiss, settings.toastMs);
  };
  const text = [h("strong", {}, heading), body ? h("span", {}, body) : null];
  const element = h("div", {class: `toast toast-${action}`, "data-testid": "notification",
                            "data-action": action, "data-slug": slug,
                            onmouseenter: () => clearTimeout(timer), onmouseleave: arm,
                            onfocusin: () => clearTimeout(timer), onfocusout: arm},
    target ? h("a", {href: target, class: "toast-link", onclick: dismiss}, text) : h("p", {class: "toast-link"}, text),
    h("button", {type: "button", class: "dismiss", "aria-label": "Dismiss notification", onclick: dismiss}, "×"));
  box.prepend(element);
  while (box.children.length > settings.maxToasts) box.lastElementChild.remove();
  box.closest(".notes")?.classList.add("has-toasts");
  arm();
}

function offerBrowserNotifications() {
  if (!("Notification" in window) || Notification.permission !== "default") return;
  const button = h("button", {type: "button", class: "secondary small", id: "allow-notifications"},
    "Allow browser notifications");
  button.addEventListener("click", async () => {
    try {
      await Notification.requestPermission();
    } finally {
      button.remove();
    }
  });
  $("#account").append(" ", button);
}

// ---------------------------------------------------------------------- the list

function phaseBadges(entry, order) {
  const names = [...new Set([...order, ...Object.keys(entry.phases ?? {})])];
  return h("ul", {class: "badges", "aria-label": "Who is here"}, names.map((phase) => {
    const {count} = phaseRoster(entry, phase);
    return h("li", {class: `badge${count ? "" : " empty"}`, "data-testid": `phase-${phase}`, "data-count": count},
      h("span", {class: "phase"}, phase), " ",
      h("span", {class: "who"}, roster(entry, phase, "nobody")));
  }));
}

function renderList(entries, phases) {
  const list = $("#document-list");
  list.setAttribute("aria-busy", "false");
  const current = currentSlug();
  list.replaceChildren(...entries.map((entry) => h("li", {
    class: "document", "data-testid": `doc-${entry.document}`, "data-slug": entry.document,
  },
  h("a", {href: `#/doc/${encodeURIComponent(entry.document)}`, "aria-current": entry.document === current ? "page" : null},
    entry.title || entry.document),
  phaseBadges(entry, phases))));
  if (!entries.length) list.append(h("li", {class: "empty-list"}, "No documents you may read."));
}

// ---------------------------------------------------------------------- the document page

function currentSlug() {
  const match = location.hash.match(/^#\/doc\/(.+)$/);
  return match ? decodeURIComponent(match[1]) : null;
}

const COMMENT_ERRORS = {
  conflict: "Someone changed this comment since it was shown; it now shows their version. Nothing was saved.",
  forbidden: "You may not change this comment: only its author may.",
  not_found: "That comment is gone.",
  unauthenticated: "Sign in to comment.",
  rate_limited: "Too many messages at once: wait a moment and try again.",
  too_large: "That is too long to send.",
  disconnected: "The connection dropped before the server answered: check whether it appears before sending it again.",
  timeout: "The server did not answer in time: check whether it appears before sending it again.",
};

function commentError(error) {
  return COMMENT_ERRORS[error.code] ?? `${error.message} (${error.code})`;
}

class DocumentPage {
  constructor(client, slug, phases) {
    this.client = client;
    this.slug = slug;
    this.phases = phases;
    this.presence = new DocumentPresence(client, slug);
    this.comments = new Comments(client, slug, {user: me?.user ?? null});
    this.busy = new Set();
    this.message = "";
    this.state = null;
    this.stopped = false;
    this.commentsProblem = null;
    this.commentMessage = "";
    this.editing = null; // {id, draft, version: the one the edit started from}
    this.commentBusy = new Set();
    this.commentElements = new Map();
    this.signatures = new WeakMap();
    this.build();
    this.presence.onChange((state) => {
      this.state = state;
      this.render();
    });
    this.comments.onChange(() => this.renderComments());
    this.render();
    this.presence.start().then(() => {
      // The talk's monitor: opening a document is viewing it.
      if (me && !this.stopped && !this.state?.removed) this.act("enter", "view");
    }, (error) => {
      this.state = {document: slug, error};
      this.render();
    });
    this.comments.start().catch((error) => {
      this.commentsProblem = error;
      this.renderComments();
    });
  }

  /** The page's parts, made once: the comment form keeps what is typed across updates. */
  build() {
    this.heading = h("h2", {});
    this.about = h("div", {class: "about"});
    this.presencePart = h("div", {class: "presence-part"});
    this.problem = h("p", {class: "problem", role: "alert", hidden: true});
    this.commentsStatus = h("p", {class: "hint", "data-testid": "comments-status", hidden: true});
    this.commentList = h("ol", {class: "comment-list", "data-testid": "comment-list"});
    this.commentError = h("p", {class: "problem", role: "alert", "data-testid": "comment-error", hidden: true});
    this.commentBody = h("textarea", {name: "body", rows: 3, "data-testid": "comment-body", "aria-describedby": "comment-remaining",
                                      oninput: () => this.renderRemaining()});
    this.remaining = h("span", {class: "hint", id: "comment-remaining", "data-testid": "comment-remaining"});
    this.commentSubmit = h("button", {type: "submit", "data-testid": "comment-submit"}, "Comment");
    this.commentForm = h("form", {class: "comment-form", "data-testid": "comment-form", onsubmit: (event) => this.addComment(event)},
      h("label", {}, "Add a comment", this.commentBody),
      h("div", {class: "comment-actions"}, this.commentSubmit, this.remaining));
    this.commentSection = h("section", {class: "comments", "data-testid": "comments", "aria-labelledby": "comments-heading"},
      h("h3", {id: "comments-heading"}, "Comments"),
      this.commentsStatus, this.commentList, this.commentError,
      me ? this.commentForm : h("p", {class: "hint"}, "Sign in to comment."));
    this.article = h("article", {class: "document-page", "data-testid": "doc-page", "data-slug": this.slug},
      h("p", {class: "back"}, h("a", {href: "#/"}, "← All documents")),
      this.heading, this.about, this.presencePart, this.problem, this.commentSection);
    $("#page").replaceChildren(this.article);
    this.renderRemaining();
  }

  async act(kind, phase) {
    this.busy.add(phase);
    this.message = "";
    this.render();
    try {
      await (kind === "enter" ? this.presence.enter(phase) : this.presence.leave(phase));
    } catch (error) {
      this.message = `Could not ${kind} ${phase}: ${error.message} (${error.code})`;
    } finally {
      this.busy.delete(phase);
      if (!this.stopped) this.render();
    }
  }

  render() {
    if (this.stopped) return;
    const state = this.state;
    const data = {...known.get(this.slug), ...this.presence.data};
    this.heading.textContent = state?.title ?? data.title ?? this.slug;
    const gone = !state || state.error || state.removed;
    this.commentSection.hidden = !!(state?.error || state?.removed);
    if (!state) {
      this.about.replaceChildren();
      this.presencePart.replaceChildren(h("p", {class: "hint"}, "Loading…"));
    } else if (state.error) {
      const why = {forbidden: "You may not read this document.", not_found: "There is no such document."}[state.error.code];
      this.about.replaceChildren();
      this.presencePart.replaceChildren(h("p", {class: "problem", role: "alert"}, why ?? `Could not open it: ${state.error.message}`));
    } else if (state.removed) {
      this.about.replaceChildren();
      this.presencePart.replaceChildren(h("p", {class: "problem", role: "alert"}, "This document was deleted, or you may no longer read it."));
    }
    if (gone) {
      this.problem.hidden = !this.message;
      this.problem.textContent = this.message;
      return;
    }
    const image = imageUrl(data.image, location);
    fill(this.about,
      image ? h("img", {class: "doc-image", src: image, alt: "", "data-testid": "doc-image"}) : null,
      data.abstract ? h("p", {class: "abstract", "data-testid": "doc-abstract"}, data.abstract) : null);
    const held = new Set(this.presence.held());
    const canEnter = !!me && this.client.state === "open";
    const rows = this.phases.map((phase) => {
      const busy = this.busy.has(phase);
      return h("tr", {},
        h("th", {scope: "row"}, phase),
        h("td", {"data-testid": `phase-${phase}`, "data-count": phaseRoster(state, phase).count},
          roster(state, phase, h("span", {class: "nobody"}, "nobody"))),
        h("td", {class: "actions"},
          h("button", {type: "button", "data-testid": `enter-${phase}`, disabled: !canEnter || held.has(phase) || busy,
                       onclick: () => this.act("enter", phase)}, `Enter ${phase}`),
          h("button", {type: "button", class: "secondary", "data-testid": `leave-${phase}`,
                       disabled: !me || !held.has(phase) || busy, onclick: () => this.act("leave", phase)}, `Leave ${phase}`)));
    });
    fill(this.presencePart,
      h("table", {class: "phases"},
        h("caption", {}, "Phases: who is here"),
        h("thead", {}, h("tr", {}, h("th", {scope: "col"}, "Phase"), h("th", {scope: "col"}, "Who"),
                                  h("th", {scope: "col"}, h("span", {class: "visually-hidden"}, "Actions")))),
        h("tbody", {}, rows)),
      me ? null : h("p", {class: "hint"}, "Sign in to enter a phase (anonymous visitors only watch)."));
    this.problem.hidden = !this.message;
    this.problem.textContent = this.message;
  }

  // ---------------------------------------------------------------- comments

  renderRemaining() {
    const length = [...this.commentBody.value].length;
    const left = COMMENT_MAX_CHARS - length;
    const characters = (n) => `${n.toLocaleString("en")} character${n === 1 ? "" : "s"}`;
    this.remaining.textContent = left >= 0 ? `${characters(left)} left` : `${characters(-left)} too many`;
    this.remaining.classList.toggle("over", left < 0);
    this.commentSubmit.disabled = left < 0;
  }

  showCommentMessage(text) {
    this.commentMessage = text;
    this.commentError.hidden = !text;
    this.commentError.textContent = text;
  }

  async addComment(event) {
    event.preventDefault();
    const body = this.commentBody.value;
    const problem = commentProblem(body);
    if (problem) return this.showCommentMessage(problem);
    this.showCommentMessage("");
    this.commentSubmit.disabled = true;
    try {
      await this.comments.add(body);
      this.commentBody.value = "";
    } catch (error) {
      this.showCommentMessage(commentError(error));
    } finally {
      this.renderRemaining();
    }
  }

  async commentAction(id, action) {
    this.commentBusy.add(id);
    this.showCommentMessage("");
    this.renderComments();
    try {
      if (action === "save") {
        const {draft, version} = this.editing;
        try {
          await this.comments.edit(id, draft, {version});
        } catch (error) {
          // Changed meanwhile: show their version rather than an editor over it.
          if (error.code === "conflict") this.editing = null;
          throw error;
        }
        this.editing = null;
      } else {
        await this.comments.remove(id);
      }
    } catch (error) {
      this.showCommentMessage(commentError(error));
    } finally {
      this.commentBusy.delete(id);
      if (!this.stopped) this.renderComments();
    }
  }

  commentElement(comment) {
    const mine = this.comments.mine(comment);
    const busy = this.commentBusy.has(comment.id);
    const editing = mine && this.editing?.id === comment.id;
    const when = comment.created_at ? h("time", {datetime: String(comment.created_at)}, commentTime(comment.created_at))
      : h("span", {class: "hint"}, "sending…");
    const item = h("li", {class: `comment${mine ? " mine" : ""}`, "data-testid": `comment-${comment.id}`,
                          "data-author": comment.author ?? "", "data-version": comment.version ?? ""},
      h("p", {class: "meta"}, h("bdi", {class: "uid", "data-testid": "comment-author"}, comment.author ?? "?"), " · ", when));
    if (editing) {
      const draft = h("textarea", {rows: 3, "data-testid": `comment-edit-body-${comment.id}`, "aria-label": "Edit your comment",
                                   oninput: () => (this.editing.draft = draft.value)});
      draft.value = this.editing.draft;
      item.append(h("form", {class: "comment-edit", "data-testid": `comment-edit-form-${comment.id}`,
                             onsubmit: (event) => { event.preventDefault(); this.commentAction(comment.id, "save"); }},
        draft,
        h("div", {class: "comment-actions"},
          h("button", {type: "submit", disabled: busy, "data-testid": `comment-save-${comment.id}`}, "Save"),
          h("button", {type: "button", class: "secondary", disabled: busy, "data-testid": `comment-cancel-${comment.id}`,
                       onclick: () => { this.editing = null; this.renderComments(); }}, "Cancel"))));
    } else {
      item.append(h("p", {class: "comment-body", "data-testid": "comment-text"}, comment.body ?? ""));
      if (mine) {
        item.append(h("div", {class: "comment-actions"},
          h("button", {type: "button", class: "secondary small", disabled: busy || comment.pending, "data-testid": `comment-edit-${comment.id}`,
                       onclick: () => { this.editing = {id: comment.id, draft: comment.body ?? "", version: comment.version}; this.renderComments(); }}, "Edit"),
          h("button", {type: "button", class: "secondary small", disabled: busy || comment.pending, "data-testid": `comment-delete-${comment.id}`,
                       onclick: () => this.commentAction(comment.id, "delete")}, "Delete")));
      }
    }
    return item;
  }

  /** Keyed: a comment's element is rebuilt only when it changed, so an edit box keeps its text. */
  renderComments() {
    if (this.stopped) return;
    if (this.commentsProblem) {
      const error = this.commentsProblem;
      this.commentsStatus.hidden = false;
      this.commentsStatus.textContent = error.code === "forbidden" || error.code === "not_found" ? ""
        : error.code === "unauthenticated" ? "Sign in to read the comments."
        : `Comments are not available here (${error.code}: ${error.message}).`;
      this.commentsStatus.hidden = !this.commentsStatus.textContent;
      this.commentForm.hidden = true;
      return;
    }
    const comments = this.comments.list();
    if (this.editing && !comments.some((c) => c.id === this.editing.id)) this.editing = null;
    this.commentsStatus.hidden = comments.length > 0 || !this.comments.loaded;
    this.commentsStatus.textContent = "No comments yet.";
    const shown = new Set();
    let previous = null;
    for (const comment of comments) {
      const signature = [comment.version, comment.body, !!comment.pending, comment.created_at,
                         this.editing?.id === comment.id, this.commentBusy.has(comment.id)].join("\u0000");
      let element = this.commentElements.get(comment.id);
      if (!element || this.signatures.get(element) !== signature) {
        const fresh = this.commentElement(comment);
        this.signatures.set(fresh, signature);
        if (element) element.replaceWith(fresh);
        element = fresh;
        this.commentElements.set(comment.id, element);
      }
      const expected = previous ? previous.nextSibling : this.commentList.firstChild;
      if (element !== expected) this.commentList.insertBefore(element, expected);
      previous = element;
      shown.add(comment.id);
    }
    for (const [id, element] of this.commentElements) {
      if (shown.has(id)) continue;
      element.remove();
      this.commentElements.delete(id);
    }
  }

  stop() {
    this.stopped = true;
    this.comments.stop();
    return this.presence.stop();
  }
}

function renderHome() {
  $("#page").replaceChildren(h("div", {class: "home"},
    h("h2", {}, "Pick a document"),
    h("p", {}, "Open a document to see who is viewing, editing or reviewing it, and to join them. " +
               "Opening it counts you as viewing it."),
    me ? h("p", {}, "When a document you may read is created, changed or removed, a notification shows in the " +
                    "Notifications panel for a few seconds (or from your browser, once you allow it).")
      : h("p", {}, "You are anonymous: you see public documents and the counter, but cannot enter phases or get notifications.")));
}

// ---------------------------------------------------------------------- "another AWS service"

function setupServiceForms() {
  setupDocumentForm();
  setupAlertForm();
}

/** "Send an alert to a user": another AWS service putting a `realtime.publish` event on the bus. */
function setupAlertForm() {
  const form = $("#alert-form");
  const result = $("#alert-result");
  if (me) form.elements.to.value = me.user;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const body = {to: {user: String(data.get("to")).trim()}, payload: {text: String(data.get("text"))}};
    const title = String(data.get("title") || "").trim();
    if (title) body.payload.title = title;
    let outcome;
    try {
      const response = await fetch("/dev/alerts", {method: "POST", headers: {"Content-Type": "application/json"},
                                                   body: JSON.stringify(body)});
      let answer = null;
      try {
        answer = await response.json();
      } catch {
        // not JSON: the status says enough
      }
      outcome = alertResult(response.status, answer);
    } catch (error) {
      outcome = {ok: false, text: `POST /dev/alerts failed: ${error.message}`};
    }
    result.textContent = outcome.text;
    result.dataset.ok = outcome.ok ? "yes" : "no";
  });
}

function setupDocumentForm() {
  const form = $("#service-form");
  const result = $("#service-result");
  const report = (text, ok) => {
    result.textContent = text;
    result.dataset.ok = ok ? "yes" : "no";
  };
  async function call(method, path, body) {
    let response;
    try {
      response = await fetch(path, {method, headers: {"Content-Type": "application/json"},
                                    body: body ? JSON.stringify(body) : undefined});
    } catch (error) {
      return report(`${method} ${path} failed: ${error.message}`, false);
    }
    if (response.status === 404 || response.status === 405) {
      return report(`This server has no ${method} ${path.replace(/\/[^/]*$/, method === "DELETE" ? "/<slug>" : "")} route; ` +
                    "write the table with boto3 or the AWS CLI instead (see make dev's banner).", false);
    }
    const text = await response.text();
    report(response.ok ? `${method === "DELETE" ? "Deleted" : "Written"}: ${body?.slug ?? path.split("/").pop()}`
      : `${response.status}: ${text}`, response.ok);
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const readers = String(data.get("readers") || "").split(",").map((r) => r.trim()).filter(Boolean);
    const doc = {slug: String(data.get("slug")).trim(), title: String(data.get("title")).trim(),
                 abstract: String(data.get("abstract") || "").trim(), visibility: String(data.get("visibility")),
                 readers};
    if (me) doc.owner = me.user;
    call("POST", "/dev/documents", doc);
  });
  $("#service-delete").addEventListener("click", () => {
    const slug = String(new FormData(form).get("slug") || "").trim();
    if (!slug) return report("Give the slug of the document to delete.", false);
    call("DELETE", `/dev/documents/${encodeURIComponent(slug)}`);
  });
}

// ---------------------------------------------------------------------- main

async function main() {
  renderAccount();
  setupServiceForms();
  $("#notes-hint").textContent = me
    ? "Documents created, changed or removed, and alerts for you, show here for a few seconds."
    : "Sign in to get notifications and alerts.";
  let config;
  try {
    config = await loadConfig();
  } catch (error) {
    notice(`Cannot find the WebSocket endpoint: ${error.message}`, "error");
    return;
  }
  const phases = config.phases;
  let page = null;
  let listed = false;
  const client = connect(config.websocket, me ? {token: devToken} : {});
  window.realtime = client; // for the console (and tests)

  const stateElement = $("#connection-state");
  const retry = $("#retry-connection");
  retry.addEventListener("click", () => client.retry());
  const showState = (state, detail) => {
    stateElement.textContent = state;
    stateElement.dataset.state = state;
    stateElement.title = state === "reconnecting" && detail?.delay !== undefined
      ? `attempt ${detail.attempt}, next in ${Math.round(detail.delay / 100) / 10} s` : "";
    retry.hidden = state !== "refused";
    $("#users-count").classList.toggle("stale", state !== "open");
    document.body.dataset.connection = state;
    if (state === "refused") notice(STATE_HINTS.refused, "error");
    page?.render();
  };
  client.on("state", (state) => showState(state));
  client.on("reconnecting", (detail) => showState("reconnecting", detail));
  client.on("open", () => $("#notice").dataset.testid !== "ws-ignored" && notice(""));
  client.on("drop", ({frame}) => notice(`Offline too long: dropped a queued "${frame.action}".`, "warning"));
  client.on("error", (error) => console.warn("realtime:", error));
  // The client subscribes again by itself; the page only says what may be missing.
  client.on("reset", ({stream}) => {
    if (stream === "notifications" || stream === "alerts") {
      notice(`Some ${stream} sent while this page was offline could not be caught up on.`, "warning", "missed");
    }
  });
  showState(client.state);

  client.stream("users").listen(({users}) => {
    $("#users-count").textContent = String(users);
  });
  client.subscribe("users").catch((error) => notice(`Counter unavailable: ${error.message}`, "error"));

  const list = new DocumentList(client);
  list.onChange((entries) => {
    listed = true;
    renderList(entries, phases);
  });
  list.start().catch((error) => notice(`Document list unavailable: ${error.message}`, "error"));

  if (me) {
    client.stream("notifications").listen(notify);
    client.subscribe("notifications")
      .then(() => (document.body.dataset.notifications = "on"))
      .catch((error) => notice(`Notifications unavailable: ${error.message}`, "error"));
    const alerts = new Alerts(client);
    alerts.onAlert(alerted);
    alerts.start()
      .then(() => (document.body.dataset.alerts = "on"))
      .catch((error) => notice(`Alerts unavailable: ${error.message}`, "error"));
    offerBrowserNotifications();
  }

  const route = () => {
    const slug = currentSlug();
    if (page && page.slug === slug) return;
    page?.stop();
    page = null;
    if (slug) page = new DocumentPage(client, slug, phases);
    else renderHome();
    if (listed) renderList(list.list(), phases);
  };
  window.addEventListener("hashchange", route);
  route();
  // Leaving the page: close cleanly (the server runs $disconnect at once). A page kept in
  // the back/forward cache keeps its client.
  window.addEventListener("pagehide", (event) => {
    if (!event.persisted) client.close();
  });
}

main();
