// The reference app's models (client/monitor.js): the document list, one document's
// presence and fields, its comments, alerts.
import assert from "node:assert/strict";
import {test} from "node:test";

import {Alerts, byTitle, Comments, commentProblem, DocumentList, DocumentPresence, phaseRoster} from "../monitor.js";
import {settle} from "./fakes.mjs";
import {open, reconnect, sent} from "./helpers.mjs";

const phases = (edit = []) => ({view: [], edit, review: []});

// ------------------------------------------------------------------ DocumentList

test("DocumentList: full replaces, partial upserts, removed deletes", async () => {
  const {client, sockets} = await open();
  const list = new DocumentList(client);
  const changes = [];
  list.onChange((entries) => changes.push(entries.map((e) => e.document)));
  const subscribed = list.start();
  sockets[0].push("documents", {full: true, documents: [
    {document: "a", title: "A", phases: phases()}, {document: "b", title: "B", phases: phases()}]});
  sockets[0].push("documents", {full: false, documents: [{document: "c", title: "C", phases: phases()}]}); // continued snapshot
  sockets[0].ackAll();
  await subscribed;
  sockets[0].push("documents", {full: false, documents: [{document: "a", title: "A2", phases: phases([{user: "bob", name: "Bob"}])}]});
  sockets[0].push("documents", {full: false, documents: [{document: "b", removed: true}]});
  assert.deepEqual(list.get("a"), {document: "a", title: "A2", phases: phases([{user: "bob", name: "Bob"}])});
  assert.deepEqual(changes, [["a", "b"], ["a", "b", "c"], ["a", "b", "c"], ["a", "c"]]);
  // A new snapshot (after a reconnect) replaces everything.
  sockets[0].push("documents", {full: true, documents: [{document: "z", title: "Z", phases: phases()}]});
  assert.deepEqual(list.list().map((e) => e.document), ["z"]);
});

test("DocumentList: sorted by title, not slug, and a new document takes its place by title", async () => {
  const {client, sockets} = await open();
  const list = new DocumentList(client);
  list.start();
  sockets[0].push("documents", {full: true, documents: [
    {document: "a-zebra", title: "Zebra", phases: phases()},
    {document: "b-apple", title: "apple", phases: phases()},
    {document: "c-mango", title: "Mango", phases: phases()}]});
  sockets[0].push("documents", {full: false, documents: [{document: "z-banana", title: "Banana", phases: phases()}]});
  assert.deepEqual(list.list().map((e) => e.title), ["apple", "Banana", "Mango", "Zebra"]);
});

test("byTitle: case-insensitive, numbers in order, ties broken by slug", () => {
  const entries = [{document: "b", title: "Notes 10"}, {document: "a", title: "notes 9"}, {document: "d", title: "X"},
                   {document: "c", title: "X"}, {document: "e"}];
  assert.deepEqual(entries.sort(byTitle).map((e) => e.document), ["e", "a", "b", "c", "d"]);
});

test("DocumentList: a reset of the documents stream subscribes again for the snapshot", async () => {
  const {client, sockets} = await open();
  const list = new DocumentList(client);
  list.start();
  sockets[0].ackAll();
  await settle();
  sockets[0].push("documents", {reset: true});
  await settle();
  assert.equal(sockets[0].frames("subscribe").length, 2);
  assert.equal(sockets[0].last("subscribe").since, undefined);
});

// ------------------------------------------------------------------ rosters: counts

test("phaseRoster: counts when the server truncated the list, else the list's length", () => {
  const entry = {document: "d", phases: {view: [{user: "a"}, {user: "b"}, {user: "c"}], edit: [], review: [{user: "x"}]},
                 counts: {view: 57, edit: 0}};
  assert.deepEqual(phaseRoster(entry, "view"), {people: entry.phases.view, count: 57, more: 54});
  assert.deepEqual(phaseRoster(entry, "edit"), {people: [], count: 0, more: 0});
  assert.deepEqual(phaseRoster(entry, "review"), {people: [{user: "x"}], count: 1, more: 0}); // no count: the list
  assert.deepEqual(phaseRoster({document: "d", phases: {view: [{user: "a"}]}, counts: {view: "9"}}, "view").count, 1,
    "a count that is not a number is ignored");
  assert.deepEqual(phaseRoster(null, "view"), {people: [], count: 0, more: 0});
});

// ------------------------------------------------------------------ DocumentPresence

