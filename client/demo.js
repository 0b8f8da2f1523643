// The demo application: the live user counter, the document list with presence badges, a
// document page with its phases, and notifications. All protocol work is in realtime.js.
//
// Sign-in (development only): `?user=<id>&name=<display name>` in the URL; none: anonymous.
// The local stack answers `GET /dev/config` (where the WebSocket is) and `GET /dev/token`.
// The "another AWS service" form writes with `POST /dev/documents` and `DELETE
// /dev/documents/<slug>` on the same server.

import {connect, DocumentList, DocumentPresence} from "./realtime.js";

const $ = (selector, root = document) => root.querySelector(selector);

/** Create an element: h("p", {class: "x"}, "text", child). */
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

const params = new URLSearchParams(location.search);
const user = (params.get("user") || "").trim();
const me = user ? {user, name: (params.get("name") || "").trim() || user} : null;

/** Known document fields (from notifications) by slug: the list only carries titles. */
const known = new Map();

async function loadConfig() {
  const fallback = {phases: ["view", "edit", "review"]};
  if (params.get("ws")) return {...fallback, websocket: params.get("ws")};
  if (window.REALTIME_CONFIG?.websocket) return {...fallback, ...window.REALTIME_CONFIG};
  const response = await fetch("/dev/config", {cache: "no-store"});
  if (!response.ok) throw new Error(`GET /dev/config: ${response.status}`);
  return {...fallback, ...(await response.json())};
}

/** A fresh development token before every connection attempt (they expire). */
async function devToken() {
  const query = new URLSearchParams({user: me.user, name: me.name});
  const response = await fetch(`/dev/token?${query}`, {cache: "no-store"});
  if (!response.ok) throw new Error(`GET /dev/token: ${response.status}`);
  return (await response.json()).token;
}

function notice(text, kind = "info") {
  const element = $("#notice");
  element.hidden = !text;
  element.textContent = text || "";
  element.dataset.kind = kind;
}

function displayName(person) {
  return person.name || person.user;
}

// ---------------------------------------------------------------------- account

