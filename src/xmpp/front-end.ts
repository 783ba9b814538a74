import { randomBytes } from "node:crypto";
import type { SessionContext } from "../session/context.js";
import type { ListenerConfig } from "../config/config.js";
import type { AccountStore } from "../store/store.js";
import type { XmppStore } from "../store/xmpp-store.js";
import type { ProfileStore } from "../store/profile-store.js";
import type { PepStore } from "../store/pep-store.js";
import type { OfflineWriter } from "../store/offline-writer.js";
import { detachedConn, type Conn } from "../transport/conn.js";
import { loadTls } from "../transport/listener.js";
import { Hooks } from "./hooks.js";
import type { XmppContext } from "./context.js";
import { FailureLimiter } from "../auth/failure-limiter.js";
import { XmppSession } from "./xmpp-session.js";
import { adoptXmpp } from "./handoff.js";
import { starttlsModule } from "./modules/starttls.js";
import { saslModule } from "./sasl/sasl.js";
import { sasl2Module } from "./sasl/sasl2.js";
import { fastAuth } from "./sasl/fast.js";
import type { FastStore } from "../store/fast-store.js";
import { bindModule } from "./modules/bind.js";
import { iqModule } from "./modules/iq.js";
import { pingModule } from "./modules/ping.js";
import { discoModule } from "./modules/disco.js";
import { messageModule } from "./modules/message.js";
import { presenceModule } from "./modules/presence.js";
import { rosterModule } from "./modules/roster.js";
import { offlineModule, offlineSink } from "./modules/offline.js";
import { csiModule } from "./modules/csi.js";
import { carbonsModule } from "./modules/carbons.js";
import { streamManagementModule } from "./modules/stream-management.js";
import { blockingModule } from "./modules/blocking.js";
import { vcardModule } from "./modules/vcard.js";
import { versionModule } from "./modules/version.js";
import { pepModule } from "./modules/pep.js";
import { avatarModule } from "./modules/avatar.js";
import { toWire } from "./outbound.js";
import type { ArchiveSink, OfflineSink } from "../session/core.js";
import { archiveSink, mamModule, type Archives } from "./modules/mam.js";
import { StanzaIds } from "./modules/stanza-id.js";
import { uploadModule, type UploadService } from "./modules/upload.js";
import { NS } from "./ns.js";
import { componentsModule } from "./modules/components.js";
import { registerModule } from "./modules/register.js";
import { ComponentSession, type ComponentContext } from "./component-session.js";
import { mucModule } from "./muc/module.js";
import type { MucService } from "./muc/service.js";
import { storedRooms } from "./muc/rooms-store.js";
import type { MucStore } from "../store/muc-store.js";
import type { ArchiveStore } from "../store/archive-store.js";
import type { MucDirectory } from "../store/muc-directory.js";

/**
 * The XMPP composition root (xmpp.js's packages/client/index.js, Prosody's
 * modules_enabled): every feature is a module hooking events, registered here
 * and nowhere else. One per server; listeners share it.
 */
export class XmppFrontEnd {
  readonly x: XmppContext;

  /** XEP-0313 archives (xmpp.mam.enabled); null: off, and neither archived nor advertised. */
  private readonly archives: Archives | null;
  /** XEP-0045 rooms owned by this worker (muc.enabled); null: off. */
  readonly muc: MucService | null = null;

  /** `upload`: the XEP-0363 service (upload.enabled), null: none. `fast`: XEP-0484 tokens (null: FAST off). `mucStore`: XEP-0045 persistent rooms. */
  constructor(ctx: SessionContext, accounts: AccountStore, store: XmppStore, offline: OfflineWriter, profile: ProfileStore, pep: PepStore, archives: Archives | null = null, upload: UploadService | null = null, fast: FastStore | null = null, mucStore: MucStore | null = null, roomArchives: ArchiveStore | null = null, mucDirectory: MucDirectory | null = null) {
    this.archives = archives;
    const hooks = new Hooks();
    const c = ctx.config.xmpp;
    this.x = {
      ...ctx,
      hooks,
      store,
      profile,
      pep,
      pepEvent: toWire,
      accounts,
      offline,
      ipFailures: new FailureLimiter(c.maxAuthFailuresPerIp, c.authFailureWindowMs),
      saltSecret: randomBytes(32),
      detachedSession: (remote) => new XmppSession(detachedConn(remote), this.x, null),
    };
    const x = this.x;
    starttlsModule(hooks, x);
    saslModule(hooks, x);
    bindModule(hooks);
    iqModule(hooks, x);
    pingModule(hooks);
    // XEP-0313 §8, XEP-0359 §6: advertised on the account only when archives are on.
    const disco = discoModule(hooks, archives === null ? [] : [NS.MAM, NS.SID]);
    const ids = archives === null ? null : new StanzaIds(ctx.config.domain);
    messageModule(hooks, ids);
    if (archives !== null) mamModule(hooks, x, archives);
    presenceModule(hooks, x);
    rosterModule(hooks, x);
    offlineModule(hooks, x);
    csiModule(hooks);
    carbonsModule(hooks);
    const sm = streamManagementModule(hooks, x);
    // XEP-0484 rides on SASL2; off, or without a token store, it is neither advertised nor accepted.
    sasl2Module(hooks, x, sm, fast !== null && c.fast.enabled ? fastAuth(x, fast) : null);
    blockingModule(hooks, x, disco);
    vcardModule(hooks, x, disco);
    versionModule(hooks, x, disco);
    pepModule(hooks, x, disco);
    avatarModule(hooks, x, disco);
    if (upload !== null) uploadModule(hooks, x, disco, upload);
    registerModule(hooks, x, disco);
    if (ctx.config.muc.enabled) this.muc = mucModule(hooks, x, disco, mucStore === null ? null : storedRooms(mucStore, ctx.log), roomArchives, mucDirectory);
    // XEP-0114: stanzas to the components' domains, and the components in disco#items.
    const ttl = (ns: string) => ctx.config.timeouts.xmpp.byNamespace[ns] ?? 0;
    const domains = componentsModule(hooks, c.components, ttl, disco, ids);
    x.componentDomains = domains;
    this.components = { x, secrets: new Map(c.components.map((e) => [e.domain, e.secret])), domains, ids };
  }

  private readonly components: ComponentContext;

  /** The connection handler of a "component" listener (XEP-0114). */
  forComponents(): (conn: Conn) => void {
    return (conn) => void new ComponentSession(conn, this.components);
  }

  /** Where the core puts messages nobody online can take (any protocol's). */
  get offlineSink(): OfflineSink {
    return offlineSink(this.x);
  }

  /** Where the core puts messages for the archives of the users this worker owns; null: archives are off. */
  get archiveSink(): ArchiveSink | null {
    return this.archives === null ? null : archiveSink(this.x.config.domain, this.archives.writer);
  }

  /** The connection handler of one listener: a tcp listener with `tls` offers STARTTLS. */
  forListener(l: ListenerConfig): (conn: Conn) => void {
    const starttls = l.transport === "tcp" && l.tls !== undefined ? loadTls(l.tls) : null;
    const index = this.x.config.listeners.indexOf(l);
    return (conn) => {
      new XmppSession(conn, this.x, starttls).listenerIndex = index;
    };
  }

  /** A connection another worker of the host handed over after SASL (src/xmpp/handoff.ts) continues on this listener. */
  adopter(l: ListenerConfig): (conn: Conn, state: unknown) => void {
    const index = this.x.config.listeners.indexOf(l);
    return (conn, state) => adoptXmpp(conn, this.x, state, index);
  }
}