test("DocumentPresence: follows one document, enters and leaves, stop leaves what it holds", async () => {
  const {client, sockets} = await open();
  const doc = new DocumentPresence(client, "roadmap");
  const seen = [];
  doc.onChange((p) => seen.push(p.title ?? "removed"));
  doc.start();
  sockets[0].push("document", {document: "other", title: "Other", phases: {}});
  sockets[0].push("document", {document: "roadmap", title: "Roadmap", phases: {}});
  doc.enter("edit");
  sockets[0].ackAll();
  await settle();
  assert.deepEqual(doc.held(), ["edit"]);
  const stopping = doc.stop();
  sockets[0].ackAll();
  await stopping;
  assert.deepEqual(sent(sockets[0]).slice(2), [
    {action: "leave", document: "roadmap", phase: "edit"},
    {action: "unsubscribe", stream: "document", document: "roadmap"},
  ]);
  assert.deepEqual(seen, ["Roadmap"]);
  assert.deepEqual(client.held(), []);
  assert.deepEqual(client.subscribed(), []);
});

test("DocumentPresence: the snapshot's data gives the document's fields from the start", async () => {
  const {client, sockets} = await open();
  const doc = new DocumentPresence(client, "roadmap");
  doc.start();
  sockets[0].push("document", {document: "roadmap", title: "Roadmap", phases: phases(),
    data: {slug: "roadmap", title: "Roadmap", abstract: "What comes next.", image: "/static/r.png"}});
  assert.equal(doc.data.abstract, "What comes next.");
  assert.equal(doc.current.data.image, "/static/r.png");
  // A presence change without data keeps the fields.
  sockets[0].push("document", {document: "roadmap", title: "Roadmap", phases: phases([{user: "a"}])});
  assert.equal(doc.current.data.abstract, "What comes next.");
});

test("DocumentPresence: update notifications of the document refresh its fields", async () => {
  const {client, sockets} = await open();
  const doc = new DocumentPresence(client, "roadmap");
  const titles = [];
  doc.onChange((p) => titles.push(`${p.title}: ${p.data?.abstract}`));
  doc.start();
  sockets[0].push("document", {document: "roadmap", title: "Roadmap", phases: phases()});
  sockets[0].push("notifications", {action: "update", model: "document", pk: "other", data: {abstract: "no"}, seq: "1"});
  sockets[0].push("notifications", {action: "update", model: "document", pk: "roadmap",
    data: {slug: "roadmap", title: "Roadmap v2", abstract: "Moved."}, seq: "2"});
  assert.deepEqual(titles, ["Roadmap: undefined", "Roadmap v2: Moved."]);
});

test("DocumentPresence: counts pass through for truncated rosters", async () => {
  const {client, sockets} = await open();
  const doc = new DocumentPresence(client, "big");
  doc.start();
  const view = Array.from({length: 100}, (_, i) => ({user: `u${i}`}));
  sockets[0].push("document", {document: "big", title: "Big", phases: {view, edit: [], review: []},
                               counts: {view: 250, edit: 0, review: 0}});
  assert.deepEqual(phaseRoster(doc.current, "view").more, 150);
});

// ------------------------------------------------------------------ Comments

const note = (action, id, data, seq) => ({action, model: "comment", pk: {document: "d", id},
                                         data: data && {id, document: "d", ...data}, seq: String(seq)});

async function comments({user = "alice"} = {}) {
  const env = await open();
  const model = new Comments(env.client, "d", {user});
  const changes = [];
  model.onChange((list) => changes.push(list.map((c) => `${c.id}:${c.body}`)));
  return {...env, model, changes};
}

test("Comments: subscribes to the document's comments and shows the snapshot oldest first", async () => {
  const {model, sockets, changes} = await comments();
  const started = model.start();
  assert.deepEqual(sent(sockets[0]), [{action: "subscribe", stream: "comments", document: "d"}]);
  sockets[0].push("comments", {document: "d", full: true, comments: [
    {id: "1", document: "d", author: "bob", body: "first", created_at: "2024-01-01T10:00:00Z", version: 1},
    {id: "2", document: "d", author: "alice", body: "second", created_at: "2024-01-01T11:00:00Z", version: 2}]});
  sockets[0].ackAll();
  await started;
  assert.equal(model.loaded, true);
  assert.deepEqual(changes, [["1:first", "2:second"]]);
});

test("Comments: another document's snapshot and notifications are not this one's", async () => {
  const {model, sockets, changes} = await comments();
  model.start();
  sockets[0].push("comments", {document: "e", full: true, comments: [{id: "9", document: "e", body: "x", version: 1}]});
  sockets[0].push("comments", {action: "create", model: "comment", pk: {document: "e", id: "8"},
                               data: {id: "8", document: "e", body: "y", version: 1}, seq: "5"});
  assert.deepEqual(changes, []);
  assert.deepEqual(model.list(), []);
});