function renderAccount() {
  const account = $("#account");
  account.replaceChildren();
  if (me) {
    account.append(
      h("span", {"data-testid": "signed-in-as"}, "Signed in as ", h("strong", {}, me.name), ` (${me.user})`),
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
const MAX_TOASTS = 8;

function notify(note) {
  const slug = note.data?.slug ?? note.pk;
  if (note.action !== "delete" && note.data) known.set(slug, {...known.get(slug), ...note.data});
  const title = note.data?.title ?? known.get(slug)?.title ?? slug;
  const heading = `${ACTIONS[note.action] ?? note.action}: ${title}`;
  const target = note.action === "delete" ? "#/" : `#/doc/${encodeURIComponent(slug)}`;
  const body = note.action === "delete" ? "It is gone, or you may no longer read it." : note.data?.abstract || "";
  if ("Notification" in window && Notification.permission === "granted") {
    const shown = new Notification(heading, {body, tag: `${slug}:${note.seq}`});
    shown.onclick = () => {
      window.focus();
      location.hash = target;
      shown.close();
    };
    return;
  }
  toast(heading, body, target, note);
}

function toast(heading, body, target, note) {
  const box = $("#toasts");
  const element = h("div", {class: `toast toast-${note.action}`, "data-testid": "notification",
                            "data-action": note.action, "data-slug": note.data?.slug ?? note.pk},
    h("a", {href: target, class: "toast-link"}, h("strong", {}, heading), body ? h("span", {}, body) : null),
    h("button", {type: "button", class: "dismiss", "aria-label": "Dismiss notification",
                 onclick: () => element.remove()}, "×"));
  element.querySelector("a").addEventListener("click", () => element.remove());
  box.prepend(element);
  while (box.children.length > MAX_TOASTS) box.lastElementChild.remove();
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

function phaseBadges(phases, order) {
  const names = [...new Set([...order, ...Object.keys(phases ?? {})])];
  return h("ul", {class: "badges", "aria-label": "Who is here"}, names.map((phase) => {
    const people = phases?.[phase] ?? [];
    return h("li", {class: `badge${people.length ? "" : " empty"}`, "data-testid": `phase-${phase}`,
                    "data-count": people.length},
      h("span", {class: "phase"}, phase), " ",
      h("span", {class: "who"}, people.length ? people.map(displayName).join(", ") : "nobody"));
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
  phaseBadges(entry.phases, phases))));
  if (!entries.length) list.append(h("li", {class: "empty-list"}, "No documents you may read."));
}

// ---------------------------------------------------------------------- the document page

function currentSlug() {
  const match = location.hash.match(/^#\/doc\/(.+)$/);
  return match ? decodeURIComponent(match[1]) : null;
}

class DocumentPage {
  constructor(client, slug, phases) {
    this.client = client;
    this.slug = slug;
    this.phases = phases;
    this.presence = new DocumentPresence(client, slug);
    this.busy = new Set();
    this.message = "";
    this.state = null;
    this.stopped = false;
    this.presence.onChange((state) => {
      this.state = state;
      this.render();
    });
    this.render();
    this.presence.start().catch((error) => {
      this.state = {document: slug, error};
      this.render();
    });
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
    const page = $("#page");
    const state = this.state;
    const title = state?.title ?? known.get(this.slug)?.title ?? this.slug;
    const article = h("article", {class: "document-page", "data-testid": "doc-page", "data-slug": this.slug});
    article.append(h("p", {class: "back"}, h("a", {href: "#/"}, "← All documents")));
    article.append(h("h2", {}, title));
    if (!state) {
      article.append(h("p", {class: "hint"}, "Loading…"));
    } else if (state.error) {
      const why = {forbidden: "You may not read this document.", not_found: "There is no such document."}[state.error.code];
      article.append(h("p", {class: "problem", role: "alert"}, why ?? `Could not open it: ${state.error.message}`));
    } else if (state.removed) {
      article.append(h("p", {class: "problem", role: "alert"}, "This document was deleted, or you may no longer read it."));
    } else {
      const abstract = known.get(this.slug)?.abstract;
      if (abstract) article.append(h("p", {class: "abstract"}, abstract));
      const held = new Set(this.presence.held());
      const canEnter = !!me && this.client.state === "open";
      const rows = this.phases.map((phase) => {
        const people = state.phases?.[phase] ?? [];
        const busy = this.busy.has(phase);
        return h("tr", {},
          h("th", {scope: "row"}, phase),
          h("td", {"data-testid": `phase-${phase}`, "data-count": people.length},
            people.length ? people.map(displayName).join(", ") : h("span", {class: "nobody"}, "nobody")),
          h("td", {class: "actions"},
            h("button", {type: "button", "data-testid": `enter-${phase}`, disabled: !canEnter || held.has(phase) || busy,
                         onclick: () => this.act("enter", phase)}, `Enter ${phase}`),
            h("button", {type: "button", class: "secondary", "data-testid": `leave-${phase}`,
                         disabled: !me || !held.has(phase) || busy, onclick: () => this.act("leave", phase)}, `Leave ${phase}`)));
      });
      article.append(h("table", {class: "phases"},
        h("caption", {}, "Phases: who is here"),
        h("thead", {}, h("tr", {}, h("th", {scope: "col"}, "Phase"), h("th", {scope: "col"}, "Who"),
                                  h("th", {scope: "col"}, h("span", {class: "visually-hidden"}, "Actions")))),
        h("tbody", {}, rows)));
      if (!me) article.append(h("p", {class: "hint"}, "Sign in to enter a phase (anonymous visitors only watch)."));
    }
    if (this.message) article.append(h("p", {class: "problem", role: "alert"}, this.message));
    page.replaceChildren(article);
  }

  stop() {
    this.stopped = true;
    return this.presence.stop();
  }
}

function renderHome() {
  $("#page").replaceChildren(h("div", {class: "home"},
    h("h2", {}, "Pick a document"),
    h("p", {}, "Open a document to see who is viewing, editing or reviewing it, and to join them."),
    me ? h("p", {}, "Notifications about documents you may read appear here as they change.")
      : h("p", {}, "You are anonymous: you see public documents and the counter, but cannot enter phases or get notifications.")));
}

// ---------------------------------------------------------------------- "another AWS service"

function setupServiceForm() {
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
  setupServiceForm();
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
  const showState = (state, detail) => {
    stateElement.textContent = state;
    stateElement.dataset.state = state;
    stateElement.title = state === "reconnecting" && detail?.delay !== undefined
      ? `attempt ${detail.attempt}, next in ${Math.round(detail.delay / 100) / 10} s` : "";
    $("#users-count").classList.toggle("stale", state !== "open");
    document.body.dataset.connection = state;
    page?.render();
  };
  client.on("state", (state) => showState(state));
  client.on("reconnecting", (detail) => showState("reconnecting", detail));
  client.on("open", () => notice(""));
  client.on("drop", ({frame}) => notice(`Offline too long: dropped a queued "${frame.action}".`, "warning"));
  client.on("error", (error) => console.warn("realtime:", error));
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
