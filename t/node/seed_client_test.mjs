// End-to-end test: the ORIGINAL browser client @aphorica/server-event-client
// 0.1.5, loaded unmodified from node_modules, driven in Node against a
// mod_sse_mgr server (SPEC.md §2/§3).
//
//   npm ci
//   node seed_client_test.mjs http://127.0.0.1:PORT [prefix]   # prefix default /sse/
//
// Prints one JSON line; exit 0 on success, 1 on failure (with the event log
// on stderr; SEED_TEST_VERBOSE=1 prints the log on success too).
//
// Work-arounds for running a browser-only ES module in Node, none of which
// touches the client's file:
//   * its package.json has no "type": "module" — a module.register() load hook
//     (below) makes Node treat exactly that one file as ESM, independent of
//     Node's syntax detection (on by default only since 20.19);
//   * it reads window.EventSource and the bare global EventSource — we provide
//     window = globalThis and EventSource = eventsource@1.x (CommonJS, loaded
//     via createRequire); its fallback require('eventsource') would throw in
//     ESM, so it must never be reached;
//   * makeID() assigns the undeclared global `status` (window.status in a
//     browser); in strict-mode ESM that is a ReferenceError, so we declare
//     globalThis.status;
//   * disconnect() never closes its EventSource (it only drops the reference),
//     so we keep our own reference and close it, and always end with
//     process.exit() so reconnect timers cannot keep the process alive.

import { createRequire, register } from 'node:module';
import { pathToFileURL } from 'node:url';

const TIMEOUT_MS = 10000;
const require = createRequire(import.meta.url);

const base = (process.argv[2] || '').replace(/\/+$/, '');
const prefix = process.argv[3] || '/sse/';
if (!/^https?:\/\/[^/]+$/.test(base)) {
  console.error('usage: node seed_client_test.mjs http://HOST:PORT [prefix]');
  process.exit(2);
}

// axios honours http_proxy/https_proxy; never send the test's requests to a proxy.
const host = new URL(base).hostname;
for (const k of ['NO_PROXY', 'no_proxy'])
  process.env[k] = [process.env[k], host].filter(Boolean).join(',');

// --- log of everything that happened, printed on failure -------------------
const t0 = Date.now();
const log = [];
const note = (what, detail) => {
  log.push({ t: Date.now() - t0, what, ...(detail === undefined ? {} : { detail }) });
};

let finished = false;
function fail(step, error) {
  if (finished) return;
  finished = true;
  console.error(`seed_client_test: FAILED at ${step}: ${error}`);
  for (const e of log) console.error('  ' + JSON.stringify(e));
  console.log(JSON.stringify({ ok: false, step, error: String(error) }));
  process.exit(1);
}
process.on('unhandledRejection', (err) => fail('unhandledRejection', err && err.stack || err));
process.on('uncaughtException', (err) => fail('uncaughtException', err && err.stack || err));

// --- a minimal `window` for the browser client -----------------------------
globalThis.window = globalThis;
globalThis.EventSource = require('eventsource');   // 1.x CommonJS constructor
globalThis.status = undefined;                      // window.status stand-in

// --- load the unmodified client as an ES module ---------------------------
const clientPath = require.resolve('@aphorica/server-event-client');
const clientURL = pathToFileURL(clientPath).href;
const hooks = `
let target;
export function initialize(data) { target = data.url; }
export async function load(url, context, nextLoad) {
  if (url === target) return nextLoad(url, { ...context, format: 'module' });
  return nextLoad(url, context);
}`;
register('data:text/javascript,' + encodeURIComponent(hooks), {
  parentURL: import.meta.url,
  data: { url: clientURL },
});
const { default: ServerEventClientFactory } = await import(clientURL);

// --- helpers ---------------------------------------------------------------
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitUntil(step, cond, ms = TIMEOUT_MS, poll = 25) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > end) fail(step, `timed out after ${ms} ms`);
    await sleep(poll);
  }
}

async function post(path, json) {
  const url = base + path;
  const init = { method: 'POST', signal: AbortSignal.timeout(TIMEOUT_MS) };
  if (json !== undefined) {
    init.headers = { 'Content-Type': 'application/json' };
    init.body = JSON.stringify(json);
  }
  let rsp, text;
  try {
    rsp = await fetch(url, init);
    text = await rsp.text();
  } catch (err) {
    fail(`POST ${path}`, err);
  }
  note(`POST ${path}`, { status: rsp.status, type: rsp.headers.get('content-type'), body: text });
  if (rsp.status !== 200) fail(`POST ${path}`, `HTTP ${rsp.status}: ${text}`);
  try {
    return JSON.parse(text);
  } catch {
    fail(`POST ${path}`, `body is not JSON: ${JSON.stringify(text)}`);
  }
}

