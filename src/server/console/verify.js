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
