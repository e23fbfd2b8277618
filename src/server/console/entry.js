// The entry page's verification (SPEC.md §16.2): everything is read from
// the page the server sent and checked here against a key the user pins;
// nothing the server says about the result is believed.
import { fromBase64, fromHex, leafHash, parseVerifierKey, verifyInclusion, verifyNote } from "/console/verify.js";

const STORE = "tally.verifierKey";
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
  const id = key.keyId.toString(16).padStart(8, "0");
  say(
    true,
    `Verified in this browser: the checkpoint of ${origin} at size ${size} is signed by the key you pinned ` +
      `(${key.name}+${id}), and entry ${index} is in that tree. Not checked here: that others see the same ` +
      `checkpoint (witness cosignatures).`,
  );
}

form.addEventListener("submit", (ev) => {
  ev.preventDefault();
  say(false, "Verifying…");
  verify().catch((e) => say(false, `Verification FAILED: ${e.message}`));
});
