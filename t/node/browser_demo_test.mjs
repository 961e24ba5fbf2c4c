// The demo page (examples/htdocs) in a real browser: Debian's headless
// chromium driven by playwright-core. Sets a name, watches the clock tick,
// finds itself (and then a second tab) in the live registrants list,
// submits timeout_task and ad-hoc and sees both completions arrive, then
// progress: the percentages its row shows (from `notify` events with data),
// its result (a `completed` event with data) and their lines in Events.
// Then the list must stay live (two tabs of one browser):
//   own row    a key this tab listens to shows in its own row
//   other row  the second tab's keys show in its row in the first tab,
//              including one it listens to later
//   cleared    after the second tab's "Clear registrants" the first tab's
//              Events say why its stream closed, and its table shows what
//              list-registrants says (no row left "connected")
// A failed live check is reported and the flow goes on, so one run names
// every stale case; any of them fails the test.
//
//   node browser_demo_test.mjs <page url> <screenshot.png> <user-data-dir>
//
// Prints one JSON line and exits 0, or exits 1 with the reason on stderr.
import { chromium } from "playwright-core";

const [url, screenshot, userDataDir] = process.argv.slice(2);
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const STEP_MS = 10000;
const LIVE_MS = 5000;              // a listeners-changed refresh
const CLOSED_MS = 10000;           // retry: 3 s, then the 204 of a retired id
const CLOSED_WHY = "stream closed by the server";
const problems = [];               // console errors and page errors
const stale = [];                  // live checks that failed
const live = [];                   // live checks that passed

function step(what, promise) {
  return promise.catch((e) => {
    throw new Error(what + ": " + e.message.split("\n")[0]);
  });
}

function watch(page, who) {
  page.on("console", (m) => {
    if (m.type() === "error") {
      problems.push(who + " console: " + m.text() + " (" + m.location().url + ")");
    }
  });
  page.on("pageerror", (e) => problems.push(who + " page error: " + e.message));
}

// Set a name: the new id (another one than @a before, when given).
async function setName(page, name, before) {
  await page.fill("#name", name);
  await page.click("#set-name");
  await step("the id shows", page.waitForFunction(
    ([n, b]) => {
      const id = document.getElementById("my-id").textContent;
      return id !== b && new RegExp("^" + n + "_[A-Za-z0-9]+$").test(id);
    }, [name, before], { timeout: STEP_MS }));
  await step("the stream opens", page.waitForFunction(
    () => document.getElementById("state").textContent === "open",
    null, { timeout: STEP_MS }));
  return page.textContent("#my-id");
}

// A live check: on failure say what the page shows, and go on.
async function expect(what, check, shows) {
  try {
    await check();
    live.push(what);
  } catch (e) {
    stale.push(what + ": " + e.message.split("\n")[0] + "; the page shows "
               + JSON.stringify(await shows().catch((e2) => e2.message)));
  }
}

// The registrants table as [id, listen keys, stream] rows.
function table(page) {
  return page.$$eval("#registrants tbody tr", (trs) => trs.map((tr) =>
    [tr.dataset.id, tr.cells[1].textContent, tr.cells[3].textContent]));
}

function keysShown(page, id, keys) {
  return page.waitForFunction(([i, ks]) => {
    const tr = document.querySelector(`#registrants tr[data-id="${i}"]`);
    const shown = tr ? tr.cells[1].textContent.split(", ") : [];
    return ks.every((k) => shown.includes(k));
  }, [id, keys], { timeout: LIVE_MS });
}

// "" when the table lists what list-registrants says, with the same
// stream states; else the difference.
function tableVsServer(page) {
  return page.evaluate(async () => {
    const all = await (await fetch("/sse/list-registrants")).json();
    const want = Object.entries(all).map(([id, r]) =>
      id + " " + (r.connected ? "connected" : "away")).sort();
    const have = [...document.querySelectorAll("#registrants tbody tr")]
      .map((tr) => tr.dataset.id + " " + tr.cells[3].textContent).sort();
    return JSON.stringify(want) === JSON.stringify(have) ? ""
      : "server " + JSON.stringify(want) + ", table " + JSON.stringify(have);
  });
}

async function matchesServer(page, ms) {
  const until = Date.now() + ms;
  let diff = await tableVsServer(page);
  while (diff && Date.now() < until) {
    await page.waitForTimeout(100);
    diff = await tableVsServer(page);
  }
  if (diff) throw new Error("table is not the server's list: " + diff);
}

async function listen(page, key) {
  await page.fill("#key", key);
  await page.click("#listen");
}

function logText(page) {
  return page.textContent("#log");
}

function rowOf(page, id) {
  return page.waitForSelector(`#registrants tr[data-id="${id}"]`,
                              { timeout: STEP_MS });
}

// Click a task button; ms until its row in #tasks reads completed.
async function runTask(page, button, task) {
  const before = await page.locator(`#tasks tr[data-task="${task}"]`).count();
  const t0 = Date.now();
  await page.click(button);
  await step(task + " completes", page.waitForFunction(
    ([t, n]) => [...document.querySelectorAll(`#tasks tr[data-task="${t}"]`)]
      .filter((r) => r.dataset.state === "completed").length > n,
    [task, before], { timeout: STEP_MS, polling: 50 }));
  return Date.now() - t0;
}

