// One EventSource per browser for every tab of a site (a SharedWorker).
//
// Over HTTP/1.1 a browser opens at most 6 connections to one host, and an
// EventSource holds one for its life: a site whose tabs each open their
// own stream runs out after 6 tabs, and the rest of its pages wait. This
// worker holds the browser's one stream and hands its events to every
// tab. It uses the original client's routes only (make-id,
// register-listener, listen), so it works against mod_sse_mgr or the
// original server alike. docs/operations.md shows how a page uses it.
//
// A tab sends:  {type: "start", base: "https://sse.example.com/sse/",
//                name: "alice"}    -> gets {type: "id", id}
//               {type: "listen", key}  -> gets {type: "listening", key}
//                                         (once the stream is open)
//               {type: "bye"}          (on pagehide)
// and receives: {type: "message", data, seq}  (each event, data parsed)
//               {type: "state", state}        ("open", "connecting", ...)
"use strict";

const ports = new Set();
let base = null;
let ready = null;          // Promise of our id, once started
let source = null;

function broadcast(msg) {
  for (const p of ports) p.postMessage(msg);
}

async function call(method, path) {
  const r = await fetch(base + path, { method });
  if (!r.ok) throw new Error(method + " " + path + ": HTTP " + r.status);
  return r.text();
}

function open(id) {
  source = new EventSource(base + "register-listener/" + encodeURIComponent(id));
  const state = () => ["connecting", "open", "closed"][source.readyState];
  source.onopen = () => broadcast({ type: "state", state: state() });
  source.onerror = () => broadcast({ type: "state", state: state() });
  source.onmessage = (e) =>
    broadcast({ type: "message", data: JSON.parse(e.data), seq: e.lastEventId });
}

// The id, once its stream is open: register-listener makes the listener,
// so a listen before that would find none (404).
function start(msg) {
  if (!ready) {
    base = msg.base;
    ready = call("GET", "make-id/" + encodeURIComponent(msg.name)).then((id) =>
      new Promise((resolve) => {
        open(id);
        source.addEventListener("open", () => resolve(id), { once: true });
      }));
  }
  return ready;
}

async function handle(port, msg) {
  try {
    if (msg.type === "start") {
      port.postMessage({ type: "id", id: await start(msg) });
      port.postMessage({ type: "state", state: ["connecting", "open", "closed"][source.readyState] });
    } else if (msg.type === "listen") {
      const id = await ready;
      await call("PUT", "listen/" + encodeURIComponent(id) + "/" + encodeURIComponent(msg.key));
      port.postMessage({ type: "listening", key: msg.key });
    } else if (msg.type === "bye") {
      ports.delete(port);
    }
  } catch (e) {
    port.postMessage({ type: "error", message: String(e) });
  }
}

onconnect = (e) => {
  const port = e.ports[0];
  ports.add(port);
  port.onmessage = (m) => handle(port, m.data);
  port.start();
};
