/** `--key value`, `--key=value` and bare `--flag` ("true") from the command line; other words are ignored. */
export function benchArgs(argv: string[] = process.argv.slice(2)): Record<string, string> {
  const a: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    if (!argv[i].startsWith("--")) continue;
    const eq = argv[i].indexOf("=");
    if (eq > 0) a[argv[i].slice(2, eq)] = argv[i].slice(eq + 1);
    else a[argv[i].slice(2)] = argv[i + 1] !== undefined && !argv[i + 1].startsWith("--") ? argv[++i] : "true";
  }
  return a;
}
