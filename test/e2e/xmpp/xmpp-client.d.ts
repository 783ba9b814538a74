// @xmpp/client 0.14 ships no type declarations; tests use it loosely.
declare module "@xmpp/client" {
  export const client: (options: Record<string, unknown>) => any;
  export const xml: (name: string, attrs?: Record<string, unknown> | null, ...children: unknown[]) => any;
  export const jid: (...args: string[]) => any;
}
