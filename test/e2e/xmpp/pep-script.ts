import { execFile } from "node:child_process";
import { join } from "node:path";
import { FIXTURES, TLS_FILES } from "../../helpers.js";

// What test/fixtures/slixmpp_pep.py prints when all is well, and how it is run: shared by the
// one-worker test (slixmpp-pep.test.ts) and the two-worker one (cluster/pep-workers.test.ts).

const DL = "eu.siacs.conversations.axolotl.devicelist";
export const PEP_EXPECTED = [
  "pep identity True publish-options",
  "server caps verified True",
  `bob/one got publish alice@localhost ${DL} 1001`,
  `alice got publish bob@localhost ${DL} 2001,2002`,
  `bob/one got own publish bob@localhost ${DL} 2001,2002`,
  "bob/three last items alice@localhost=1001 bob@localhost=2001,2002",
  "items all n1 n2",
  "items max 1 n2",
  "item n1 n1",
  "carol reads open current",
  "carol reads presence node not-authorized/presence-subscription-required",
  "bob got retract alice@localhost urn:x:nick",
  "publish-options differ conflict/precondition-not-met",
  "malformed options bad-request/invalid-options",
  "bob reads whitelist not-allowed/closed-node",
  `disco items for alice ${DL} urn:x:nick urn:x:secret`,
  `disco items for bob ${DL} urn:x:nick`,
  `disco items for carol ${DL}`,
  "huge item not-acceptable/payload-too-big",
  "too many nodes not-allowed",
  "bob got delete urn:x:nick",
  "deleted node item-not-found",
  "bob/one and bob/three got 1001,1002",
  "bob/two events 0 carol events 0 whitelist events to bob 0",
];

export const PEP_LIMITS = { pep: { maxItemBytes: 4096, maxNodes: 4 } };

/** Runs the script against `addrs` ("host:port", alice on the first, the others on the last); its output lines. */
export function runPepScript(addrs: string[], ms: number): Promise<string[]> {
  return new Promise<string>((resolve, reject) => {
    execFile("/usr/bin/python3", [join(FIXTURES, "slixmpp_pep.py"), addrs.join(","), TLS_FILES.cert], { timeout: ms }, (err, stdout, stderr) =>
      err ? reject(new Error(`${err.message}\n${stdout}\n${stderr.slice(-3000)}`)) : resolve(stdout),
    );
  }).then((out) => out.trim().split("\n"));
}
