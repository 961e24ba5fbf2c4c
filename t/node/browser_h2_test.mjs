// Streams from a real browser (Debian's headless chromium, playwright-core)
// to a site on HTTP/2 over TLS, as t/test_browser_h2.py sets it up:
// www.test (h2 and http/1.1) serves the pages, sse.test (http/1.1 only, a
// certificate of its own) the dedicated SSE host; both map to 127.0.0.1.
//
//   node browser_h2_test.mjs <scenario> <config.json>
//
// Scenarios (each in a fresh browser profile):
//   same-origin  one tab, its own EventSource on the h2 origin (SSEHTTP2
//                downgrade sends it to HTTP/1.1); then ten such tabs
//   tabs         ten tabs sharing one stream to sse.test through
//                shared-stream-worker.js; page requests on www.test
//                beside them; tabs closed and reopened many times
//
// Prints one JSON line of measurements and exits 0, or exits 1 with the
// reason on stderr. The Python side asserts on the JSON.
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";

const [scenario, configPath] = process.argv.slice(2);
const cfg = JSON.parse(readFileSync(configPath, "utf8"));
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const STEP_MS = 10000;
const problems = [];

function step(what, promise) {
  return promise.catch((e) => {
    throw new Error(what + ": " + e.message.split("\n")[0] +
                    (problems.length ? " [" + problems.join("; ") + "]" : ""));
  });
}

function watch(page, who) {
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(who + " console: " + m.text());
  });
  page.on("pageerror", (e) => problems.push(who + " page error: " + e.message));
}

async function publish(key) {
  const r = await fetch(cfg.publish + "notify-listeners/" + key, { method: "POST" });
  return (await r.json()).delivered;
}

async function registrants() {
  return (await fetch(cfg.publish + "list-registrants")).json();
}

async function connectedNamed(prefix) {
  const regs = await registrants();
  return Object.keys(regs).filter((id) => id.startsWith(prefix + "_")
                                  && regs[id].connected).length;
}

async function busyWorkers() {
  const text = await (await fetch(cfg.status)).text();
  return Number(/BusyWorkers: (\d+)/.exec(text)[1]);
}

async function waitFor(what, cond, ms = STEP_MS) {
  const until = Date.now() + ms;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > until) throw new Error("timed out: " + what);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// A same-origin request from the page: how long it took, over what.
async function pageRequest(page, tag) {
  return page.evaluate(async (tag) => {
    const url = new URL("/page.txt?" + tag, location.href).href;
    const t0 = performance.now();
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), 5000);
    try {
      await (await fetch(url, { signal: ctl.signal, cache: "no-store" })).text();
    } catch (e) {
      return { ms: null, protocol: null, error: String(e) };
    } finally {
      clearTimeout(timer);
    }
    const ms = performance.now() - t0;
    const entry = performance.getEntriesByName(url).pop();
    return { ms, protocol: entry ? entry.nextHopProtocol : null };
  }, tag);
}

function seen(page) {
  return page.evaluate(() => window.sseSeen.slice());
}

async function launch() {
  return chromium.launchPersistentContext(cfg.profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync",
           // the test certificates, for workers too (not only pages)
           "--ignore-certificate-errors",
           "--host-resolver-rules=MAP www.test 127.0.0.1, MAP sse.test 127.0.0.1"],
    ignoreHTTPSErrors: true,
  });
}

