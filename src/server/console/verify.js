// tally's in-browser verifier (SPEC.md §16): RFC 9162 Merkle inclusion and
// consistency proofs on the browser's WebCrypto, written apart from the Rust
// implementation (ledger-format/src/merkle.rs) so that a page served by a
// lying server is checked by code that does not share the server's bugs.
// The tests run it on ../shared/vectors/ in headless Chromium and compare
// every verdict with the Rust one.
//
// Hashes are Uint8Array; indices and sizes are BigInt (a log may pass 2^53).

const HASH_LEN = 32;

function concat(parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

async function sha256(...parts) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", concat(parts)));
}

function equal(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

function isHash(h) {
  return h instanceof Uint8Array && h.length === HASH_LEN;
}

function asSize(n, what) {
  const v = typeof n === "bigint" ? n : BigInt(n);
  if (v < 0n || v >= 1n << 64n) throw new Error(`${what} ${v} is not a 64-bit size`);
  return v;
}

/** The RFC 9162 leaf hash of an entry: SHA-256(0x00 || entry). */
export async function leafHash(entry) {
  return sha256(Uint8Array.of(0), entry);
}

/** An interior node: SHA-256(0x01 || left || right). */
export async function nodeHash(left, right) {
  return sha256(Uint8Array.of(1), left, right);
}

/**
 * Whether `proof` proves the leaf `leaf` (a leaf hash) at `index` in the tree
 * of `size` leaves whose root is `root` (RFC 9162 §2.1.3.2). Throws on a
 * malformed argument; returns false on a proof that does not verify.
 */
export async function verifyInclusion(index, size, leaf, proof, root) {
  let fn = asSize(index, "index");
  let sn = asSize(size, "tree size");
  if (fn >= sn) return false;
  if (!isHash(leaf) || !isHash(root) || !proof.every(isHash)) return false;
  sn -= 1n;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0n) return false;
    if ((fn & 1n) === 1n || fn === sn) {
      r = await nodeHash(p, r);
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  return sn === 0n && equal(r, root);
}

/**
 * Whether `proof` proves the tree of `size1` leaves with root `root1` a
 * prefix of the tree of `size2` leaves with root `root2` (RFC 9162
 * §2.1.4.2). An old size of 0 is refused, as by the Rust verifier and
 * transparency-dev/merkle: such a proof proves nothing (a checkpoint of
 * size 0 is consistent with any later one without a proof).
 */
export async function verifyConsistency(size1, size2, root1, root2, proof) {
  const s1 = asSize(size1, "old size");
  const s2 = asSize(size2, "new size");
  if (!isHash(root1) || !isHash(root2) || !proof.every(isHash)) return false;
  if (s1 > s2) return false;
  if (s1 === 0n) return false;
  if (s1 === s2) return proof.length === 0 && equal(root1, root2);
  if (proof.length === 0) return false;
  // An old size that is a power of two: its root starts the path.
  const path = (s1 & (s1 - 1n)) === 0n ? [root1, ...proof] : proof;
  let fn = s1 - 1n;
  let sn = s2 - 1n;
  while ((fn & 1n) === 1n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  let fr = path[0];
  let sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0n) return false;
    if ((fn & 1n) === 1n || fn === sn) {
      fr = await nodeHash(c, fr);
      sr = await nodeHash(c, sr);
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      sr = await nodeHash(sr, c);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  return sn === 0n && equal(fr, root1) && equal(sr, root2);
}

/** Decodes standard base64 (what checkpoints and the JSON API use). */
export function fromBase64(s) {
  const bin = atob(s);
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

/** Decodes lowercase or uppercase hex. */
export function fromHex(s) {
  if (s.length % 2 !== 0 || /[^0-9a-fA-F]/.test(s)) throw new Error("not hex");
  return Uint8Array.from(s.match(/../g) ?? [], (b) => parseInt(b, 16));
}

// C2SP signed notes (signed-note.md) and cosignatures (tlog-cosignature.md):
// Ed25519 (0x01), ECDSA P-256 (0x02) and cosignature/v1 (0x04) keys.

const ALG_ED25519 = 1;
const ALG_ECDSA_P256 = 2;
const ALG_COSIGNATURE_V1 = 4;
/** Most signature lines a note may have (as golang.org/x/mod/sumdb/note). */
export const MAX_SIGNATURES = 100;
// Unicode White_Space, which a key name must not contain, and '+'.
const BAD_NAME = /[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000+]/u;
const B64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Strict standard base64: padded, canonical; throws otherwise. */
function strictBase64(s, what) {
  if (!B64.test(s)) throw new Error(`${what} is not valid base64`);
  const bytes = fromBase64(s);
  if (btoa(String.fromCharCode(...bytes)) !== s) throw new Error(`${what} is not canonical base64`);
  return bytes;
}

function checkName(name) {
  return name.length > 0 && !BAD_NAME.test(name);
}

function u32(b) {
  return ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0;
}

/**
 * Parses verifier-key text `<name>+<8 hex id>+<base64(type ‖ key)>` and
 * imports the key into WebCrypto; throws on anything malformed, an
 * unsupported type, or a key id that does not match the key.
 */
export async function parseVerifierKey(text) {
  const t = text.trim();
  const first = t.indexOf("+");
  const second = first < 0 ? -1 : t.indexOf("+", first + 1);
  if (second < 0) throw new Error("expected <name>+<hex key id>+<base64 key>");
  const name = t.slice(0, first);
  const idHex = t.slice(first + 1, second);
  if (!checkName(name)) throw new Error(`key name ${JSON.stringify(name)} is invalid`);
  if (!/^[0-9a-f]{8}$/.test(idHex)) throw new Error(`key id ${JSON.stringify(idHex)} is not 8 lowercase hex digits`);
  const raw = strictBase64(t.slice(second + 1), "the key");
  if (raw.length === 0) throw new Error("the key is empty");
  const alg = raw[0];
  const keyBytes = raw.slice(1);
  let computed;
  let key;
  if (alg === ALG_ED25519 || alg === ALG_COSIGNATURE_V1) {
    if (keyBytes.length !== 32) throw new Error(`an Ed25519 key is 32 bytes, got ${keyBytes.length}`);
    key = await crypto.subtle.importKey("raw", keyBytes, { name: "Ed25519" }, false, ["verify"]);
    computed = u32(await sha256(new TextEncoder().encode(name + "\n"), Uint8Array.of(alg), keyBytes));
  } else if (alg === ALG_ECDSA_P256) {
    key = await crypto.subtle.importKey("spki", keyBytes, { name: "ECDSA", namedCurve: "P-256" }, false, [
      "verify",
    ]);
    computed = u32(await sha256(keyBytes));
  } else {
    throw new Error(`unsupported key type 0x${alg.toString(16).padStart(2, "0")}`);
  }
  const keyId = parseInt(idHex, 16);
  if (keyId !== computed) throw new Error(`key id ${idHex} does not match the key`);
  return { name, keyId, alg, key, text: t };
}

/**
 * Parses a signed note (bytes or string): its text (ending in "\n") and its
 * signature lines `— <name> <base64(key id ‖ signature)>`. Throws on
 * anything C2SP or tally's parser (SPEC.md §4) refuses.
 */
export function parseNote(note) {
  const s = typeof note === "string" ? note : new TextDecoder("utf-8", { fatal: true }).decode(note);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if ((c < 0x20 && c !== 0x0a) || c === 0x7f) throw new Error(`note contains control character ${c}`);
  }
  const split = s.lastIndexOf("\n\n");
  if (split < 0) throw new Error("note has no blank line separating its text from its signatures");
  const text = s.slice(0, split + 1);
  const block = s.slice(split + 2);
  if (block.length === 0) throw new Error("note has a blank line but no signature lines after it");
  if (!block.endsWith("\n")) throw new Error("the last signature line does not end with a newline");
  const lines = block.slice(0, -1).split("\n");
  if (lines.length > MAX_SIGNATURES) throw new Error(`note has ${lines.length} signature lines`);
  const signatures = lines.map((line, i) => {
    const bad = (why) => new Error(`signature line ${i + 1} is malformed: ${why}`);
    if (!line.startsWith("\u2014 ")) throw bad("it does not start with an em dash and a space");
    const rest = line.slice(2);
    const space = rest.indexOf(" ");
    if (space < 0) throw bad("it has no space between key name and signature");
    const name = rest.slice(0, space);
    if (!checkName(name)) throw bad("the key name is empty or has a '+'");
    let raw;
    try {
      raw = strictBase64(rest.slice(space + 1), "the signature");
    } catch {
      throw bad("the signature is not valid base64");
    }
    if (raw.length < 5) throw bad("the signature is shorter than a key id plus one byte");
    return { name, keyId: u32(raw), signature: raw.slice(4) };
  });
  if (text.length <= 1) throw new Error("note text must be non-empty and end with a newline");
  return { text, signatures };
}

/** An ASN.1 DER ECDSA signature as WebCrypto's r ‖ s (32 bytes each), or null. */
function derToP1363(der) {
  // SEQUENCE { INTEGER r, INTEGER s }, short-form lengths only (≤ 72 bytes).
  if (der.length < 8 || der[0] !== 0x30 || der[1] !== der.length - 2) return null;
  const out = new Uint8Array(64);
  let at = 2;
  for (let k = 0; k < 2; k++) {
    if (der[at] !== 0x02) return null;
    const len = der[at + 1];
    const int = der.subarray(at + 2, at + 2 + len);
    if (len === 0 || int.length !== len || len > 33) return null;
    // Minimal encoding: no needless leading zero, no negative number.
    if (int[0] & 0x80) return null;
    if (len > 1 && int[0] === 0 && !(int[1] & 0x80)) return null;
    const v = int[0] === 0 && len > 1 ? int.subarray(1) : int;
    if (v.length > 32) return null;
    out.set(v, k * 32 + 32 - v.length);
    at += 2 + len;
  }
  return at === der.length ? out : null;
}

/** The message a cosignature/v1 signs: `cosignature/v1\ntime <t>\n` ‖ body. */
function cosignatureMessage(timestamp, body) {
  return new TextEncoder().encode(`cosignature/v1\ntime ${timestamp}\n${body}`);
}

/** Whether `sig` by `k` signs `text`; for a cosignature, its time (BigInt) or false. */
async function checkSignature(k, text, sig) {
  const body = new TextEncoder().encode(text);
  if (k.alg === ALG_ED25519) {
    return sig.length === 64 && (await crypto.subtle.verify({ name: "Ed25519" }, k.key, sig, body));
  }
  if (k.alg === ALG_ECDSA_P256) {
    const p1363 = derToP1363(sig);
    return p1363 !== null && (await crypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, k.key, p1363, body));
  }
  if (sig.length !== 72) return false;
  const timestamp = new DataView(sig.buffer, sig.byteOffset, 8).getBigUint64(0);
  const ok = await crypto.subtle.verify({ name: "Ed25519" }, k.key, sig.slice(8), cosignatureMessage(timestamp, text));
  return ok ? timestamp : false;
}

/**
 * Verifies a signed note against trusted keys (from `parseVerifierKey`):
 * signatures by unknown keys are ignored, one by a known key that does not
 * verify rejects the note, and at least one signature by a key that is not
 * a cosignature key is required. Returns `{text, verified: [{name, keyId,
 * alg, timestamp}], unverified: [{name, keyId}]}`; throws otherwise.
 */
export async function verifyNote(note, keys) {
  const parsed = parseNote(note);
  const verified = [];
  const unverified = [];
  for (const sig of parsed.signatures) {
    const k = keys.find((k) => k.name === sig.name && k.keyId === sig.keyId);
    if (!k) {
      unverified.push({ name: sig.name, keyId: sig.keyId });
      continue;
    }
    const ok = await checkSignature(k, parsed.text, sig.signature);
    if (ok === false) throw new Error(`signature by ${sig.name} does not verify`);
    if (!verified.some((v) => v.name === sig.name && v.keyId === sig.keyId)) {
      verified.push({ name: sig.name, keyId: sig.keyId, alg: k.alg, timestamp: ok === true ? null : ok });
    }
  }
  if (!verified.some((v) => v.alg !== ALG_COSIGNATURE_V1)) {
    throw new Error(`note has no signature from any trusted key (known: ${keys.map((k) => k.name).join(", ")})`);
  }
  return { text: parsed.text, verified, unverified };
}
