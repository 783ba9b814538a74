import winston from "winston";
import type { Config } from "../config/config.js";

export type Logger = winston.Logger;

/** Keys whose values never reach a log line. */
const SECRET = /pass|token|secret|proof|key/i;

const redact = winston.format((info) => {
  for (const k of Object.keys(info)) if (SECRET.test(k)) info[k] = "[redacted]";
  return info;
});

/**
 * `meta` goes on every line: a host of several workers gives each its worker id
 * (text format: right after the level, `[10_0_0_7-w1]`).
 */
export function createLogger(cfg: Config["log"], meta?: { worker: string }): Logger {
  const format =
    cfg.format === "json"
      ? winston.format.combine(redact(), winston.format.timestamp(), winston.format.json())
      : winston.format.combine(
          redact(),
          winston.format.timestamp(),
          winston.format.printf(({ timestamp, level, message, worker, ...rest }) => {
            const extra = Object.keys(rest).length ? " " + JSON.stringify(rest) : "";
            return `${timestamp} ${level}${worker === undefined ? "" : ` [${worker}]`} ${message}${extra}`;
          }),
        );
  return winston.createLogger({ level: cfg.level, format, defaultMeta: meta, transports: [new winston.transports.Console({ stderrLevels: ["error", "warn", "info", "debug"] })] });
}

/** For tests and library use: a logger that writes nothing. */
export function silentLogger(): Logger {
  return winston.createLogger({ silent: true, transports: [new winston.transports.Console({ silent: true })] });
}
