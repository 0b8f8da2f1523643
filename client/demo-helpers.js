// Pure helpers of the demo page (demo.js), apart so node's tests can check them.

/** Hosts a `?ws=` override may always name: this machine. */
const LOOPBACK = new Set(["127.0.0.1", "::1", "localhost"]);

function bareHost(hostname) {
  return String(hostname).replace(/^\[|\]$/g, "").toLowerCase();
}

/**
 * The demo's `?ws=<url>` override, checked: the page sends the user's token to that URL,
 * so only this page's own host or loopback may be named (a link naming another host would
 * hand it the token). Answers `{url}` to use, or `{reason}` why it is ignored.
 * @param {string} value  the `ws` query parameter
 * @param {{hostname: string}} page  the page's location
 * @returns {{url: string} | {reason: string}}
 */
export function websocketOverride(value, page) {
  let url;
  try {
    url = new URL(value);
  } catch {
    return {reason: "Ignored ?ws=: it is not a URL."};
  }
  if (url.protocol !== "ws:" && url.protocol !== "wss:") {
    return {reason: "Ignored ?ws=: it must be a ws:// or wss:// URL."};
  }
  const host = bareHost(url.hostname);
  if (host === bareHost(page.hostname) || LOOPBACK.has(host)) return {url: value};
  return {reason: `Ignored ?ws=${url.host}: the page would send your token there. Only this page's host ` +
                  `(${page.hostname}) or loopback (127.0.0.1, ::1, localhost) may be named.`};
}

/** How many of a roster are not listed, as words: "" when none. */
export function moreText(more) {
  return more > 0 ? `and ${more.toLocaleString("en")} more` : "";
}

/**
 * A person as shown: the display name with the user id beside it (names can be spoofed;
 * the id cannot), or the id alone when there is no other name.
 * @param {{user: string, name?: string}} person
 * @returns {{name: string | null, user: string}}
 */
export function personParts(person) {
  const user = String(person?.user ?? "");
  const name = typeof person?.name === "string" && person.name.trim() && person.name !== user ? person.name : null;
  return {name, user};
}

/** An image URL from a document's data, if it is one to show: same-origin paths and
 * https only (the page's Content-Security-Policy decides the rest). */
export function imageUrl(value, page) {
  if (typeof value !== "string" || !value.trim()) return null;
  let url;
  try {
    url = new URL(value, page.href);
  } catch {
    return null;
  }
  if (url.origin === new URL(page.href).origin || url.protocol === "https:") return url.href;
  return null;
}

/** The words for a connection state the page shows beside it. */
export const STATE_HINTS = {
  refused: "The server refused the connection several times in a row (an expired token, too many " +
           "connections, or the server is down). It stopped trying.",
};

/** Characters of an alert's text shown at most (a payload may be up to 32 KB). */
export const ALERT_CHARS = 300;

function clip(text) {
  const chars = [...text];
  return chars.length > ALERT_CHARS ? `${chars.slice(0, ALERT_CHARS - 1).join("")}…` : text;
}

/**
 * What a toast says for an alert: its payload is whatever another AWS service published.
 * `title` and `text`, when they are strings, are the heading and the body; otherwise the
 * payload is shown as JSON. Always text: the page never renders a payload as HTML.
 * @param {Record<string, any>} payload
 * @returns {{heading: string, body: string}}
 */
export function alertText(payload) {
  const title = typeof payload?.title === "string" && payload.title.trim() ? payload.title.trim() : null;
  const heading = title ? `Alert: ${clip(title)}` : "Alert";
  if (typeof payload?.text === "string") return {heading, body: clip(payload.text)};
  const rest = {...payload};
  if (title) delete rest.title;
  return {heading, body: Object.keys(rest).length ? clip(JSON.stringify(rest)) : ""};
}

/** The "send an alert" form's answer from `POST /dev/alerts`, as words. */
export function alertResult(status, answer) {
  const why = typeof answer?.error === "string" ? answer.error : "";
  if (status === 202) return {ok: true, text: `Published: event ${answer?.eventId ?? "?"} on bus ${answer?.bus ?? "?"}`};
  if (status === 404 || status === 405) {
    return {ok: false, text: "This server has no POST /dev/alerts route: publish with aws events put-events instead (see make dev's banner)."};
  }
  if (status === 400) return {ok: false, text: `Not sent, the request is malformed (400): ${why}`};
  if (status === 403) return {ok: false, text: `Refused (403): ${why}`};
  if (status === 502) return {ok: false, text: `The event bus did not take it (502): ${why}`};
  return {ok: false, text: `${status}: ${why || "unexpected answer"}`};
}

/** A comment's `created_at` (ISO 8601 from the server) as people read it; anything else as it is. */
export function commentTime(value, locale = "en") {
  const when = typeof value === "string" ? Date.parse(value) : NaN;
  if (Number.isNaN(when)) return String(value);
  return new Date(when).toLocaleString(locale, {dateStyle: "medium", timeStyle: "short"});
}
