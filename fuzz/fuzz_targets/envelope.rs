//! DSSE envelopes and PEM public keys (what a push and a key registration
//! carry) never panic when parsed; an envelope is verified against a fixed
//! key without panicking.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tally::attest::dsse::{Envelope, PublicKey};

const KEY: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAL69D71SSqv5dEUskORACDunDYfWH2jekzKO+kCYOBdI=\n-----END PUBLIC KEY-----\n";

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = PublicKey::from_pem(s);
    }
    if let Ok(env) = serde_json::from_slice::<Envelope>(data) {
        if let Ok(k) = PublicKey::from_pem(KEY) {
            let _ = env.verify(&[k]);
        }
    }
});
