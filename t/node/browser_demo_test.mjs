// The demo page (examples/htdocs) in a real browser: Debian's headless
// chromium driven by playwright-core. Sets a name, watches the clock tick,
// finds itself (and then a second tab) in the live registrants list,
// submits timeout_task and ad-hoc and sees both completions arrive.
//
//   node browser_demo_test.mjs <page url> <screenshot.png> <user-data-dir>
//
// Prints one JSON line and exits 0, or exits 1 with the reason on stderr.
import { chromium } from "playwright-core";

const [url, screenshot, userDataDir] = process.argv.slice(2);
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const STEP_MS = 10000;
const problems = [];               // console errors and page errors

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

async function setName(page, name) {
  await page.fill("#name", name);
  await page.click("#set-name");
  await step("the id shows", page.waitForFunction(
    (n) => new RegExp("^" + n + "_[A-Za-z0-9]+$")
      .test(document.getElementById("my-id").textContent), name,
    { timeout: STEP_MS }));
  await step("the stream opens", page.waitForFunction(
    () => document.getElementById("state").textContent === "open",
    null, { timeout: STEP_MS }));
  return page.textContent("#my-id");
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

    const other = await context.newPage();
    watch(other, "tab 2");
    await step("a second tab loads", other.goto(url, { timeout: STEP_MS }));
    const otherId = await setName(other, "second");
    await step("the second tab shows up live in the first",
               rowOf(page, otherId));

    // a background tab's timers are throttled to once a second
    await page.bringToFront();
    const timeoutMs = await runTask(page, "#submit-timeout", "timeout_task");
    const adhocMs = await runTask(page, "#submit-adhoc", "ad-hoc");
    const ticks = Number(await page.textContent("#ticks"));
    // what carried the page and the stream: h2, http/1.1
    const protocol = await page.evaluate(() =>
      performance.getEntriesByType("navigation")[0].nextHopProtocol);
    await page.screenshot({ path: screenshot, fullPage: true });
    await other.close({ runBeforeUnload: true });
    // its pagehide sends disconnect-registrant (keepalive): the first tab's
    // list drops the row once the server says the listeners changed. Wait
    // for that before the browser goes, or the request may never leave.
    await step("the closed tab leaves the first tab's list",
               page.waitForSelector(`#registrants tr[data-id="${otherId}"]`,
                                    { state: "detached", timeout: STEP_MS }));
    if (problems.length) throw new Error(problems.join("; "));
    console.log(JSON.stringify({ ok: true, id, otherId, timeoutMs, adhocMs,
                                 ticks, protocol }));
  } finally {
    await context.close();
  }
}

// Never hang: whatever happens, end within a minute.
const guard = setTimeout(() => {
  console.error("browser test: no result within 60 s");
  process.exit(1);
}, 60000);

main().then(() => {
  clearTimeout(guard);
  process.exit(0);
}, (e) => {
  console.error("browser test failed: " + e.message);
  process.exit(1);
});
