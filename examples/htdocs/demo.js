// mod_sse_mgr demo page: the browser's own EventSource and fetch, nothing
// else. A plain message's data is a JSON string "kind^info"; a message
// with a payload is a named event ("notify", "completed") whose data is a
// JSON object (docs/demo.md).
"use strict";

const P = "/sse/";                  // SSEPrefix (and SSEDemoPrefix)
const KEYS = ["listeners-changed", "clock-tick", "progress"];
const $ = (id) => document.getElementById(id);

let source = null;                  // the EventSource of our id
let myId = null;
let ticks = 0;
let asked = 0;                      // list-registrants requests sent

// ---- small helpers ---------------------------------------------------

function log(text, cls) {
  const li = document.createElement("li");
  li.textContent = new Date().toLocaleTimeString() + "  " + text;
  if (cls) li.className = cls;
  $("log").append(li);
  $("log").scrollTop = $("log").scrollHeight;
}

// One request to a route; resolves to the body, rejects with "status body".
async function call(method, path, options) {
  const rsp = await fetch(P + path, Object.assign({ method }, options));
  const body = await rsp.text();
  if (!rsp.ok) throw new Error(rsp.status + " " + body.trim());
  return body;
}

function fail(e) {
  log("error: " + e.message, "error");
}

function cell(tr, text) {
  const td = document.createElement("td");
  td.textContent = text;
  tr.append(td);
  return td;
}

function time(ms) {
  return new Date(ms).toLocaleTimeString();
}

function setState(text) {
  $("state").textContent = text;
  $("state").className = "state " + text;
}

function setRegistered(on) {
  for (const id of ["disconnect", "submit-timeout", "submit-adhoc",
                    "submit-progress", "listen"]) {
    $(id).disabled = !on;
  }
}

// ---- the stream --------------------------------------------------------

// "kind^info" -> [kind, info]; a completion's info is itself JSON.
function parse(data) {
  const text = JSON.parse(data);
  const at = text.indexOf("^");
  return [text.slice(0, at), text.slice(at + 1)];
}

function onMessage(evt) {
  const [kind, info] = parse(evt.data);
  if (kind === "registered") {
    // first event of every (re)connection: (re)subscribe, then show who
    // else is there
    Promise.all(KEYS.map((k) => call("PUT", "listen/" + myId + "/" + k)))
      .then(refresh, fail);
    log("registered  " + info + "  (#" + evt.lastEventId + ")");
  } else if (kind === "notify" && info === "clock-tick") {
    $("clock").textContent = new Date().toTimeString().slice(0, 8);
    $("ticks").textContent = ++ticks;
  } else if (kind === "notify" && info === "listeners-changed") {
    refresh();
  } else if (kind === "notify") {
    log("notify  " + info + "  (#" + evt.lastEventId + ")");
  } else if (kind === "completed") {
    const c = JSON.parse(info);
    completed(c.taskid, c.timestamp);
    log("completed  " + c.taskid + " for " + c.id + "  (#" + evt.lastEventId + ")");
  } else {
    log("unexpected  " + kind + "^" + info, "error");
  }
}

// Payload events. notify on "progress": {name, taskid, percent} of a
// task some tab submitted; ours when the name is ours.
function onNotify(d, evt) {
  if (d.key === "progress" && d.data?.name === nameOf(myId)) {
    progressed(d.data.taskid, d.data.percent);
  }
  log("notify  " + d.key + "  " + JSON.stringify(d.data) + "  (#" + evt.lastEventId + ")");
}

function onCompleted(d, evt) {
  completed(d.taskid, d.timestamp, d.data);
  log("completed  " + d.taskid + " for " + d.id + "  " + JSON.stringify(d.data)
      + "  (#" + evt.lastEventId + ")");
}

function nameOf(id) {
  return id ? id.slice(0, id.lastIndexOf("_")) : null;
}

function open(id) {
  const es = new EventSource(P + "register-listener/" + encodeURIComponent(id));
  let opened = false;
  source = es;
  es.onopen = () => { opened = true; setState("open"); };
  es.onerror = () => {
    if (es !== source) return;
    if (es.readyState === EventSource.CLOSED) return closedByServer(opened);
    setState(["connecting", "open"][es.readyState]);
  };
  es.onmessage = onMessage;
  es.addEventListener("notify", (e) => onNotify(JSON.parse(e.data), e));
  es.addEventListener("completed", (e) => onCompleted(JSON.parse(e.data), e));
  // sent when events were dropped from the history while we were away
  es.addEventListener("missed", (e) => log("missed  " + e.data, "error"));
}

// The browser gave up on the stream for good. After it was open, that is
// the server's 204 to the reconnection of a retired id: someone cleared
// the registrants or disconnected this id. Otherwise the server refused
// the stream (a full table, too many streams from here).
function closedByServer(wasOpen) {
  source = null;
  myId = null;
  setState("closed");
  setRegistered(false);
  $("my-id").textContent = "–";
  log(wasOpen ? "stream closed by the server: this id was cleared or "
                + "disconnected; set a name to register again"
              : "stream refused by the server; set a name to try again",
      "warn");
  refresh();
}