// Click progress and wait for its row to complete: the percentages the
// row showed, in order, the result it shows, and the Events lines of the
// task's payload events.
async function runProgress(page) {
  await page.evaluate(() => {
    window.seenPercents = [];
    new MutationObserver((records) => records.forEach((m) =>
      window.seenPercents.push(Number(m.target.dataset.percent))))
      .observe(document.getElementById("tasks"),
               { subtree: true, attributeFilter: ["data-percent"] });
  });
  const ms = await runTask(page, "#submit-progress", "progress");
  return page.evaluate((took) => {
    const tr = document.querySelector('#tasks tr[data-task="progress"]');
    const log = [...document.querySelectorAll("#log li")]
      .map((li) => li.textContent)
      .filter((l) => /(notify|completed) {2}progress /.test(l));
    return { ms: took, percents: window.seenPercents,
             result: tr.dataset.result, shown: tr.cells[4].textContent,
             log };
  }, ms);
}

async function main() {
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync"],
    viewport: { width: 1100, height: 1000 },
    ignoreHTTPSErrors: true,      // the https run's certificate is the test's
  });
  try {
    const page = context.pages()[0] || await context.newPage();
    watch(page, "tab 1");
    await step("the page loads", page.goto(url, { timeout: STEP_MS }));
    const id = await setName(page, "browser");
    await step("the clock ticks", page.waitForFunction(
      () => Number(document.getElementById("ticks").textContent) >= 2,
      null, { timeout: STEP_MS }));
    await step("we are in the registrants list", rowOf(page, id));

    await expect("own row: a key this tab listens to shows in its row",
                 async () => {
                   await listen(page, "news");
                   await keysShown(page, id, ["news"]);
                 }, () => table(page));

    const other = await context.newPage();
    watch(other, "tab 2");
    await step("a second tab loads", other.goto(url, { timeout: STEP_MS }));
    let otherId = await setName(other, "second");
    await step("the second tab shows up live in the first",
               rowOf(page, otherId));
    await expect("other row: the second tab's keys show in the first tab",
                 () => keysShown(page, otherId,
                                 ["listeners-changed", "clock-tick"]),
                 () => table(page));
    await expect("other row: a key the second tab listens to shows in the "
                 + "first", async () => {
                   await listen(other, "sport");
                   await keysShown(page, otherId, ["sport"]);
                 }, () => table(page));

    // a background tab's timers are throttled to once a second
    await page.bringToFront();
    const timeoutMs = await runTask(page, "#submit-timeout", "timeout_task");
    const adhocMs = await runTask(page, "#submit-adhoc", "ad-hoc");
    const progress = await runProgress(page);
    const ticks = Number(await page.textContent("#ticks"));
    // what carried the page and the stream: h2, http/1.1
    const protocol = await page.evaluate(() =>
      performance.getEntriesByType("navigation")[0].nextHopProtocol);
    await page.screenshot({ path: screenshot, fullPage: true });

    // the server ends every stream; the first tab's EventSource retries
    // after retry: and gets 204 for its retired id
    await other.click("#clear");
    await expect("cleared: the first tab's Events say why its stream closed",
                 () => page.waitForFunction(
                   (why) => document.getElementById("log").textContent
                     .includes(why), CLOSED_WHY, { timeout: CLOSED_MS }),
                 () => logText(page));
    await expect("cleared: the first tab's table shows the server's list",
                 () => matchesServer(page, LIVE_MS), () => table(page));

    // set a name again: both tabs come back, and the first sees the second
    const id2 = await setName(page, "browser", id);
    otherId = await setName(other, "second", otherId);
    await step("the second tab, back, shows up in the first",
               rowOf(page, otherId));
    await other.close({ runBeforeUnload: true });
    // its pagehide sends disconnect-registrant (keepalive): the first tab's
    // list drops the row once the server says the listeners changed. Wait
    // for that before the browser goes, or the request may never leave.
    await step("the closed tab leaves the first tab's list",
               page.waitForSelector(`#registrants tr[data-id="${otherId}"]`,
                                    { state: "detached", timeout: STEP_MS }));
    if (stale.length) {
      problems.push("the registrants list is not live: "
                    + stale.splice(0).join("; "));
    }
    if (problems.length) throw new Error(problems.join("; "));
    console.log(JSON.stringify({ ok: true, id: id2, otherId, timeoutMs,
                                 adhocMs, progress, ticks, protocol, live }));
  } finally {
    await context.close();
  }
}

// Never hang: whatever happens, end within 80 s (a page whose list is
// stale waits out every live check).
const guard = setTimeout(() => {
  console.error("browser test: no result within 80 s"
                + (stale.length ? "; stale: " + stale.join("; ") : ""));
  process.exit(1);
}, 80000);

main().then(() => {
  clearTimeout(guard);
  process.exit(0);
}, (e) => {
  console.error("browser test failed: " + e.message
                + (stale.length ? "; stale: " + stale.join("; ") : ""));
  process.exit(1);
});