// --- callbacks handed to the client ----------------------------------------
const seen = { registered: null, opened: false, notify: [], completed: [], errors: [], closed: false };
const callbacks = {
  sseRegistered(info) { note('sseRegistered', info); seen.registered = info; },
  sseOpened(state, text) { note('sseOpened', { state, text }); seen.opened = true; },
  sseNotify(info) { note('sseNotify', info); seen.notify.push(info); },
  sseTaskCompleted(taskid) { note('sseTaskCompleted', taskid); seen.completed.push(taskid); },
  sseError(state, text) { note('sseError', { state, text }); seen.errors.push({ state, text }); },
  sseClosed() { note('sseClosed'); seen.closed = true; },
};

// --- the test -------------------------------------------------------------
const name = 'seed-' + Math.random().toString(36).slice(2, 10);
const key = 'news';
const taskid = 'task42';
note('start', { base, prefix, name, node: process.version });

// 1. create: make-id + EventSource on register-listener/{id}
let client;
try {
  client = await ServerEventClientFactory.create(name, base, callbacks, prefix);
} catch (err) {
  fail('create', err && err.stack || err);
}
if (!client) fail('create', 'ServerEventClientFactory.create returned null (make-id failed?)');
const id = client.id;
note('created', { id });
if (typeof id !== 'string' || !id.startsWith(name + '_'))
  fail('make-id', `id ${JSON.stringify(id)} is not "<name>_<suffix>" for name ${name}`);

const es = client.SSESource;          // the client drops this on disconnect()
es.addEventListener('message', (e) => note('raw message', { lastEventId: e.lastEventId, data: e.data }));

await waitUntil('sseOpened', () => seen.opened);
await waitUntil('sseRegistered', () => seen.registered !== null);
if (seen.registered !== id)
  fail('sseRegistered', `registered ${JSON.stringify(seen.registered)}, client.id ${JSON.stringify(id)}`);

// 2. listen (PUT listen/{id}/news), then see it in list-registrants
const listened = await client.listen(key);
note('listen', listened);
if (!listened) fail('listen', 'client.listen returned false');
let lastRegistrants;
await waitUntil('list-registrants shows listen key', async () => {
  lastRegistrants = await client.fetchRegistrants();
  const entry = lastRegistrants && lastRegistrants[id];
  return entry && Array.isArray(entry.listenKeys) && entry.listenKeys.includes(key);
}, TIMEOUT_MS, 100);
note('list-registrants', lastRegistrants && lastRegistrants[id]);

// 3. a notify with a payload first: a named event, which the original
// client ignores (no callback, no error); then the plain notify-listeners/news
// -> {"delivered":1} and sseNotify('news') as its first notification
const withData = await post(`${prefix}notify-listeners/${key}`, { progress: 50 });
if (!withData || withData.delivered !== 1)
  fail('notify-listeners with a payload', `expected {"delivered":1}, got ${JSON.stringify(withData)}`);
const n = await post(`${prefix}notify-listeners/${key}`);
if (!n || n.delivered !== 1) fail('notify-listeners', `expected {"delivered":1}, got ${JSON.stringify(n)}`);
await waitUntil('sseNotify', () => seen.notify.length > 0);
if (seen.notify[0] !== key) fail('sseNotify', `got ${JSON.stringify(seen.notify)}`);

// 4. a completion with a payload (ignored), then notify-completions/{id}/task42
// -> sseTaskCompleted('task42') as its first completion
const cData = await post(`${prefix}notify-completions/${encodeURIComponent(id)}/payload1`,
                         { result: 'ok' });
if (!cData || cData.delivered !== 1)
  fail('notify-completions with a payload', `expected {"delivered":1}, got ${JSON.stringify(cData)}`);
const c = await post(`${prefix}notify-completions/${encodeURIComponent(id)}/${taskid}`);
if (!c || c.delivered !== 1) fail('notify-completions', `expected {"delivered":1}, got ${JSON.stringify(c)}`);
await waitUntil('sseTaskCompleted', () => seen.completed.length > 0);
if (seen.completed[0] !== taskid) fail('sseTaskCompleted', `got ${JSON.stringify(seen.completed)}`);

if (seen.errors.length) fail('payload events', `sseError: ${JSON.stringify(seen.errors)}`);
if (seen.notify.length !== 1 || seen.completed.length !== 1)
  fail('payload events', `the client saw payload events: ${JSON.stringify(seen)}`);

// 5. disconnect -> sseClosed
const disc = await client.disconnect();
note('disconnect', disc);
if (!disc) fail('disconnect', 'client.disconnect returned false');
await waitUntil('sseClosed', () => seen.closed);
es.close();

finished = true;
if (process.env.SEED_TEST_VERBOSE) for (const e of log) console.error('  ' + JSON.stringify(e));
console.log(JSON.stringify({
  ok: true,
  registered: seen.registered,
  notify: seen.notify[0],
  completed: seen.completed[0],
  errors: seen.errors.length,
  ms: Date.now() - t0,
}));
process.exit(0);
