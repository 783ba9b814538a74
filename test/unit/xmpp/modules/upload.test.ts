import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { validate } from "../../../../src/config/config.js";
import { discoModule } from "../../../../src/xmpp/modules/disco.js";
import { uploadModule } from "../../../../src/xmpp/modules/upload.js";
import { userKey, verifySlot, type Slot } from "../../../../src/upload/slot.js";
import { waitUntil } from "../../../helpers.js";
import { errorOf, fakeContext, fakeSession, fromClient } from "./fake-session.js";

const NS = "urn:xmpp:http:upload:0";
const KEY = Buffer.alloc(32, 3);

async function setup(upload: Record<string, unknown> = {}) {
  const dir = mkdtempSync(join(tmpdir(), "upload-module-"));
  const x = await fakeContext([]);
  const cfg = validate({ upload: { enabled: true, path: dir, maxFileBytes: 1000, quotaBytes: 1500, expireAfterMs: 60_000, ...upload } }).upload;
  uploadModule(x.hooks, x, discoModule(x.hooks), { cfg, key: KEY, baseUrl: "https://up.example/u" });
  return { x, dir, s: fakeSession("alice"), done: () => rmSync(dir, { recursive: true, force: true }) };
}

test("the service's domain gets its stanzas (the dispatcher's service event); other domains are still unreachable", { timeout: 5000 }, async () => {
  const { x, s, done } = await setup();
  try {
    fromClient(x, s, "<iq to='localhost' type='get' id='i'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>");
    assert.deepEqual(s.written.at(-1)!.getChild("query")!.getChildren("item").map((i) => i.attrs), [{ jid: "upload.localhost", name: "HTTP File Upload" }]);
    fromClient(x, s, "<iq to='Upload.LOCALHOST' type='get' id='d'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
    const info = s.written.at(-1)!;
    assert.equal(info.attrs.from, "upload.localhost", "answered from the canonical address");
    assert.equal(info.getChild("query")!.getChild("x", "jabber:x:data")!.getChildren("field").find((f) => f.attrs.var === "max-file-size")!.getChildText("value"), "1000");
    fromClient(x, s, "<iq to='other.example' type='get' id='o'><ping xmlns='urn:xmpp:ping'/></iq>");
    assert.equal(errorOf(s.written.at(-1)!), "remote-server-not-found");
    fromClient(x, s, "<iq to='upload.localhost' type='set' id='s'><request xmlns='urn:xmpp:http:upload:0' filename='a' size='1'/></iq>");
    assert.equal(errorOf(s.written.at(-1)!), "service-unavailable", "slots are asked for with get");
    fromClient(x, s, "<iq to='someone@upload.localhost' type='get' id='u'><request xmlns='urn:xmpp:http:upload:0' filename='a' size='1'/></iq>");
    assert.equal(errorOf(s.written.at(-1)!), "service-unavailable", "only the service's own address");
    fromClient(x, s, "<iq to='upload.localhost' type='get' id='two'><ping xmlns='urn:xmpp:ping'/><ping xmlns='urn:xmpp:ping'/></iq>");
    assert.equal(errorOf(s.written.at(-1)!), "bad-request");
    const n = s.written.length;
    fromClient(x, s, "<presence to='upload.localhost'/>");
    fromClient(x, s, "<iq to='upload.localhost' type='result' id='r'/>");
    assert.equal(s.written.length, n, "presence and answers are dropped");
    fromClient(x, s, "<message to='upload.localhost' id='m'><body>hi</body></message>");
    assert.equal(errorOf(s.written.at(-1)!), "service-unavailable");
  } finally {
    done();
  }
});

test("a slot: PUT and GET URL under the public URL, and a token that verifies to exactly the request", { timeout: 5000 }, async () => {
  const { x, s, done } = await setup();
  try {
    fromClient(x, s, `<iq to='upload.localhost' type='get' id='q'><request xmlns='${NS}' filename='my file.txt' size='12' content-type='text/plain'/></iq>`);
    await waitUntil(() => s.written.length === 1, 2000, "the answer (after the quota's read of the disk)");
    const slot = s.written.at(-1)!.getChild("slot", NS)!;
    const put = slot.getChild("put")!;
    assert.equal(put.attrs.url, slot.getChild("get")!.attrs.url);
    const user = userKey(KEY, "alice@localhost");
    assert.match(put.attrs.url, new RegExp(`^https://up\\.example/u/${user}/[A-Za-z0-9_-]{22}/my%20file\\.txt$`));
    const header = put.getChild("header")!;
    assert.equal(header.attrs.name, "Authorization");
    const v = verifySlot(KEY, header.getText().slice("Bearer ".length), Date.now()) as Slot;
    assert.deepEqual([v.user, v.name, v.size, v.type], [user, "my file.txt", 12, "text/plain"]);
    assert.equal(v.id, put.attrs.url.split("/")[5]);
    assert.ok(v.expires > Date.now() + 55_000 && v.expires <= Date.now() + 60_000, "upload.slotTimeoutMs");
    fromClient(x, s, `<iq to='upload.localhost' type='get' id='q2'><request xmlns='${NS}' filename='x' size='1'/></iq>`);
    await waitUntil(() => s.written.length === 2, 2000, "the answer");
    const t = (verifySlot(KEY, s.written.at(-1)!.getChild("slot", NS)!.getChild("put")!.getChild("header")!.getText().slice(7), 0) as Slot).type;
    assert.equal(t, "application/octet-stream", "the default type");
  } finally {
    done();
  }
});

test("quota: the user's files on disk count, expired ones do not; the refusal says when to retry", { timeout: 5000 }, async () => {
  const { x, s, dir, done } = await setup();
  try {
    const udir = join(dir, userKey(KEY, "alice@localhost"));
    mkdirSync(udir);
    writeFileSync(join(udir, "AAAAAAAAAAAAAAAAAAAAAA.data"), Buffer.alloc(900));
    // Expired (uploaded two minutes ago, upload.expireAfterMs one): not counted, though the sweeper has not removed it.
    writeFileSync(join(udir, "BBBBBBBBBBBBBBBBBBBBBB.data"), Buffer.alloc(1000));
    const old = (Date.now() - 120_000) / 1000;
    utimesSync(join(udir, "BBBBBBBBBBBBBBBBBBBBBB.data"), old, old);
    fromClient(x, s, `<iq to='upload.localhost' type='get' id='q'><request xmlns='${NS}' filename='a' size='700'/></iq>`);
    await waitUntil(() => s.written.length === 1, 2000, "the answer");
    const err = s.written[0];
    assert.equal(errorOf(err), "resource-constraint+retry");
    assert.equal(err.getChild("error")!.attrs.type, "wait");
    const stamp = Date.parse(err.getChild("error")!.getChild("retry", NS)!.attrs.stamp);
    assert.ok(Math.abs(stamp - (Date.now() + 60_000)) < 5000, "when the 900 bytes expire");
    assert.equal(s.holds, 0, "input released");
    fromClient(x, s, `<iq to='upload.localhost' type='get' id='q2'><request xmlns='${NS}' filename='a' size='600'/></iq>`);
    await waitUntil(() => s.written.length === 2, 2000, "the answer");
    assert.ok(s.written[1].getChild("slot", NS), "900 + 600 fits 1500");
    fromClient(x, s, `<iq to='upload.localhost' type='get' id='big'><request xmlns='${NS}' filename='a' size='1001'/></iq>`);
    assert.equal(errorOf(s.written[2]), "not-acceptable+file-too-large");
    assert.equal(s.written[2].getChild("error")!.getChild("file-too-large", NS)!.getChildText("max-file-size"), "1000");
  } finally {
    done();
  }
});
