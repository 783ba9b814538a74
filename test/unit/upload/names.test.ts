import { test } from "node:test";
import assert from "node:assert/strict";
import { contentDisposition, contentTypeProblem, filenameProblem, normalType } from "../../../src/upload/names.js";

test("filenames: ordinary names pass, path separators, control characters, empty and too long are refused", { timeout: 5000 }, () => {
  for (const ok of ["photo.jpg", "très cool.jpg", "résumé (final) v2.pdf", "日本語.txt", ".hidden", "a".repeat(255), "é".repeat(127), "😀.png"]) assert.equal(filenameProblem(ok), null, ok);
  assert.match(filenameProblem("")!, /empty/);
  assert.match(filenameProblem("a".repeat(256))!, /longer than 255 bytes/);
  assert.match(filenameProblem("é".repeat(128))!, /longer than 255 bytes/, "counted in UTF-8 bytes");
  for (const sep of ["../etc/passwd", "a/b", "a\\b", "..\\x"]) assert.match(filenameProblem(sep)!, /path separator/, sep);
  assert.match(filenameProblem("..")!, /directory/);
  assert.match(filenameProblem(".")!, /directory/);
  for (const c of ["a\nb", "a\rb", "a\u0000b", "a\tb", "a\u007fb", "a\u0085b", "gpj.\u202eexe", "x\u2066y"]) assert.match(filenameProblem(c)!, /control character/, JSON.stringify(c));
  assert.match(filenameProblem("a\ud800b")!, /Unicode/);
});

test("content types: type/subtype with optional parameters; nothing that could split a header", { timeout: 5000 }, () => {
  for (const ok of ["image/jpeg", "application/octet-stream", "text/plain; charset=utf-8", 'text/plain;charset="utf-8"', "application/vnd.oasis.opendocument.text"]) assert.equal(contentTypeProblem(ok), null, ok);
  for (const bad of ["", "image", "image/", "/jpeg", "image/jpeg\r\nX-Evil: 1", "text/html; charset", "a b/c", "image/jpé", "x/" + "y".repeat(300)]) assert.notEqual(contentTypeProblem(bad), null, JSON.stringify(bad));
  assert.equal(normalType("Text/Plain ;  charset=utf-8"), "text/plain;charset=utf-8");
  assert.equal(normalType("IMAGE/JPEG"), "image/jpeg");
});

test("Content-Disposition: inline only for plain media, an ASCII fallback and the exact name (RFC 6266, RFC 8187)", { timeout: 5000 }, () => {
  assert.equal(contentDisposition("très cool.jpg", "image/jpeg"), `inline; filename="tr_s cool.jpg"; filename*=UTF-8''tr%C3%A8s%20cool.jpg`);
  assert.equal(contentDisposition('a"b\\c.html', "text/html"), `attachment; filename="a_b_c.html"; filename*=UTF-8''a%22b%5Cc.html`);
  assert.match(contentDisposition("x.svg", "image/svg+xml"), /^attachment;/, "SVG can run scripts");
  assert.match(contentDisposition("x.txt", "text/plain; charset=utf-8"), /^inline;/);
  assert.match(contentDisposition("it's (1).bin", "application/octet-stream"), /filename\*=UTF-8''it%27s%20%281%29\.bin$/);
});
