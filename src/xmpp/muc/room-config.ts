import { Element } from "ltx";
import { NS } from "../ns.js";

/** Who may send private messages to occupants (muc#roomconfig_allowpm). */
export type AllowPm = "anyone" | "participants" | "moderators" | "none";

/** A room's configuration (XEP-0045 §10.2, the muc#roomconfig form). */
export interface RoomConfig {
  name: string;
  description: string;
  /** Kept (with its affiliations) when the last occupant leaves, and in the store ("muc" schema component). */
  persistent: boolean;
  /** To be listed in the service's disco#items; the service lists no rooms yet, so rooms default to hidden (muc_hidden). */
  public: boolean;
  membersOnly: boolean;
  /** Only occupants with voice (participants, moderators) send groupchat messages. */
  moderated: boolean;
  /** "" when the room has no password. */
  password: string;
  /** Who sees occupants' real JIDs: "moderators" (semi-anonymous) or "anyone" (non-anonymous). */
  whois: "moderators" | "anyone";
  /** 0: the service's limit (muc.maxOccupants). */
  maxUsers: number;
  /** Participants may change the subject (moderators always may). */
  changeSubject: boolean;
  allowPm: AllowPm;
  /** Occupants may invite others (XEP-0045 §7.8.2 mediated invitations; members-only rooms). */
  allowInvites: boolean;
  /** Groupchat kept in the room's XEP-0313 archive (muc#roomconfig_enablelogging), when the service archives (muc.mam.enabled). */
  logging: boolean;
}

export function defaultConfig(): RoomConfig {
  return { name: "", description: "", persistent: false, public: false, membersOnly: false, moderated: false, password: "", whois: "moderators", maxUsers: 0, changeSubject: false, allowPm: "anyone", allowInvites: false, logging: true };
}

const F = {
  name: "muc#roomconfig_roomname",
  description: "muc#roomconfig_roomdesc",
  persistent: "muc#roomconfig_persistentroom",
  public: "muc#roomconfig_publicroom",
  membersOnly: "muc#roomconfig_membersonly",
  moderated: "muc#roomconfig_moderatedroom",
  passwordProtected: "muc#roomconfig_passwordprotectedroom",
  password: "muc#roomconfig_roomsecret",
  whois: "muc#roomconfig_whois",
  maxUsers: "muc#roomconfig_maxusers",
  changeSubject: "muc#roomconfig_changesubject",
  allowPm: "muc#roomconfig_allowpm",
  allowInvites: "muc#roomconfig_allowinvites",
  logging: "muc#roomconfig_enablelogging",
} as const;

function field(x: Element, v: string, type: string, label: string, values: readonly string[], options: readonly string[] = []): void {
  const f = x.c("field", { var: v, type, label });
  for (const o of options) f.c("option", { label: o }).c("value").t(o);
  for (const value of values) f.c("value").t(value);
}

const bool = (b: boolean) => (b ? "1" : "0");

/** The configuration form an owner is given (§10.2), filled with the room's current values; `archives`: the service keeps room archives. */
export function configForm(c: RoomConfig, maxOccupants: number, archives = false): Element {
  const x = new Element("x", { xmlns: NS.DATA, type: "form" });
  x.c("title").t("Room configuration");
  x.c("field", { var: "FORM_TYPE", type: "hidden" }).c("value").t(NS.MUC_ROOMCONFIG);
  field(x, F.name, "text-single", "Name", [c.name]);
  field(x, F.description, "text-single", "Description", [c.description]);
  field(x, F.persistent, "boolean", "Persistent", [bool(c.persistent)]);
  field(x, F.public, "boolean", "Public", [bool(c.public)]);
  field(x, F.membersOnly, "boolean", "Members only", [bool(c.membersOnly)]);
  field(x, F.moderated, "boolean", "Moderated", [bool(c.moderated)]);
  field(x, F.passwordProtected, "boolean", "Password protected", [bool(c.password !== "")]);
  field(x, F.password, "text-private", "Password", c.password === "" ? [] : [c.password]);
  field(x, F.whois, "list-single", "Who may see real JIDs", [c.whois], ["moderators", "anyone"]);
  field(x, F.maxUsers, "text-single", `Maximum occupants (at most ${maxOccupants}; 0: that)`, [String(c.maxUsers)]);
  field(x, F.changeSubject, "boolean", "Participants may change the subject", [bool(c.changeSubject)]);
  field(x, F.allowPm, "list-single", "Who may send private messages", [c.allowPm], ["anyone", "participants", "moderators", "none"]);
  field(x, F.allowInvites, "boolean", "Occupants may invite", [bool(c.allowInvites)]);
  if (archives) field(x, F.logging, "boolean", "Archive the room's messages (XEP-0313)", [bool(c.logging)]);
  return x;
}