test("Comments: create, update and delete notifications apply live", async () => {
  const {model, sockets, changes} = await comments();
  model.start();
  sockets[0].push("comments", {document: "d", full: true, comments: []});
  sockets[0].push("comments", note("create", "1", {author: "bob", body: "hi", created_at: "t1", version: 1}, 10));
  sockets[0].push("comments", note("update", "1", {author: "bob", body: "hi!", created_at: "t1", version: 2}, 11));
  sockets[0].push("comments", note("create", "2", {author: "carol", body: "yo", created_at: "t2", version: 1}, 12));
  sockets[0].push("comments", note("delete", "1", null, 13));
  assert.deepEqual(changes.at(-1), ["2:yo"]);
  assert.deepEqual(changes, [[], ["1:hi"], ["1:hi!"], ["1:hi!", "2:yo"], ["2:yo"]]);
});

test("Comments: an older version never overwrites a newer one, in whatever order they come", async () => {
  const {model, sockets} = await comments();
  model.start();
  sockets[0].push("comments", {document: "d", full: true, comments: [
    {id: "1", document: "d", author: "bob", body: "v3", created_at: "t", version: 3}]});
  sockets[0].push("comments", note("update", "1", {author: "bob", body: "v2", created_at: "t", version: 2}, 50));
  assert.equal(model.get("1").body, "v3");
});

test("Comments: a deleted comment stays deleted even if a stale snapshot still has it", async () => {
  const {model, sockets} = await comments();
  model.start();
  sockets[0].push("comments", note("delete", "1", null, 20)); // live, before the snapshot was sent
  sockets[0].push("comments", {document: "d", full: true, comments: [
    {id: "1", document: "d", author: "bob", body: "old", created_at: "t", version: 1}]});
  assert.equal(model.get("1"), undefined);
});

test("Comments: add sends a create on the comments binding and shows it at once", async () => {
  const {model, sockets, changes} = await comments();
  model.start();
  sockets[0].ackAll();
  const adding = model.add("Looks good");
  const frame = sockets[0].last("create");
  assert.deepEqual(frame.data, {document: "d", body: "Looks good"});
  assert.equal(frame.stream, "comments");
  sockets[0].ack(frame.id, {pk: {document: "d", id: "c7"}, version: 1});
  await adding;
  assert.deepEqual(changes.at(-1), ["c7:Looks good"]);
  assert.equal(model.mine(model.get("c7")), true);
  // The notification that follows completes it, without a second entry.
  sockets[0].push("comments", note("create", "c7", {author: "alice", body: "Looks good", created_at: "t9", version: 1}, 30));
  assert.deepEqual(model.list().map((c) => [c.id, c.created_at, !!c.pending]), [["c7", "t9", false]]);
});

test("Comments: edit and remove send the version shown, and follow the ack's version", async () => {
  const {model, sockets} = await comments();
  model.start();
  sockets[0].push("comments", {document: "d", full: true, comments: [
    {id: "1", document: "d", author: "alice", body: "draft", created_at: "t", version: 4}]});
  sockets[0].ackAll();
  const editing = model.edit("1", "final");
  const update = sockets[0].last("update");
  assert.deepEqual([update.pk, update.version, update.data], [{document: "d", id: "1"}, 4, {body: "final"}]);
  sockets[0].ack(update.id, {pk: update.pk, version: 5});
  await editing;
  assert.deepEqual([model.get("1").body, model.get("1").version], ["final", 5]);
  const removing = model.remove("1");
  const del = sockets[0].last("delete");
  assert.deepEqual([del.pk, del.version], [{document: "d", id: "1"}, 5]);
  sockets[0].ack(del.id, {pk: del.pk});
  await removing;
  assert.equal(model.get("1"), undefined);
});

test("Comments: an edit started from an older version sends that version (the server answers conflict)", async () => {
  const {model, sockets} = await comments();
  model.start();
  sockets[0].push("comments", {document: "d", full: true, comments: [
    {id: "1", document: "d", author: "alice", body: "v1", created_at: "t", version: 1}]});
  sockets[0].ackAll();
  sockets[0].push("comments", note("update", "1", {author: "alice", body: "v2 from the other tab", created_at: "t", version: 2}, 40));
  const editing = model.edit("1", "my edit of v1", {version: 1});
  const update = sockets[0].last("update");
  assert.equal(update.version, 1);
  sockets[0].error(update.id, "conflict", "version 2, not 1");
  await assert.rejects(editing, {code: "conflict"});
  assert.equal(model.get("1").body, "v2 from the other tab");
});

test("Comments: a conflict rejects with its code and changes nothing", async () => {
  const {model, sockets} = await comments();
  model.start();
  sockets[0].push("comments", {document: "d", full: true, comments: [
    {id: "1", document: "d", author: "alice", body: "mine", created_at: "t", version: 1}]});
  const editing = model.edit("1", "changed");
  sockets[0].error(sockets[0].last("update").id, "conflict", "version 1 is not the stored one");
  await assert.rejects(editing, {code: "conflict"});
  assert.equal(model.get("1").body, "mine");
});

