#!/usr/bin/env node
import { availableParallelism } from "node:os";
import { setFlagsFromString } from "node:v8";
import { loadConfig, defaults, validate, ConfigError, type Config } from "../config/config.js";
import { openStorage } from "../store/open.js";
import { createLogger } from "../log/logger.js";
import { Authenticator } from "../auth/authenticator.js";
import { deriveCredentials } from "../store/scram.js";
import { importUsers, readUserFile } from "./users.js";
import { runHost } from "../host/host.js";
import { OpsError, clusterStatus, formatSessions, formatStatus, listSessions, parseOpsArgs } from "./cluster.js";

const USAGE = `usage: switchboard <command> [--config FILE]

  start                         run the server
  users add USER PASSWORD       create an account (or set its password)
  users delete USER             remove an account
  users list                    list accounts
  users import FILE             create accounts from "user,password" lines
  token USER [SECONDS]          print a relay auth token (needs auth.tokenSecret)
  cluster status [--json]       hosts, workers, ring shares, sessions, bus round trips,
                                read from the live cluster over NATS (docs/cluster.md)
  sessions [JID] [--json]       who is connected where (all, or one full or bare JID)
      both take --timeout MS    how long to wait for every worker's answer (2000)

Without --config the embedded defaults are used (see config.example.json).`;

function parseArgs(argv: string[]): { args: string[]; config: string | null } {
  const args: string[] = [];
  let config: string | null = null;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--config" || argv[i] === "-c") {
      config = argv[++i] ?? null;
      if (config === null) throw new UsageError("--config needs a file");
    } else if (argv[i].startsWith("--config=")) config = argv[i].slice(9);
    else if (argv[i] === "--help" || argv[i] === "-h") throw new UsageError("");
    else args.push(argv[i]);
  }
  return { args, config };
}

class UsageError extends Error {}

async function main(argv: string[]): Promise<number> {
  const { args, config: file } = parseArgs(argv);
  const config: Config = file === null ? validate(defaults()) : loadConfig(file);
  const [cmd, sub, ...rest] = args;

  if (cmd === "start") {
    // Baseline code for every function on its first call, instead of the interpreter
    // until V8 has seen enough calls: the first second of a load burst otherwise runs
    // at about half speed and queues (docs/benchmarks.md). Set before the server's
    // functions first run; forked workers run this same line.
    setFlagsFromString("--always-sparkplug");
    await runHost(config, config.cluster.workers === 0 ? availableParallelism() : config.cluster.workers);
    return -1; // keep running
  }

  if (cmd === "token") {
    const user = Authenticator.normalizeUser(sub);
    if (user === null) throw new UsageError("token needs a USER");
    if (config.auth.tokenSecret === null) throw new ConfigError("auth.tokenSecret", "must be set to issue tokens");
    console.log(Authenticator.mintToken(config.auth.tokenSecret, user, Number(rest[0] ?? 3600)));
    return 0;
  }

  if (cmd === "cluster" || cmd === "sessions") {
    if (cmd === "cluster" && sub !== "status") throw new UsageError(`unknown cluster command ${sub ?? ""}`);
    let o;
    try {
      o = parseOpsArgs(cmd === "cluster" ? rest : args.slice(1));
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    // Incomplete (a member did not answer, or the members disagree on the ring): printed, and exit 1 for scripts.
    if (cmd === "cluster") {
      const r = await clusterStatus(config, o);
      console.log(o.json ? JSON.stringify(r, null, 2) : formatStatus(r));
      return r.complete ? 0 : 1;
    }
    const r = await listSessions(config, o);
    console.log(o.json ? JSON.stringify(r, null, 2) : formatSessions(r));
    return r.complete ? 0 : 1;
  }

  if (cmd !== "users") throw new UsageError(cmd === undefined ? "" : `unknown command ${cmd}`);
  // The CLI applies migrations too (PostgreSQL: under the advisory lock, so a running server's start does not race it).
  const store = await openStorage(config.storage, createLogger({ ...config.log, level: "warn" }));
  try {
    switch (sub) {
      case "add": {
        const user = Authenticator.normalizeUser(rest[0]);
        if (user === null || rest[1] === undefined) throw new UsageError("users add USER PASSWORD");
        await store.putUser(user, await deriveCredentials(rest[1], config.auth.scramIterations));
        console.log(`added ${user}@${config.domain}`);
        return 0;
      }
      case "delete": {
        const user = Authenticator.normalizeUser(rest[0]);
        if (user === null) throw new UsageError("users delete USER");
        if (!(await store.deleteUser(user))) {
          console.error(`no such user: ${user}`);
          return 1;
        }
        console.log(`deleted ${user}`);
        return 0;
      }
      case "list":
        for (const u of await store.listUsers()) console.log(u);
        return 0;
      case "import": {
        if (rest[0] === undefined) throw new UsageError("users import FILE");
        const { users, errors } = readUserFile(rest[0]);
        for (const e of errors) console.error(`${rest[0]}: ${e}`);
        if (errors.length > 0) return 1;
        const started = Date.now();
        const n = await importUsers(store, users, config.auth.scramIterations, availableParallelism() * 4);
        console.log(`imported ${n} users in ${((Date.now() - started) / 1000).toFixed(1)} s`);
        return 0;
      }
      default:
        throw new UsageError(`unknown users command ${sub ?? ""}`);
    }
  } finally {
    await store.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (e) => {
    if (e instanceof UsageError) {
      if (e.message) console.error(`switchboard: ${e.message}`);
      console.error(USAGE);
      process.exitCode = 2;
    } else if (e instanceof OpsError) {
      console.error(`switchboard: ${e.message}`);
      process.exitCode = 1;
    } else if (e instanceof ConfigError) {
      console.error(e.message);
      process.exitCode = 78; // EX_CONFIG
    } else {
      console.error(`switchboard: ${(e as Error).message}`);
      process.exitCode = 1;
    }
  },
);