/** A submitted form's fields: var → values. Throws a FormError on a form that is not one. */
export function formValues(x: Element, formType: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const f of x.getChildren("field")) {
    const v = f.attrs.var;
    if (typeof v !== "string" || v === "") throw new FormError("a field without var");
    out.set(
      v,
      f.getChildren("value").map((e) => e.getText()),
    );
  }
  const type = out.get("FORM_TYPE");
  if (type !== undefined && type[0] !== formType) throw new FormError(`FORM_TYPE must be ${formType}`);
  return out;
}

export class FormError extends Error {}

function one(vals: Map<string, string[]>, v: string): string | undefined {
  const got = vals.get(v);
  if (got === undefined) return undefined;
  if (got.length > 1) throw new FormError(`${v} takes one value`);
  return got[0] ?? "";
}

function boolOf(vals: Map<string, string[]>, v: string, cur: boolean): boolean {
  const s = one(vals, v);
  if (s === undefined) return cur;
  if (s === "1" || s === "true") return true;
  if (s === "0" || s === "false" || s === "") return false;
  throw new FormError(`${v} must be a boolean`);
}

function textOf(vals: Map<string, string[]>, v: string, cur: string, max: number): string {
  const s = one(vals, v);
  if (s === undefined) return cur;
  if (s.length > max) throw new FormError(`${v} is longer than ${max}`);
  return s;
}

/**
 * A submitted muc#roomconfig form (§10.2) laid over `cur`: fields not given keep their value (an empty
 * form is an instant room's acceptance, §10.1.2). Throws a FormError naming the first bad field.
 */
export function applyForm(cur: RoomConfig, x: Element, maxOccupants: number): RoomConfig {
  const vals = formValues(x, NS.MUC_ROOMCONFIG);
  const c: RoomConfig = { ...cur };
  c.name = textOf(vals, F.name, c.name, 200);
  c.description = textOf(vals, F.description, c.description, 1000);
  c.persistent = boolOf(vals, F.persistent, c.persistent);
  c.public = boolOf(vals, F.public, c.public);
  c.membersOnly = boolOf(vals, F.membersOnly, c.membersOnly);
  c.moderated = boolOf(vals, F.moderated, c.moderated);
  c.changeSubject = boolOf(vals, F.changeSubject, c.changeSubject);
  c.allowInvites = boolOf(vals, F.allowInvites, c.allowInvites);
  c.logging = boolOf(vals, F.logging, c.logging);
  const protectedRoom = boolOf(vals, F.passwordProtected, c.password !== "");
  c.password = protectedRoom ? textOf(vals, F.password, c.password, 200) : "";
  if (protectedRoom && c.password === "") throw new FormError(`${F.password} must be given for a password-protected room`);
  const whois = one(vals, F.whois);
  if (whois !== undefined) {
    if (whois !== "moderators" && whois !== "anyone") throw new FormError(`${F.whois} must be moderators or anyone`);
    c.whois = whois;
  }
  const pm = one(vals, F.allowPm);
  if (pm !== undefined) {
    if (pm !== "anyone" && pm !== "participants" && pm !== "moderators" && pm !== "none") throw new FormError(`${F.allowPm} must be anyone, participants, moderators or none`);
    c.allowPm = pm;
  }
  const max = one(vals, F.maxUsers);
  if (max !== undefined) {
    // §10.2: "none" means no limit of the room's own (the service's applies).
    const n = max === "none" || max === "" ? 0 : Number(max);
    if (!Number.isInteger(n) || n < 0 || n > maxOccupants) throw new FormError(`${F.maxUsers} must be an integer in [0, ${maxOccupants}]`);
    c.maxUsers = n;
  }
  return c;
}

/** The room's disco#info features that follow its configuration (XEP-0045 §6.4, §15.5.3). */
export function configFeatures(c: RoomConfig): string[] {
  return [
    c.public ? "muc_public" : "muc_hidden",
    c.persistent ? "muc_persistent" : "muc_temporary",
    c.membersOnly ? "muc_membersonly" : "muc_open",
    c.moderated ? "muc_moderated" : "muc_unmoderated",
    c.password !== "" ? "muc_passwordprotected" : "muc_unsecured",
    c.whois === "anyone" ? "muc_nonanonymous" : "muc_semianonymous",
  ];
}