test("Comments: a body must have text and at most 2,000 characters (not UTF-16 units)", async () => {
  const {model, sockets} = await comments();
  assert.equal(commentProblem("x".repeat(2000)), null);
  assert.equal(commentProblem("😀".repeat(2000)), null, "2,000 characters, 4,000 UTF-16 units");
  assert.match(commentProblem("x".repeat(2001)), /at most 2,000/);
  assert.match(commentProblem("  \n"), /needs some text/);
  await assert.rejects(model.add("x".repeat(2001)), {code: "bad_request"});
  await assert.rejects(model.add(""), {code: "bad_request"});
  assert.deepEqual(sockets[0].frames("create"), []);
});

test("Comments: only the author's own comments are theirs; an anonymous page owns none", async () => {
  const {model} = await comments({user: "alice"});
  assert.equal(model.mine({author: "alice"}), true);
  assert.equal(model.mine({author: "bob"}), false);
  const anonymous = await comments({user: null});
  assert.equal(anonymous.model.mine({author: null}), false);
  assert.equal(anonymous.model.mine({author: undefined}), false);
});

test("Comments: a reset loads the snapshot again", async () => {
  const env = await comments();
  const {model, sockets} = env;
  model.start();
  sockets[0].push("comments", {document: "d", full: true, comments: []});
  sockets[0].ackAll();
  sockets[0].push("comments", note("create", "1", {author: "b", body: "x", created_at: "t", version: 1}, 5), {cursor: "c-5"});
  const next = await reconnect(env);
  assert.equal(next.last("subscribe").since, "c-5");
  next.push("comments", {reset: true});
  next.ackAll();
  await settle();
  assert.deepEqual(sent(next).at(-1), {action: "subscribe", stream: "comments", document: "d"});
  next.push("comments", {document: "d", full: true, comments: [
    {id: "2", document: "d", author: "c", body: "after", created_at: "t2", version: 1}]});
  assert.deepEqual(model.list().map((c) => c.id), ["2"]);
});

test("Comments: stop unsubscribes", async () => {
  const {model, sockets, client} = await comments();
  model.start();
  sockets[0].ackAll();
  await settle();
  model.stop();
  assert.deepEqual(sent(sockets[0]).at(-1), {action: "unsubscribe", stream: "comments", document: "d"});
  assert.deepEqual(client.subscribed(), []);
});

// ------------------------------------------------------------------ Alerts

test("Alerts: subscribes to alerts and hands each payload as published, once", async () => {
  const {client, sockets} = await open();
  const alerts = new Alerts(client);
  const seen = [];
  alerts.onAlert((payload, frame) => seen.push([payload, frame.event]));
  alerts.start();
  assert.deepEqual(sent(sockets[0]), [{action: "subscribe", stream: "alerts"}]);
  sockets[0].ack(sockets[0].last("subscribe").id, {cursor: "1700000000000"});
  sockets[0].push("alerts", {text: "Your export is ready", url: "/exports/1"}, {cursor: "1700000000001000aaaaaaaa", event: "e1"});
  sockets[0].push("alerts", {text: "Your export is ready", url: "/exports/1"}, {cursor: "1700000000002000aaaaaaaa", event: "e1"});
  assert.deepEqual(seen, [[{text: "Your export is ready", url: "/exports/1"}, "e1"]]);
});

test("Alerts: a reset is not an alert; it says some may have been missed", async () => {
  const env = await open();
  const {client, sockets} = env;
  const alerts = new Alerts(client);
  const seen = [];
  let missed = 0;
  alerts.onAlert((payload) => seen.push(payload));
  alerts.onMissed(() => (missed += 1));
  alerts.start();
  sockets[0].ack(sockets[0].last("subscribe").id, {cursor: "1700000000000"});
  const next = await reconnect(env);
  next.push("alerts", {reset: true});
  assert.deepEqual(seen, []);
  assert.equal(missed, 1);
});

test("Alerts: stop unsubscribes and stops the callbacks", async () => {
  const {client, sockets} = await open();
  const alerts = new Alerts(client);
  const seen = [];
  alerts.onAlert((payload) => seen.push(payload));
  alerts.start();
  sockets[0].ackAll();
  await settle();
  alerts.stop();
  sockets[0].push("alerts", {text: "late"}, {event: "e9"});
  assert.deepEqual(seen, []);
  assert.deepEqual(sent(sockets[0]).at(-1), {action: "unsubscribe", stream: "alerts"});
});
