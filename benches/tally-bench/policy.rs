//! `tally-bench policy`: how long the example policies take on CycloneDX
//! SBOMs of given sizes — building the input document once, then each
//! policy alone and the whole set as intake runs it (BENCHMARKS.md).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::anyhow;
use serde_json::json;
use tally::attest::material::Kind;
use tally::cmd::Report;
use tally::contract::{Contract, Material, PolicyRef};
use tally::exit::Failure;
use tally::policy::verdict::Evaluator;
use tally::policy::{input, Dir, Limits, Plan};

/// The example set that reads a CycloneDX SBOM.
pub(crate) const SBOM_POLICIES: &[&str] = &[
    "sbom-quality.yaml",
    "licenses-allowed.yaml",
    "no-critical-vulnerabilities.yaml",
    "sbom-has-components.rego",
];

/// A CycloneDX 1.5 SBOM of about `bytes` bytes that every example policy
/// passes: a supplier, allowed licences, high (not critical) vulnerabilities.
pub(crate) fn sbom(bytes: usize) -> Vec<u8> {
    let licences = ["MIT", "Apache-2.0", "BSD-3-Clause", "ISC"];
    let mut components = Vec::new();
    let mut vulns = Vec::new();
    let mut size = 0;
    let mut i = 0usize;
    while size < bytes {
        let c = json!({
            "type": "library",
            "bom-ref": format!("pkg:npm/example-package-{i}@1.{}.{}", i % 50, i % 7),
            "name": format!("example-package-{i}"),
            "version": format!("1.{}.{}", i % 50, i % 7),
            "purl": format!("pkg:npm/example-package-{i}@1.{}.{}", i % 50, i % 7),
            "licenses": [{"license": {"id": licences[i % licences.len()]}}],
            "hashes": [{"alg": "SHA-256", "content": format!("{:064x}", i as u128 * 0x9e37_79b9_7f4a_7c15)}],
        });
        size += c.to_string().len() + 1;
        components.push(c);
        if i % 50 == 0 {
            let v = json!({
                "id": format!("CVE-2026-{:05}", i),
                "ratings": [{"source": {"name": "NVD"}, "severity": "high", "score": 7.5}],
                "affects": [{"ref": format!("pkg:npm/example-package-{i}@1.{}.{}", i % 50, i % 7)}],
            });
            size += v.to_string().len() + 1;
            vulns.push(v);
        }
        i += 1;
    }
    serde_json::to_vec(&json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "serialNumber": "urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79",
        "metadata": {"supplier": {"name": "Example Corp"}, "component": {"type": "application", "name": "bench", "version": "1.0.0"}},
        "components": components,
        "vulnerabilities": vulns,
    }))
    .unwrap_or_default()
}

/// A one-material contract applying `policies` (from `contracts/policies`) to `sbom`.
pub(crate) fn contract(policies: &[&str]) -> Contract {
    Contract {
        name: "bench".into(),
        description: String::new(),
        runner: "any".into(),
        env: Vec::new(),
        annotations: Vec::new(),
        materials: vec![Material {
            name: "sbom".into(),
            kind: Kind::SbomCyclonedxJson,
            optional: false,
            output: false,
            group: None,
            annotations: Vec::new(),
            skip_upload: false,
            pinned: false,
        }],
        policies: policies
            .iter()
            .map(|p| PolicyRef {
                reference: format!("policies/{p}"),
                materials: vec!["sbom".into()],
                with: Vec::new(),
                blocking: true,
            })
            .collect(),
        policy_groups: Vec::new(),
    }
}

fn contracts_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("contracts")
}

fn plan(policies: &[&str], limits: Limits) -> Result<Plan, Failure> {
    Plan::load(&contract(policies), &Dir(contracts_dir()), limits).map_err(|e| {
        Failure::Unavailable(anyhow!(e
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")))
    })
}

fn median_ms(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN) * 1e3
}

/// Runs the benchmark.
pub(crate) fn policy(args: &crate::args::BenchPolicyArgs) -> Result<Report, Failure> {
    let limits = Limits {
        time: std::time::Duration::from_secs(60),
        memory: 16 << 30,
    };
    limits.install();
    let all = plan(SBOM_POLICIES, limits)?;
    let singles: Vec<(&str, Plan)> = SBOM_POLICIES
        .iter()
        .map(|p| plan(&[p], limits).map(|pl| (*p, pl)))
        .collect::<Result<_, _>>()?;
    let annotations = BTreeMap::new();
    let mut sizes = Vec::new();
    for &kib in &args.sizes_kib {
        let bytes = sbom(kib * 1024);
        let digest = format!("sha256:{}", ledger_format::hash::sha256(&bytes).to_hex());
        let m = input::Material {
            name: "sbom",
            kind: Kind::SbomCyclonedxJson,
            digest: &digest,
            bytes: Some(&bytes),
            value: None,
            annotations: &annotations,
        };
        let n = (args.iterations * 1024 / kib.max(1)).clamp(3, args.iterations);
        let mut doc_t = Vec::new();
        let mut set_t = Vec::new();
        let mut failed = 0;
        for _ in 0..n {
            let t = Instant::now();
            let _ = input::material_document(&m).map_err(|e| Failure::Unavailable(anyhow!(e)))?;
            doc_t.push(t.elapsed().as_secs_f64());
            all.memo().clear();
            let t = Instant::now();
            let evals = all.material(&m, Evaluator::ControlPlane);
            set_t.push(t.elapsed().as_secs_f64());
            failed += evals.iter().filter(|e| e.failed()).count();
        }
        // The same material again: served from the plan's memo.
        let t = Instant::now();
        let _ = all.material(&m, Evaluator::ControlPlane);
        let memo_hit_ms = t.elapsed().as_secs_f64() * 1e3;
        let mut per = serde_json::Map::new();
        for (name, p) in &singles {
            let mut ts = Vec::new();
            for _ in 0..n {
                p.memo().clear();
                let t = Instant::now();
                let _ = p.material(&m, Evaluator::ControlPlane);
                ts.push(t.elapsed().as_secs_f64());
            }
            // One policy's own cost: its evaluation minus building the input.
            per.insert((*name).into(), json!({"median_ms_with_input": median_ms(ts)}));
        }
        let components = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["components"].as_array().map(Vec::len))
            .unwrap_or(0);
        sizes.push(json!({
            "sbom_bytes": bytes.len(),
            "components": components,
            "iterations": n,
            "input_document_median_ms": median_ms(doc_t),
            "example_set_median_ms": median_ms(set_t),
            "example_set_memo_hit_ms": memo_hit_ms,
            "failed_evaluations": failed,
            "per_policy": per,
        }));
    }
    let j = json!({
        "benchmark": "policy",
        "policies": SBOM_POLICIES,
        "sizes": sizes,
    });
    Ok(Report {
        text: format!("{j}\n"),
        json: j,
    })
}
