// The harness stops what it started on every failure path: a browser that cannot start (the
// server started beside it is stopped and the run fails in seconds instead of hanging), and a
// signal to the test process. Each case runs in a child node process whose TMPDIR is a fresh
// directory; the server's data directory and Chromium's profile live there, so any process
// left behind still names it on its command line (pgrep -f) and nothing may be left inside it.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { agentsDir, sleep } from "./harness.mjs";

/** Runs node with `args` in agents/, TMPDIR set to a fresh directory; resolves when it exits. */
function runNode(args, env = {}) {
  const marker = mkdtempSync(join(tmpdir(), "harness-cleanup-"));
  // Without NODE_TEST_CONTEXT the child's `node --test` reports as a top-level run would.
  const { NODE_TEST_CONTEXT, ...parentEnv } = process.env;
  const child = spawn(process.execPath, args, {
    cwd: agentsDir,
    env: { ...parentEnv, TMPDIR: marker, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  return { child, marker, exited, output: () => output };
}

/** Waits up to `ms` for the run to end; kills it (and fails) if it does not. */
async function within(run, ms) {
  const started = Date.now();
  const timer = setTimeout(() => run.child.kill("SIGKILL"), ms);
  const result = await run.exited;
  clearTimeout(timer);
  return { ...result, seconds: (Date.now() - started) / 1000 };
}

function leftovers(marker) {
  const pids = spawnSync("pgrep", ["-f", marker], { encoding: "utf8" }).stdout.trim();
  const files = readdirSync(marker);
  return { pids, files };
}

/** Kills whatever a failed assertion left behind (by pid: only processes naming this run's
 *  unique directory), so this test never leaks either. */
function cleanUp(marker) {
  for (const pid of leftovers(marker).pids.split("\n").filter(Boolean)) {
    try {
      process.kill(Number(pid), "SIGKILL");
    } catch {}
  }
  rmSync(marker, { recursive: true, force: true });
}

test("a browser test file whose Chromium cannot start fails within seconds and leaves no server or browser behind", async () => {
  const run = runNode(["--test", "--test-reporter=spec", "test/browser/apps.test.mjs"], { CHROMIUM_PATH: "/nonexistent/chromium" });
  try {
    const { code, seconds } = await within(run, 60_000);
    assert.notEqual(code, 0, run.output());
    assert.ok(seconds < 30, `took ${seconds} s:\n${run.output()}`);
    assert.match(run.output(), /no Chromium at \/nonexistent\/chromium/);
    await sleep(200);
    assert.deepEqual(leftovers(run.marker), { pids: "", files: [] }, run.output());
  } finally {
    cleanUp(run.marker);
  }
});

test("SIGTERM to a test process stops the server it started and exits", async () => {
  const script = `
    import { startAnalytics } from "./test/browser/harness.mjs";
    await startAnalytics();
    console.log("started");
    setInterval(() => {}, 1000); // a test that would never end
  `;
  const run = runNode(["--input-type=module", "-e", script]);
  try {
    const deadline = Date.now() + 60_000;
    while (!run.output().includes("started") && run.child.exitCode === null && Date.now() < deadline) await sleep(100);
    assert.match(run.output(), /started/);
    assert.notEqual(leftovers(run.marker).pids, "", "the server runs before the signal");
    run.child.kill("SIGTERM");
    const { code, seconds } = await within(run, 30_000);
    assert.equal(code, 143, run.output());
    assert.ok(seconds < 15, `took ${seconds} s`);
    await sleep(200);
    assert.deepEqual(leftovers(run.marker), { pids: "", files: [] }, run.output());
  } finally {
    cleanUp(run.marker);
  }
});
