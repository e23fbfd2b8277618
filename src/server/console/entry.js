// The entry page's verification (SPEC.md §16.2): everything is read from
// the page the server sent and checked here against a key the user pins;
// nothing the server says about the result is believed.
import {
  fromBase64,
  fromHex,
  leafHash,
  parseVerifierKey,
  verifyConsistency,
  verifyInclusion,
  verifyNote,
} from "/console/verify.js";

const STORE = "tally.verifierKey";
// The latest checkpoint this browser verified, per log key: {size, root}.
const SEEN = (key) => `tally.seen.${key.name}+${key.keyId}`;
const form = document.getElementById("verify-form");
const keyInput = document.getElementById("key");
const verdict = document.getElementById("verdict");
keyInput.value = localStorage.getItem(STORE) ?? "";

function say(ok, text) {
  verdict.textContent = text;
  verdict.className = ok ? "verified" : "failed";
}

async function verify() {
  const key = await parseVerifierKey(keyInput.value);
  localStorage.setItem(STORE, key.text);
  const note = await verifyNote(document.getElementById("checkpoint").textContent, [key]);
  // The checkpoint's body: origin, tree size, root hash (C2SP tlog-checkpoint).
  const [origin, sizeText, rootText] = note.text.split("\n");
  if (!/^(0|[1-9][0-9]*)$/.test(sizeText ?? "")) throw new Error("the checkpoint's size line is not a number");
  const root = fromBase64(rootText ?? "");
  const entry = document.getElementById("entry");
  const bytes = fromBase64(entry.dataset.bytes ?? "");
  if (new TextDecoder().decode(bytes) !== entry.textContent) {
    throw new Error("the entry shown is not the entry the page asks to verify");
  }
  const index = BigInt(entry.dataset.index);
  const proof = Array.from(document.querySelectorAll("#proof code"), (c) => fromHex(c.textContent.trim()));
  const size = BigInt(sizeText);
  if (!(await verifyInclusion(index, size, await leafHash(bytes), proof, root))) {
    throw new Error(`the inclusion proof does not prove entry ${index} in the checkpoint's tree of size ${size}`);
  }
  const history = await checkHistory(key, size, root);
  const id = key.keyId.toString(16).padStart(8, "0");
  say(
    true,
    `Verified in this browser: the checkpoint of ${origin} at size ${size} is signed by the key you pinned ` +
      `(${key.name}+${id}), and entry ${index} is in that tree. ${history} Not checked here: that others see ` +
      `the same checkpoint (witness cosignatures).`,
  );
}

/**
 * Checks the checkpoint against the last one this browser verified for
 * the key: the log may only have grown from it (an RFC 9162 consistency
 * proof, asked of the server and verified here). Remembers the newer one.
 */
async function checkHistory(key, size, root) {
  const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  const seen = JSON.parse(localStorage.getItem(SEEN(key)) ?? "null");
  let said = "This browser had verified no earlier checkpoint of this log.";
  if (seen) {
    const oldSize = BigInt(seen.size);
    const oldRoot = fromHex(seen.root);
    if (oldSize > size) {
      throw new Error(`this browser verified a larger tree before (size ${oldSize}): the log went back in time`);
    }
    if (oldSize === size) {
      if (seen.root !== hex(root)) throw new Error(`the log's root at size ${size} differs from the one verified before`);
      said = `It is the checkpoint this browser verified before.`;
    } else if (oldSize > 0n) {
      const r = await fetch(`/api/v1/proof/consistency?old=${oldSize}&new=${size}`);
      if (!r.ok) throw new Error(`the server gave no consistency proof from size ${oldSize} (HTTP ${r.status})`);
      const p = await r.json();
      const proof = (p.proof ?? []).map(fromHex);
      if (!(await verifyConsistency(oldSize, size, oldRoot, root, proof))) {
        throw new Error(
          `the log at size ${size} is not an extension of the one this browser verified at size ${oldSize}: ` +
            `the server shows different histories`,
        );
      }
      said = `It extends the checkpoint this browser verified before (size ${oldSize}): consistency proven.`;
    }
  }
  localStorage.setItem(SEEN(key), JSON.stringify({ size: size.toString(), root: hex(root) }));
  return said;
}

form.addEventListener("submit", (ev) => {
  ev.preventDefault();
  say(false, "Verifying…");
  verify().catch((e) => say(false, `Verification FAILED: ${e.message}`));
});