async function setName(evt) {
  evt.preventDefault();
  try {
    if (myId) await disconnect();
    myId = await call("GET", "make-id/" + encodeURIComponent($("name").value));
    $("my-id").textContent = myId;
    setState("connecting");
    open(myId);
    setRegistered(true);
  } catch (e) { fail(e); }
}

async function disconnect() {
  const id = myId;
  myId = null;
  if (source) source.close();
  source = null;
  setState("closed");
  setRegistered(false);
  $("my-id").textContent = "–";
  if (id) await call("GET", "disconnect-registrant/" + id).catch(fail);
  refresh();
}

// ---- tasks ---------------------------------------------------------------

async function submit(taskid) {
  const tr = document.createElement("tr");
  tr.dataset.task = taskid;
  tr.dataset.state = "pending";
  tr.dataset.submitted = Date.now();
  cell(tr, taskid);
  cell(tr, time(Date.now()));
  cell(tr, "pending…");
  cell(tr, "");
  cell(tr, "");
  $("tasks").tBodies[0].prepend(tr);
  try {
    await call("PUT", "submit-task/" + myId + "/" + taskid);
  } catch (e) {
    tr.dataset.state = "failed";
    tr.cells[2].textContent = e.message;
    fail(e);
  }
}

// The oldest pending row of that task: null when another tab of the same
// name submitted it.
function pendingRow(taskid) {
  const rows = [...$("tasks").tBodies[0].rows].reverse();
  return rows.find((r) => r.dataset.task === taskid && r.dataset.state === "pending");
}

// A step of a task that reports progress: a bar and the percentage.
function progressed(taskid, percent) {
  const tr = pendingRow(taskid);
  if (!tr) return;
  const bar = document.createElement("progress");
  bar.max = 100;
  bar.value = percent;
  tr.dataset.percent = percent;
  tr.cells[4].replaceChildren(bar, " " + percent + " %");
}

// The completion, with the task's result when it carries one.
function completed(taskid, timestamp, result) {
  const tr = pendingRow(taskid);
  if (!tr) return;
  tr.dataset.state = "completed";
  tr.cells[2].textContent = time(timestamp);
  tr.cells[3].textContent = ((Date.now() - tr.dataset.submitted) / 1000).toFixed(1) + " s";
  if (result === undefined) return;
  tr.dataset.result = JSON.stringify(result);
  tr.cells[4].textContent = describe(result);
}

// {"result":"done","ms":2003} -> "result: done, ms: 2003"
function describe(value) {
  if (value === null || typeof value !== "object") return String(value);
  return Object.entries(value)
    .map(([k, v]) => k + ": " + (typeof v === "object" ? JSON.stringify(v) : v))
    .join(", ");
}

// ---- registrants ---------------------------------------------------------

// Refreshes overlap (each listeners-changed asks for one): only the answer
// to the newest request is shown, so an older answer arriving late cannot
// bring back a stale list.
async function refresh() {
  const mine = ++asked;
  let all;
  try {
    all = JSON.parse(await call("GET", "list-registrants"));
  } catch (e) { return fail(e); }
  if (mine === asked) show(all);
}

// One row per listener, as the server lists it.
function show(all) {
  const body = $("registrants").tBodies[0];
  body.replaceChildren();
  for (const [id, r] of Object.entries(all)) {
    const tr = document.createElement("tr");
    tr.dataset.id = id;
    if (id === myId) tr.className = "me";
    cell(tr, id);
    cell(tr, r.listenKeys.join(", "));
    cell(tr, time(r["registered-ts"]));
    cell(tr, r.connected ? "connected" : "away");
    body.append(tr);
  }
}

// ---- wiring --------------------------------------------------------------

$("name-form").onsubmit = setName;
$("disconnect").onclick = disconnect;
$("submit-timeout").onclick = () => submit("timeout_task");
$("submit-adhoc").onclick = () => submit("ad-hoc");
$("submit-progress").onclick = () => submit("progress");
$("listen").onclick = () => {
  const key = $("key").value;
  call("PUT", "listen/" + myId + "/" + encodeURIComponent(key))
    .then(() => { log("listening to " + key); refresh(); }, fail);
};
$("notify-form").onsubmit = (evt) => {
  evt.preventDefault();
  const key = $("key").value;
  call("POST", "notify-listeners/" + encodeURIComponent(key))
    .then((b) => log("notified " + key + ": " + JSON.parse(b).delivered + " listener(s)"), fail);
};
$("refresh").onclick = refresh;
$("clear").onclick = () => call("GET", "clear-registrants").then(refresh, fail);
$("cleanup").onclick = () => call("GET", "trigger-cleanup").then(refresh, fail);

// Leaving the page removes our listener, so it does not linger (holding
// clock-tick) until it turns dormant.
window.addEventListener("pagehide", () => {
  if (myId) fetch(P + "disconnect-registrant/" + myId, { keepalive: true });
});

refresh();