async function sameOrigin(context) {
  const url = cfg.www + "/own-source.html?name=solo&key=ka";
  const page = context.pages()[0] || await context.newPage();
  watch(page, "tab");
  await step("the page loads", page.goto(url, { timeout: STEP_MS }));
  const navProtocol = await page.evaluate(() =>
    performance.getEntriesByType("navigation")[0].nextHopProtocol);
  await step("the stream opens and listens",
             page.waitForFunction(() => window.sseListening, null, { timeout: STEP_MS }));
  const delivered = await publish("ka");
  await step("the event arrives", page.waitForFunction(
    () => window.sseSeen.includes("notify^ka"), null, { timeout: STEP_MS }));
  const errors = await page.evaluate(() => window.sseErrors);
  const after = await pageRequest(page, "after");
  const busy = await busyWorkers();
  const again = await context.newPage();
  watch(again, "tab 2");
  await again.goto(cfg.www + "/page.html", { timeout: STEP_MS });
  const secondNavProtocol = await again.evaluate(() =>
    performance.getEntriesByType("navigation")[0].nextHopProtocol);
  await again.close();
  await page.close();

  // ten tabs, each with its own stream on the page's origin: how many
  // load, how many streams open, whether a page request gets through
  const tabs = [], navigations = [];
  for (let i = 0; i < 10; i++) {
    const t = await context.newPage();
    tabs.push(t);
    const t0 = Date.now();
    try {
      await t.goto(cfg.www + "/own-source.html?name=own",
                   { timeout: 5000, waitUntil: "commit" });
      navigations.push(Date.now() - t0);
    } catch (e) {
      navigations.push(null);         // waited 5 s and more
    }
  }
  await new Promise((r) => setTimeout(r, 2000));
  const ownOpen = await connectedNamed("own");
  const beside = await pageRequest(tabs[0], "beside-own");
  for (const t of tabs) await t.close();
  return { navProtocol, delivered, errors, afterProtocol: after.protocol,
           afterMs: after.ms, busy, secondNavProtocol, tenTabs: {
             streamsOpen: ownOpen, navigations, pageRequest: beside } };
}

async function openTab(context, i) {
  const t = await context.newPage();
  watch(t, "tab " + i);
  const url = cfg.www + "/shared-stream.html?name=tabs&keys=kb&sse=" +
              encodeURIComponent(cfg.sse);
  await step("tab " + i + " loads", t.goto(url, { timeout: STEP_MS }));
  await step("tab " + i + " sees the stream open", t.waitForFunction(
    () => document.getElementById("state").textContent === "open",
    null, { timeout: STEP_MS }));
  return t;
}

async function sharedTabs(context) {
  let tabs = [];
  for (let i = 0; i < 10; i++) tabs.push(await openTab(context, i));
  const ids = new Set(await Promise.all(tabs.map((t) => t.textContent("#id"))));
  // the worker's listen of kb went before or after the first tab's call
  await waitFor("the listener holds kb", async () => {
    const regs = await registrants();
    return Object.values(regs).some((r) => r.connected
                                     && (r.listenKeys || []).includes("kb"));
  });
  const rounds = [];
  const requests = [];
  let streams = await connectedNamed("tabs");
  const busy = await busyWorkers();
  let n = 10;
  for (let cycle = 0; cycle < 6; cycle++) {
    const key = "kb"; // the listener keeps its key through the cycles
    const before = (await Promise.all(tabs.map(seen))).map((s) => s.length);
    const delivered = await publish(key);
    for (let i = 0; i < tabs.length; i++) {
      await step("tab " + i + " gets round " + cycle, tabs[i].waitForFunction(
        (n) => window.sseSeen.length > n, before[i], { timeout: STEP_MS }));
    }
    for (let i = 0; i < tabs.length; i++) {
      requests.push(await pageRequest(tabs[i], "c" + cycle + "t" + i));
    }
    rounds.push({ delivered, streams: await connectedNamed("tabs") });
    // close half the tabs, open as many new ones
    for (const t of tabs.splice(0, 5)) await t.close({ runBeforeUnload: true });
    for (let i = 0; i < 5; i++) tabs.push(await openTab(context, n++));
  }
  streams = await connectedNamed("tabs");
  for (const t of tabs) await t.close({ runBeforeUnload: true });
  const afterAllClosed = await waitFor("the stream ends with the last tab",
    async () => (await connectedNamed("tabs")) === 0 ? "closed" : null)
    .catch(() => "still open");
  return { ids: [...ids], streams, busy, rounds, requests, afterAllClosed,
           tabsOpened: n };
}

async function main() {
  const context = await launch();
  try {
    const result = scenario === "same-origin" ? await sameOrigin(context)
                                              : await sharedTabs(context);
    if (problems.length) throw new Error(problems.join("; "));
    console.log(JSON.stringify({ ok: true, scenario, ...result }));
  } finally {
    await context.close();
  }
}

const guard = setTimeout(() => {
  console.error("browser test: no result within 150 s");
  process.exit(1);
}, 150000);

main().then(() => {
  clearTimeout(guard);
  process.exit(0);
}, (e) => {
  console.error("browser test failed: " + e.message);
  process.exit(1);
});
