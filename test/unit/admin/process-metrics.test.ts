import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import { Registry } from "prom-client";
import { processMetrics, processOpenFds } from "../../../src/admin/process-metrics.js";

/** Counts the calls to obj[name] while `during` runs. */
async function counting<T extends object>(obj: T, name: keyof T & string, during: () => Promise<unknown>): Promise<number> {
  const o = obj as Record<string, unknown>;
  const orig = o[name] as (...a: unknown[]) => unknown;
  let n = 0;
  o[name] = function (this: unknown, ...a: unknown[]) {
    n++;
    return orig.apply(this, a);
  };
  try {
    await during();
  } finally {
    o[name] = orig;
  }
  return n;
}

test("a scrape walks neither the descriptors nor the libuv handles on the event loop", { timeout: 10_000 }, async () => {
  const reg = new Registry();
  processMetrics(reg);
  await reg.metrics(); // prom-client's first collection of some metrics differs; count a later one
  let text = "";
  const walks =
    (await counting(fs, "readdirSync", async () => {
      text = await reg.metrics();
    })) +
    (await counting(process as unknown as Record<string, unknown>, "_getActiveHandles", () => reg.metrics())) +
    (await counting(process as unknown as Record<string, unknown>, "getActiveResourcesInfo", () => reg.metrics()));
  assert.equal(walks, 0, "no readdirSync of /proc/self/fd, no list of every handle or resource");
  for (const kept of ["process_cpu_user_seconds_total", "process_resident_memory_bytes", "nodejs_heap_size_used_bytes", "nodejs_gc_duration_seconds", "nodejs_eventloop_lag_p99_seconds", "process_max_fds"]) {
    assert.match(text, new RegExp(`^# TYPE ${kept} `, "m"), kept);
  }
  for (const gone of ["nodejs_active_handles", "nodejs_active_resources"]) assert.doesNotMatch(text, new RegExp(`^# TYPE ${gone}`, "m"), gone);
  if (process.platform === "linux") assert.match(text, /^process_open_fds \d+/m);
});

test("process_open_fds counts what is open, as a listing of /proc/self/fd does", { skip: process.platform !== "linux" && "Linux only (/proc)", timeout: 10_000 }, async () => {
  const opened: number[] = [];
  try {
    for (let i = 0; i < 500; i++) opened.push(fs.openSync("/dev/null", "r"));
    const listed = fs.readdirSync("/proc/self/fd").length - 1;
    assert.equal(await processOpenFds(), listed);
    const reg = new Registry();
    processMetrics(reg);
    const m = /^process_open_fds (\d+)/m.exec(await reg.metrics());
    assert.equal(Number(m?.[1]), listed);
  } finally {
    for (const fd of opened) fs.closeSync(fd);
  }
});
