// `npm ci` runs this (package.json "install"): it builds the optional writer
// thread addon (writer.c, binding.gyp) where it can and never fails the
// install. Without the addon the server writes sockets on the event loop and
// says so when it starts (docs/operations.md, "Write path").
// node-gyp's output goes to build/sbwriter-build.log; the terminal gets one line.
"use strict";
const { spawnSync } = require("node:child_process");
const { existsSync, mkdirSync, writeFileSync } = require("node:fs");
const { dirname, join } = require("node:path");

const ROOT = join(__dirname, "..", "..", "..");
const ADDON = join(ROOT, "build", "Release", "sbwriter.node");
const LOG = join(ROOT, "build", "sbwriter-build.log");
const FALLBACK = "sockets will be written on the event loop";

function say(line) {
  console.log(`switchboard: ${line}`);
}

/** node-gyp as [script, args]: npm's own (it sets npm_config_node_gyp for scripts), else the one beside this Node. */
function nodeGyp() {
  const prefix = join(dirname(process.execPath), "..");
  const candidates = [process.env.npm_config_node_gyp, join(prefix, "lib", "node_modules", "npm", "node_modules", "node-gyp", "bin", "node-gyp.js")];
  const script = candidates.find((p) => p && existsSync(p));
  if (script === undefined) return null;
  const args = [script, "rebuild"];
  // Headers installed with this Node spare a download (and work offline).
  if (!process.env.npm_config_nodedir && existsSync(join(prefix, "include", "node", "node_api.h"))) args.push(`--nodedir=${prefix}`);
  return args;
}

/** The cause, in a few words, from node-gyp's output (the whole of it is in the log). */
function cause(out) {
  if (/^gyp ERR! find Python/m.test(out)) return "no Python for node-gyp";
  if (/not found: make\b/.test(out)) return "no make";
  // make's "cc: No such file or directory", a shell's "cc: not found", gyp's FileNotFoundError for $CC.
  const cc = /^(?:make: |\/bin\/sh: (?:\d+: )?)?(\S+): (?:No such file or directory|not found|command not found)$/m.exec(out) ?? /FileNotFoundError: .*No such file or directory: '([^']+)'/.exec(out);
  if (cc) return `no C compiler: ${cc[1]} not found`;
  if (/node_api\.h: No such file/.test(out)) return "no Node.js headers";
  if (/^gyp ERR! stack .*(?:getaddrinfo|ECONNREFUSED|ETIMEDOUT|ENETUNREACH|EAI_AGAIN)/m.test(out)) return "could not download the Node.js headers";
  const err = /^.*\berror\b.*$/m.exec(out) ?? /^gyp ERR! stack Error: .*$/m.exec(out);
  return err ? err[0].replace(/^gyp ERR! stack /, "").trim().slice(0, 160) : "node-gyp failed";
}

function main() {
  if (process.platform !== "linux") return say(`writer thread addon skipped (it is Linux-only, this is ${process.platform}); ${FALLBACK}`);
  if (process.env.SWITCHBOARD_NO_ADDON) return say(`writer thread addon skipped (SWITCHBOARD_NO_ADDON is set); ${FALLBACK}`);
  const args = nodeGyp();
  if (args === null) return say(`writer thread addon not built (node-gyp not found); ${FALLBACK}`);
  const r = spawnSync(process.execPath, args, { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 600_000 });
  const out = `$ ${process.execPath} ${args.join(" ")}\n${r.stdout ?? ""}${r.stderr ?? ""}${r.error ? `\n${r.error.message}\n` : ""}`;
  mkdirSync(dirname(LOG), { recursive: true });
  writeFileSync(LOG, out);
  if (r.status !== 0 || !existsSync(ADDON)) {
    const why = r.error ? r.error.message : cause(out);
    return say(`writer thread addon not built (${why}; build/sbwriter-build.log has the details); ${FALLBACK}`);
  }
  // Loaded once here, so that a symbol this libc lacks shows now rather than at the server's start.
  try {
    require(ADDON);
  } catch (e) {
    return say(`writer thread addon built but does not load (${String(e.message).split("\n")[0]}); ${FALLBACK}`);
  }
  say("writer thread addon built (build/Release/sbwriter.node)");
}

try {
  main();
} catch (e) {
  say(`writer thread addon not built (${e && e.message}); ${FALLBACK}`);
}
process.exitCode = 0;
