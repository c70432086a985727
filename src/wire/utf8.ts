/**
 * UTF-8 helpers for the wire limits, which count bytes of UTF-8 while JavaScript strings count
 * UTF-16 units: the UTF-8 length of a string without encoding it, a bounded "fits in N bytes"
 * test with a fast path, and the well-formedness test (no lone surrogates) that a string needs to
 * arrive unchanged.
 */

/** UTF-8 length of a string (lone surrogates count 3 bytes, as TextEncoder writes U+FFFD). */
export function utf8Length(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) n += 1;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 2; // 2 UTF-16 units -> 4 bytes
        i++;
      } else n += 2;
    } else n += 2;
  }
  return n;
}

/** True when the UTF-8 encoding of `s` is at most `max` bytes (fast path without counting). */
export function fitsUtf8(s: string, max: number): boolean {
  if (s.length > max) return false;
  if (s.length * 3 <= max) return true;
  return utf8Length(s) <= max;
}

type WellFormed = { isWellFormed?: () => boolean };
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
/** No lone surrogates: the string survives UTF-8 unchanged. */
export const isWellFormed: (s: string) => boolean = typeof (String.prototype as WellFormed).isWellFormed === "function"
  ? (s) => (s as unknown as Required<WellFormed>).isWellFormed()
  : (s) => !LONE_SURROGATE.test(s);
