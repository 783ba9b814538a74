import { readFileSync } from "node:fs";
import { Authenticator } from "../auth/authenticator.js";
import { deriveCredentials, type Credentials } from "../store/scram.js";
import type { AccountStore } from "../store/store.js";

/**
 * Parses `user,password` lines. Blank lines and lines starting with # are
 * skipped; the password is everything after the first comma.
 */
export function parseUserLines(text: string): { users: [string, string][]; errors: string[] } {
  const users: [string, string][] = [];
  const errors: string[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    if (line.trim() === "" || line.startsWith("#")) return;
    const comma = line.indexOf(",");
    const name = Authenticator.normalizeUser(comma < 0 ? "" : line.slice(0, comma).trim());
    const password = comma < 0 ? "" : line.slice(comma + 1);
    if (name === null || password === "") errors.push(`line ${i + 1}: expected user,password`);
    else users.push([name, password]);
  });
  return { users, errors };
}

/**
 * Derives credentials on the thread pool, several at once, and writes them in
 * one transaction: PBKDF2 is the cost, not the store.
 */
export async function importUsers(store: AccountStore, users: [string, string][], iterations: number, concurrency = 8): Promise<number> {
  const derived: [string, Credentials][] = new Array(users.length);
  let next = 0;
  const worker = async () => {
    while (next < users.length) {
      const i = next++;
      derived[i] = [users[i][0], await deriveCredentials(users[i][1], iterations)];
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, users.length) }, worker));
  return await store.putUsers(derived);
}

export function readUserFile(file: string): { users: [string, string][]; errors: string[] } {
  return parseUserLines(readFileSync(file, "utf8"));
}
