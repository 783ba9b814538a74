import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { FIXTURES, TLS_FILES, type TestServer } from "../../helpers.js";
import { HEADER, Raw, rawLogin } from "./util.js";
import { SLIXMPP_SKIP, startSlixmppServer } from "./slixmpp.js";
import { HAVE_POSTGRES, startPostgres, type PostgresServer } from "../../postgres.js";

// XEP-0077 end to end: slixmpp's xep_0077 plugin registers through the stream feature and logs in with
// the account; its password change; raw streams for the errors, the per-IP limit and account removal.

function run(ts: TestServer, args: string[], ms = 40000): Promise<string[]> {
  return new Promise((resolve, reject) => {
    execFile("/usr/bin/python3", [join(FIXTURES, "slixmpp_register.py"), String(ts.port("xmpp", "tcp")), TLS_FILES.cert, ...args], { timeout: ms }, (err, stdout, stderr) =>
      err ? reject(new Error(`${err.message}\n${stdout}\n${stderr}`)) : resolve(stdout.trim().split("\n")),
    );
  });
}

const regIq = (user: string, pw: string, id = "reg") => `<iq type='set' id='${id}'><query xmlns='jabber:iq:register'><username>${user}</username><password>${pw}</password></query></iq>`;
const answerTo = (id: string) => new RegExp(`<iq[^>]*id=["']${id}["'][^>]*(/>|>[\\s\\S]*?</iq>)`);

/** A raw stream before authentication (plain TCP on loopback: exempt from requireEncryption), after the features. */
async function rawOpen(port: number): Promise<Raw> {
  const r = new Raw(port);
  await r.ready();
  r.send(HEADER);
  await r.until(/<\/stream:features>/);
  return r;
}

/** A registration on a raw stream: the answer stanza's text. */
async function rawRegister(port: number, user: string, pw: string): Promise<string> {
  const r = await rawOpen(port);
  try {
    r.send(regIq(user, pw));
    return (await r.until(answerTo("reg"))).match(answerTo("reg"))![0];
  } finally {
    r.destroy();
  }
}

test("XEP-0077: slixmpp registers and logs in, changes its password; conflict, not-acceptable, the per-IP limit, removal", { skip: SLIXMPP_SKIP, timeout: 120000 }, async () => {
  const ts = await startSlixmppServer({ alice: "alice-pw" }, { register: { enabled: true, maxPerIp: 5 }, allowPlainWithoutTls: true });
  const port = ts.port("xmpp", "tcp");
  try {
    // The stream feature, and the form.
    const r = await rawOpen(port);
    assert.match(r.text, /<register xmlns=["']http:\/\/jabber.org\/features\/iq-register["']\/>/);
    r.send("<iq type='get' id='form'><query xmlns='jabber:iq:register'/></iq>");
    const form = (await r.until(answerTo("form"))).match(answerTo("form"))![0];
    assert.match(form, /type=["']result["']/);
    assert.match(form, /<username\/>/);
    assert.match(form, /<password\/>/);
    r.destroy();

    // 1 (counted per IP): slixmpp registers carol, logs in with her, changes her password.
    assert.deepEqual(await run(ts, ["carol", "pw-one", "register", "pw-two"]), ["registered", "online", "changed", "done"]);
    assert.deepEqual(await run(ts, ["carol", "pw-two", "login"]), ["online", "done"], "the new password logs in");
    assert.deepEqual(await run(ts, ["carol", "pw-one", "login"]), ["auth-failed", "done"], "the old one no longer does");
    // 2: a taken name is a conflict, and the account is not touched.
    assert.deepEqual((await run(ts, ["alice", "stolen", "register"])).slice(0, 1), ["register-error conflict"]);
    assert.deepEqual(await run(ts, ["alice", "alice-pw", "login"]), ["online", "done"]);
    // 3: a name that is no JID local part.
    assert.match(await rawRegister(port, "bad name", "pw"), /<not-acceptable xmlns=/);
    // 4, 5: fine; 6: over the limit of 5 per IP address.
    assert.match(await rawRegister(port, "dave", "dave-pw"), /type=["']result["']/);
    assert.match(await rawRegister(port, "erin", "erin-pw"), /type=["']result["']/);
    const limited = await rawRegister(port, "frank", "frank-pw");
    assert.match(limited, /<policy-violation xmlns=/);
    assert.match(limited, /type=["']wait["']/);
    assert.equal(await ts.server.store.hasUser("frank"), false);

    // Removal: the answer, then the stream ends; the account is gone.
    const d = await rawLogin(port, "dave", "dave-pw");
    d.send("<iq type='set' id='rm'><query xmlns='jabber:iq:register'><remove/></query></iq>");
    assert.match((await d.until(answerTo("rm"))).match(answerTo("rm"))![0], /type=["']result["']/);
    await d.until(/<not-authorized xmlns=["']urn:ietf:params:xml:ns:xmpp-streams["']/);
    await d.whenClosed();
    assert.equal(await ts.server.store.hasUser("dave"), false);
  } finally {
    await ts.stop();
  }
});

test("XEP-0077 is off by default: no stream feature, and a registration before authentication ends the stream", { skip: SLIXMPP_SKIP, timeout: 30000 }, async () => {
  const ts = await startSlixmppServer({ alice: "alice-pw" }, { allowPlainWithoutTls: true });
  const port = ts.port("xmpp", "tcp");
  try {
    const r = await rawOpen(port);
    assert.doesNotMatch(r.text, /iq-register/);
    r.send(regIq("mallory", "pw"));
    await r.until(/<not-authorized xmlns=["']urn:ietf:params:xml:ns:xmpp-streams["']/);
    await r.whenClosed();
    assert.equal(await ts.server.store.hasUser("mallory"), false);
    // Password change is on by default for logged-in users (here without TLS: plain TCP on loopback).
    const a = await rawLogin(port, "alice", "alice-pw");
    a.send("<iq type='set' id='pw'><query xmlns='jabber:iq:register'><username>alice</username><password>new-pw</password></query></iq>");
    assert.match((await a.until(answerTo("pw"))).match(answerTo("pw"))![0], /type=["']result["']/);
    a.destroy();
    await rawLogin(port, "alice", "new-pw").then((x) => x.destroy());
  } finally {
    await ts.stop();
  }
});

describe("XEP-0077 on PostgreSQL", { skip: SLIXMPP_SKIP || (HAVE_POSTGRES ?? false) }, () => {
  let pgs: PostgresServer;
  before(async () => void (pgs = await startPostgres()));
  after(() => pgs?.stop());
  test("slixmpp registers, changes its password and logs in with it; a taken name is a conflict (PostgreSQL)", { timeout: 90_000 }, async () => {
    const ts = await startSlixmppServer({ alice: "alice-pw" }, { register: { enabled: true } }, { type: "postgres", postgres: await pgs.createDatabase("register") });
    try {
      assert.deepEqual(await run(ts, ["carol", "pw-one", "register", "pw-two"]), ["registered", "online", "changed", "done"]);
      assert.deepEqual(await run(ts, ["carol", "pw-two", "login"]), ["online", "done"]);
      assert.deepEqual((await run(ts, ["alice", "stolen", "register"])).slice(0, 1), ["register-error conflict"]);
      assert.deepEqual(await run(ts, ["alice", "alice-pw", "login"]), ["online", "done"]);
    } finally {
      await ts.stop();
    }
  });
});
