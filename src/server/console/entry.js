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
const WITNESSES = "tally.witnessKeys";
const ALG_COSIGNATURE_V1 = 0x04;
// The latest checkpoint this browser verified, per log key: {size, root}.
const SEEN = (key) => `tally.seen.${key.name}+${key.keyId}`;
const form = document.getElementById("verify-form");
const keyInput = document.getElementById("key");
const verdict = document.getElementById("verdict");
const witnessInput = document.getElementById("witness-keys");
keyInput.value = localStorage.getItem(STORE) ?? "";
witnessInput.value = localStorage.getItem(WITNESSES) ?? "";

function say(ok, text) {
  verdict.textContent = text;
  verdict.className = ok ? "verified" : "failed";
}

async function verify() {
  const key = await parseVerifierKey(keyInput.value);
  const lines = witnessInput.value.split("\n").map((l) => l.trim()).filter((l) => l !== "");
  const witnesses = [];
  for (const l of lines) {
    const w = await parseVerifierKey(l);
    if (w.alg !== ALG_COSIGNATURE_V1) throw new Error(`witness key ${w.name} is not a cosignature/v1 key`);
    witnesses.push(w);
  }
  localStorage.setItem(STORE, key.text);
  localStorage.setItem(WITNESSES, witnesses.map((w) => w.text).join("\n"));
  const note = await verifyNote(document.getElementById("checkpoint").textContent, [key, ...witnesses]);
  // Every pinned witness must have cosigned this very checkpoint.
  const cosigned = [];
  for (const w of witnesses) {
    const v = note.verified.find((s) => s.name === w.name && s.keyId === w.keyId);
    if (!v) throw new Error(`the checkpoint carries no cosignature of witness ${w.name} (a key you require)`);
    cosigned.push(`${w.name} at ${new Date(Number(v.timestamp) * 1000).toISOString()}`);
  }
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
      `(${key.name}+${id}), and entry ${index} is in that tree. ${history} ` +
      (cosigned.length > 0
        ? `Cosigned by the witnesses you require: ${cosigned.join("; ")} (they saw this checkpoint and no inconsistent one).`
        : `Not checked here: that others see the same checkpoint (pin witness keys to require their cosignatures).`),
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

// The button is disabled in the page as served: without JavaScript there is
// nothing to verify with, and the page says so.
form.querySelector("button[type=submit]").disabled = false;
form.addEventListener("submit", (ev) => {
  ev.preventDefault();
  say(false, "Verifying…");
  verify().catch((e) => say(false, `Verification FAILED: ${e.message}`));
});
