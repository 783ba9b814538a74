import { Element } from "ltx";
import { NS } from "../ns.js";
import type { AccessModel, NodeConfig } from "../../store/pep-store.js";

const ACCESS_MODELS: readonly AccessModel[] = ["presence", "open", "whitelist"];

/** XEP-0163 §4.5 (access model presence), persisted, the newest item only: what an auto-created node gets. */
export const DEFAULT_CONFIG: NodeConfig = { accessModel: "presence", persistItems: true, maxItems: 1 };

/**
 * The fields of a XEP-0004 form of `formType` (XEP-0223 publish-options,
 * XEP-0060 §8.2 node configuration) that PEP nodes have: access model,
 * persist_items, max_items ("max": the server's limit). Other fields are
 * accepted and ignored (send_last_published_item, notify_retract, … as
 * clients send them for bookmarks and OMEMO). A string: why the form is refused.
 */
export function readConfigForm(x: Element, formType: string, maxItemsLimit: number): Partial<NodeConfig> | string {
  if (x.name !== "x" || x.attrs.xmlns !== NS.DATA) return "not a data form";
  if (x.attrs.type !== undefined && x.attrs.type !== "submit") return "the form must be of type submit";
  const out: Partial<NodeConfig> = {};
  let typed = false;
  for (const f of x.getChildren("field")) {
    const name = f.attrs.var;
    const values = f.getChildren("value").map((v) => v.getText().trim());
    if (typeof name !== "string") return "a field without var";
    if (values.length > 1 && name !== "pubsub#children") return `field ${name.slice(0, 64)}: one value expected`;
    const v = values[0] ?? "";
    switch (name) {
      case "FORM_TYPE":
        if (v !== formType) return `FORM_TYPE must be ${formType}`;
        typed = true;
        break;
      case "pubsub#access_model":
        if (!(ACCESS_MODELS as readonly string[]).includes(v)) return `pubsub#access_model ${v.slice(0, 32)} is not supported (presence, open, whitelist)`;
        out.accessModel = v as AccessModel;
        break;
      case "pubsub#persist_items":
        if (v === "1" || v === "true") out.persistItems = true;
        else if (v === "0" || v === "false") out.persistItems = false;
        else return "pubsub#persist_items must be a boolean";
        break;
      case "pubsub#max_items": {
        if (v === "max") {
          out.maxItems = maxItemsLimit;
          break;
        }
        const n = /^[0-9]{1,9}$/.test(v) ? Number(v) : NaN;
        if (!(n >= 1)) return "pubsub#max_items must be a positive integer or max";
        if (n > maxItemsLimit) return `pubsub#max_items: at most ${maxItemsLimit}`;
        out.maxItems = n;
        break;
      }
      default:
        break;
    }
  }
  if (!typed) return `FORM_TYPE ${formType} missing`;
  return out;
}

/** XEP-0060 §8.2.1: the node's configuration as a form the owner can fill in. */
export function configForm(c: NodeConfig): Element {
  const x = new Element("x", { xmlns: NS.DATA, type: "form" });
  x.c("field", { var: "FORM_TYPE", type: "hidden" }).c("value").t(NS.PUBSUB_NODE_CONFIG);
  const access = x.c("field", { var: "pubsub#access_model", type: "list-single", label: "Who may subscribe and retrieve items" });
  access.c("value").t(c.accessModel);
  for (const m of ACCESS_MODELS) access.c("option").c("value").t(m);
  x.c("field", { var: "pubsub#persist_items", type: "boolean", label: "Persist items" }).c("value").t(c.persistItems ? "1" : "0");
  x.c("field", { var: "pubsub#max_items", type: "text-single", label: "Max number of items to persist" }).c("value").t(String(c.maxItems));
  return x;
}
