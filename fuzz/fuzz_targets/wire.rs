//! The JSON bodies the control plane reads (serde's derive over `wire`):
//! starting, resetting and excepting runs, tokens and keys — and the
//! answers the CLI and `tally-bench` read back from a server — never panic
//! when parsed, and what parses serializes again.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tally::wire;

fn round<T: serde::de::DeserializeOwned + serde::Serialize>(data: &[u8]) {
    if let Ok(v) = serde_json::from_slice::<T>(data) {
        serde_json::to_vec(&v).expect("what parses serializes");
    }
}

fuzz_target!(|data: &[u8]| {
    round::<wire::StartRun>(data);
    round::<wire::ResetRun>(data);
    round::<wire::GrantException>(data);
    round::<wire::CreateToken>(data);
    round::<wire::AddKey>(data);
    round::<wire::CertificateRequest>(data);
    round::<wire::CertificateIssued>(data);
    round::<wire::RunStarted>(data);
    round::<wire::LogInfo>(data);
    round::<wire::InclusionProof>(data);
    round::<wire::ConsistencyProof>(data);
    round::<wire::SearchAnswer>(data);
    round::<wire::ErrorBody>(data);
});
