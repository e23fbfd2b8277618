//! Where the outside test vectors are, for both test crates (the `tally`
//! crate's `tests/cli` and `ledger-format`'s `tests/it` include this file).

use std::path::PathBuf;

/// The outside vectors directory — `$TALLY_VECTORS`, else `shared/vectors`
/// beside the workspace — or `None` (with a printed notice) when it is absent
/// outside CI. Under `CI=true` a missing folder fails the test.
pub fn vectors_dir() -> Option<PathBuf> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::var_os("TALLY_VECTORS")
        .map(PathBuf::from)
        .or_else(|| {
            manifest
                .ancestors()
                .map(|a| a.join("../shared/vectors"))
                .find(|d| d.is_dir())
        })
        .unwrap_or_else(|| manifest.join("../shared/vectors"));
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "shared vectors missing at {} (required under CI=true)",
            dir.display()
        );
    }
    println!("skipping: shared vectors not found at {}", dir.display());
    None
}

/// Every `.json` file under `dir`, recursively, sorted.
pub fn json_files(dir: &std::path::Path) -> Vec<PathBuf> {
    fn walk(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "json") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out.sort();
    out
}
