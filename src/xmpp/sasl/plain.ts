/** RFC 4616: [authzid] NUL authcid NUL passwd. */
export function parsePlain(message: string): { authzid: string; authcid: string; password: string } | null {
  const parts = message.split("\u0000");
  if (parts.length !== 3 || parts[1] === "" || parts[2] === "") return null;
  return { authzid: parts[0], authcid: parts[1], password: parts[2] };
}
