/**
 * The JSON-text check for Message.body (docs/protocol.md#messages): true exactly when `JSON.parse` would accept the
 * string, decided without building the value, so that checking a body up to 4 MiB costs one
 * linear scan and memory bounded by its nesting depth, not the object graph JSON.parse would make.
 */

/** A run of string characters that need no attention (not `"`, `\\` or a control character). */
// deno-lint-ignore no-control-regex -- the control characters are exactly what the run must stop at
const PLAIN_RUN = /[^"\\\u0000-\u001f]*/y;

/**
 * True exactly when `JSON.parse(s)` would succeed (ECMA-404 grammar), without building any value:
 * one linear pass, memory bounded by the nesting depth.
 */
export function isJsonText(s: string): boolean {
  const n = s.length;
  let i = 0;
  let c = 0;
  let stack: Uint8Array | null = null; // 1 = array, 2 = object
  let depth = 0;
  let wantKey = false;
  while (i < n && ((c = s.charCodeAt(i)) === 0x20 || c === 0x0a || c === 0x0d || c === 0x09)) i++;
  for (;;) {
    // a value (or, after '{' or ',' in an object, a member key) starts at i
    if (i >= n) return false;
    c = s.charCodeAt(i);
    if (wantKey && c !== 0x22) return false;
    if (c === 0x22) {
      i++;
      for (;;) {
        // skip plain characters with the (native, non-allocating) sticky regex
        PLAIN_RUN.lastIndex = i;
        PLAIN_RUN.test(s);
        i = PLAIN_RUN.lastIndex;
        if (i >= n) return false;
        c = s.charCodeAt(i++);
        if (c === 0x22) break;
        if (c !== 0x5c) return false; // a control character
        if (i >= n) return false;
        c = s.charCodeAt(i++);
        if (c === 0x75) {
          if (i + 4 > n) return false;
          for (let h = 0; h < 4; h++) {
            const x = s.charCodeAt(i++) | 0x20;
            if (!((x >= 0x30 && x <= 0x39) || (x >= 0x61 && x <= 0x66))) return false;
          }
        } else if (
          !(c === 0x22 || c === 0x5c || c === 0x2f || c === 0x62 || c === 0x66 || c === 0x6e || c === 0x72 ||
            c === 0x74)
        ) {
          return false;
        }
      }
      if (wantKey) {
        wantKey = false;
        while (i < n && ((c = s.charCodeAt(i)) === 0x20 || c === 0x0a || c === 0x0d || c === 0x09)) i++;
        if (i >= n || s.charCodeAt(i) !== 0x3a) return false;
        i++;
        while (i < n && ((c = s.charCodeAt(i)) === 0x20 || c === 0x0a || c === 0x0d || c === 0x09)) i++;
        continue;
      }
    } else if (c === 0x7b || c === 0x5b) {
      const kind = c === 0x7b ? 2 : 1;
      i++;
      while (i < n && ((c = s.charCodeAt(i)) === 0x20 || c === 0x0a || c === 0x0d || c === 0x09)) i++;
      if (i < n && s.charCodeAt(i) === (kind === 2 ? 0x7d : 0x5d)) i++;
      else {
        let st: Uint8Array = stack ?? new Uint8Array(64);
        if (depth === st.length) {
          const bigger = new Uint8Array(depth * 2);
          bigger.set(st);
          st = bigger;
        }
        st[depth++] = kind;
        stack = st;
        wantKey = kind === 2;
        continue;
      }
    } else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      if (c === 0x2d) {
        i++;
        if (i >= n) return false;
        c = s.charCodeAt(i);
      }
      if (c === 0x30) i++;
      else if (c >= 0x31 && c <= 0x39) {
        i++;
        while (i < n && (c = s.charCodeAt(i)) >= 0x30 && c <= 0x39) i++;
      } else return false;
      if (i < n && s.charCodeAt(i) === 0x2e) {
        const from = ++i;
        while (i < n && (c = s.charCodeAt(i)) >= 0x30 && c <= 0x39) i++;
        if (i === from) return false;
      }
      if (i < n && (s.charCodeAt(i) | 0x20) === 0x65) {
        i++;
        if (i < n && ((c = s.charCodeAt(i)) === 0x2b || c === 0x2d)) i++;
        const from = i;
        while (i < n && (c = s.charCodeAt(i)) >= 0x30 && c <= 0x39) i++;
        if (i === from) return false;
      }
    } else if (c === 0x74) {
      if (!s.startsWith("true", i)) return false;
      i += 4;
    } else if (c === 0x66) {
      if (!s.startsWith("false", i)) return false;
      i += 5;
    } else if (c === 0x6e) {
      if (!s.startsWith("null", i)) return false;
      i += 4;
    } else return false;
    // after a value: close containers, or move on to the next element
    for (;;) {
      while (i < n && ((c = s.charCodeAt(i)) === 0x20 || c === 0x0a || c === 0x0d || c === 0x09)) i++;
      if (depth === 0) return i === n;
      if (i >= n) return false;
      c = s.charCodeAt(i++);
      const top = stack![depth - 1];
      if (c === 0x2c) {
        while (i < n && ((c = s.charCodeAt(i)) === 0x20 || c === 0x0a || c === 0x0d || c === 0x09)) i++;
        wantKey = top === 2;
        break;
      }
      if ((c === 0x5d && top === 1) || (c === 0x7d && top === 2)) {
        depth--;
        continue;
      }
      return false;
    }
  }
}
