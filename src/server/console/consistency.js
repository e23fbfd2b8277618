// The consistency page's verification (SPEC.md §16.2): both checkpoints
// and the proof are read from the page and checked here against a key the
// user pins; nothing the server says about the result is believed.
import { fromBase64, fromHex, parseVerifierKey, verifyConsistency, verifyNote } from "/console/verify.js";

const STORE = "tally.verifierKey";
const form = document.getElementById("verify-form");
const keyInput = document.getElementById("key");
const verdict = document.getElementById("verdict");
keyInput.value = localStorage.getItem(STORE) ?? "";

function say(ok, text) {
  verdict.textContent = text;
  verdict.className = ok ? "verified" : "failed";
}

/** A checkpoint from the page, its signature verified under `key`. */
async function checkpoint(id, key) {
  const note = await verifyNote(document.getElementById(id).textContent, [key]);
  const [origin, sizeText, rootText] = note.text.split("\n");
  if (!/^(0|[1-9][0-9]*)$/.test(sizeText ?? "")) throw new Error(`the ${id} size line is not a number`);
  return { origin, size: BigInt(sizeText), root: fromBase64(rootText ?? "") };
}

async function verify() {
  const key = await parseVerifierKey(keyInput.value);
  localStorage.setItem(STORE, key.text);
  const older = await checkpoint("checkpoint-old", key);
  const newer = await checkpoint("checkpoint-new", key);
  if (older.origin !== newer.origin) throw new Error("the two checkpoints are of different logs");
  const proof = Array.from(document.querySelectorAll("#proof code"), (c) => fromHex(c.textContent.trim()));
  let how;
  if (older.size === 0n) {
    how = "the older tree is empty, a prefix of every tree";
  } else {
    if (!(await verifyConsistency(older.size, newer.size, older.root, newer.root, proof))) {
      throw new Error(
        `the tree of size ${newer.size} is not an extension of the tree of size ${older.size}: the log's history was rewritten`,
      );
    }
    how = "the consistency proof verifies";
  }
  const id = key.keyId.toString(16).padStart(8, "0");
  say(
    true,
    `Verified in this browser: both checkpoints of ${older.origin} are signed by the key you pinned ` +
      `(${key.name}+${id}), and the tree of size ${older.size} is a prefix of the tree of size ${newer.size} (${how}).`,
  );
}

// The button is disabled in the page as served: without JavaScript there is
// nothing to verify with, and the page says so.
form.querySelector("button[type=submit]").disabled = false;
form.addEventListener("submit", (ev) => {
  ev.preventDefault();
  say(false, "Verifying…");
  verify().catch((e) => say(false, `Verification FAILED: ${e.message}`));
});
