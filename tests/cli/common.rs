//! Helpers for the CLI tests: running the real binary, writing a tiled log.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ledger_format::checkpoint::Checkpoint;
use ledger_format::entry::{ContractRevision, Entry};
use ledger_format::hash::{leaf_hash, sha256, Hash};
use ledger_format::merkle::{HashSource, MemoryTree};
use ledger_format::note::SignerKey;
use ledger_format::tile::{encode_bundle, encode_tile, tiles_for_size, BundleId, TILE_WIDTH};

pub fn tally(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(args)
        .output()
        .expect("run tally")
}

pub fn code(o: &Output) -> i32 {
    o.status.code().expect("exit code")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn log_key() -> SignerKey {
    SignerKey::from_seed("tally.test/log", &[9; 32]).unwrap()
}

pub fn entry(i: u64) -> Entry {
    Entry {
        envelope_digest: sha256(envelope(i).as_bytes()),
        envelope_size: envelope(i).len() as u64,
        contract: ContractRevision {
            name: "release".into(),
            commit: format!("{:040x}", i + 1),
            blob: format!("{:040x}", i + 2),
        },
        project: "payments".into(),
        workflow: "build".into(),
        run: format!("run-{i}"),
        verdict: None,
    }
}

pub fn envelope(i: u64) -> String {
    format!("{{\"payload\":\"{i}\",\"payloadType\":\"application/vnd.in-toto+json\",\"signatures\":[]}}")
}

/// An in-memory tiled log: every resource by path, as a log would serve it.
pub struct TestLog {
    pub tree: MemoryTree,
    pub entries: Vec<Vec<u8>>,
    pub files: BTreeMap<String, Vec<u8>>,
}

impl TestLog {
    /// Builds the log of `entries` and signs its checkpoint with `key`.
    pub fn build(entries: Vec<Vec<u8>>, key: &SignerKey) -> TestLog {
        let mut tree = MemoryTree::new();
        for e in &entries {
            tree.push(leaf_hash(e));
        }
        let size = tree.size();
        let mut files = BTreeMap::new();
        for t in tiles_for_size(size) {
            let ids: Vec<_> = (0..u64::from(t.width)).map(|p| t.node(p)).collect();
            let hashes: Vec<Hash> = tree.hashes(&ids).unwrap();
            files.insert(t.path(), encode_tile(&hashes));
        }
        for b in 0..size.div_ceil(TILE_WIDTH) {
            let id = BundleId::for_entry(b * TILE_WIDTH, size);
            let start = (b * TILE_WIDTH) as usize;
            let chunk = &entries[start..start + usize::from(id.width)];
            files.insert(id.path(), encode_bundle(chunk).unwrap());
        }
        files.insert("checkpoint".into(), TestLog::checkpoint(&tree, key).into_bytes());
        TestLog { tree, entries, files }
    }

    pub fn checkpoint(tree: &MemoryTree, key: &SignerKey) -> String {
        Checkpoint::new(key.name(), tree.size(), tree.root())
            .unwrap()
            .sign(key)
            .unwrap()
            .to_text()
    }

    pub fn write(&self, dir: &Path) {
        for (p, bytes) in &self.files {
            let full = dir.join(p);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, bytes).unwrap();
        }
    }
}

pub fn tally_entries(n: u64) -> Vec<Vec<u8>> {
    (0..n).map(|i| entry(i).to_bytes()).collect()
}

pub fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

pub fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[path = "../support/vectors.rs"]
mod support_vectors;
pub use support_vectors::{json_files, vectors_dir};

/// A static file server (Python's http.server) on loopback; killed on drop.
pub struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Serves `dir` over HTTP; returns the server and its URL.
pub fn serve(dir: &std::path::Path) -> (Server, String) {
    let port = free_port();
    let child = Command::new("python3")
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
            "--directory",
            dir.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let server = Server(child);
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    (server, format!("http://127.0.0.1:{port}"))
}

/// The CNCF distribution registry (Debian's `docker-registry`) on a free
/// loopback port with filesystem storage; killed on drop.
pub struct Registry {
    child: std::process::Child,
    /// `127.0.0.1:<port>`.
    pub addr: String,
    cfg: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a registry, or `None` (with a notice) when `docker-registry` is
/// not installed outside CI; under `CI=true` it must be.
pub fn registry() -> Option<Registry> {
    registry_with("")
}

/// Like [`registry`], with `extra` YAML appended to its config (e.g. `auth:`).
pub fn registry_with(extra: &str) -> Option<Registry> {
    let installed = Command::new("docker-registry")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("docker-registry is required under CI=true (.ci/run installs it)");
        }
        println!("skipping: docker-registry is not installed");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let cfg = dir.path().join("config.yml");
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{extra}",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let child = spawn_registry(&cfg, &addr);
    Some(Registry {
        child,
        addr,
        cfg,
        _dir: dir,
    })
}

fn spawn_registry(cfg: &Path, addr: &str) -> std::process::Child {
    let mut child = Command::new("docker-registry")
        .arg("serve")
        .arg(cfg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if std::net::TcpStream::connect(addr).is_ok() {
            return child;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("docker-registry did not start on {addr}");
}

impl Registry {
    /// Kills the registry (its storage stays).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same address and storage.
    pub fn restart(&mut self) {
        self.stop();
        self.child = spawn_registry(&self.cfg, &self.addr);
    }

    /// The registry's own answer to `GET /v2/<path>` (status, body).
    pub fn get(&self, path: &str, accept: &str) -> (u16, Vec<u8>) {
        let r = reqwest::blocking::Client::new()
            .get(format!("http://{}/v2/{path}", self.addr))
            .header("accept", accept)
            .send()
            .unwrap();
        (r.status().as_u16(), r.bytes().unwrap().to_vec())
    }

    /// Pushes a one-layer OCI image `repo:tag` over the registry's HTTP API;
    /// returns the manifest's `sha256:<hex>`.
    pub fn push_image(&self, repo: &str, tag: &str, layer: &[u8]) -> String {
        let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
        self.push_artifact(
            repo,
            tag,
            ("application/vnd.oci.image.config.v1+json", config),
            &[("application/vnd.oci.image.layer.v1.tar", layer)],
        )
    }

    /// Pushes an OCI manifest `repo:tag` with `config` and `layers` (media
    /// type, bytes) over the registry's HTTP API; returns its `sha256:<hex>`.
    pub fn push_artifact(
        &self,
        repo: &str,
        tag: &str,
        config: (&str, &[u8]),
        layers: &[(&str, &[u8])],
    ) -> String {
        use sha2::Digest as _;
        let http = reqwest::blocking::Client::new();
        let blob = |bytes: &[u8]| -> String {
            let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)));
            let r = http
                .post(format!("http://{}/v2/{repo}/blobs/uploads/", self.addr))
                .send()
                .unwrap();
            assert_eq!(r.status().as_u16(), 202, "starting an upload");
            let loc = r.headers()["location"].to_str().unwrap().to_owned();
            let url = if loc.starts_with("http") {
                loc
            } else {
                format!("http://{}{loc}", self.addr)
            };
            let sep = if url.contains('?') { '&' } else { '?' };
            let r = http
                .put(format!("{url}{sep}digest={digest}"))
                .header("content-type", "application/octet-stream")
                .body(bytes.to_vec())
                .send()
                .unwrap();
            assert_eq!(r.status().as_u16(), 201, "finishing an upload");
            digest
        };
        let layers: Vec<serde_json::Value> = layers
            .iter()
            .map(|(t, b)| serde_json::json!({"mediaType": t, "digest": blob(b), "size": b.len()}))
            .collect();
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": config.0, "digest": blob(config.1), "size": config.1.len()},
            "layers": layers,
        })
        .to_string();
        let r = http
            .put(format!("http://{}/v2/{repo}/manifests/{tag}", self.addr))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest.clone())
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 201, "pushing the manifest");
        format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(manifest.as_bytes()))
        )
    }
}

/// A gzip'd tar of `entries` (path, text), as a chart or report archive is.
pub fn tgz(entries: &[(&str, &str)]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut t = tar::Builder::new(gz);
    for (n, body) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        t.append_data(&mut h, n, body.as_bytes()).unwrap();
    }
    t.into_inner().unwrap().finish().unwrap()
}

/// git in `dir` as SecOps (author and committer set), with `$TALLY` naming
/// the binary under test (for the hooks).
pub fn git_command(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("git");
    c.arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "SecOps")
        .env("GIT_AUTHOR_EMAIL", "secops@example.com")
        .env("GIT_COMMITTER_NAME", "SecOps")
        .env("GIT_COMMITTER_EMAIL", "secops@example.com")
        .env("TALLY", env!("CARGO_BIN_EXE_tally"));
    c
}

/// Runs git in `dir` (asserting success) and returns its trimmed stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let o = git_command(dir, args).output().unwrap();
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

/// A contracts repository holding the examples, committed on `main`.
pub fn contracts_repo(dir: &Path) -> PathBuf {
    let repo = dir.join("contracts");
    std::fs::create_dir_all(&repo).unwrap();
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("contracts");
    for n in [
        "build-and-release.toml",
        "quality-gates.toml",
        "security-advisories.toml",
        "workflows.toml",
    ] {
        std::fs::copy(src.join(n), repo.join(n)).unwrap();
    }
    std::fs::create_dir_all(repo.join("policies")).unwrap();
    for e in std::fs::read_dir(src.join("policies")).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), repo.join("policies").join(e.file_name())).unwrap();
        }
    }
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "contracts v1"]);
    repo
}

/// Whether `python3` can import `modules` (comma-separated); outside CI a
/// missing one skips the caller's test (with a line saying so), under
/// `CI=true` it fails it (CI installs them).
/// Runs the fixture script `tests/fixtures/<script>` with `args`, `input`
/// on its standard input: whether it succeeded, and what it printed.
pub fn python_fixture(script: &str, args: &[&std::ffi::OsStr], input: &str) -> (bool, String) {
    use std::io::Write as _;
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(script);
    let mut child = Command::new("python3")
        .arg(path)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

pub fn python_has(modules: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "python3 with {modules} is required under CI=true"
        );
        println!("skipping: python3 with {modules} is not available");
    }
    ok
}

/// Starts `tests/fixtures/<script>` under python3 with `args`; it prints
/// the loopback port it serves on, returned with the child.
pub fn python_fixture_server(script: &str, args: &[&Path]) -> (std::process::Child, u16) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(script);
    let mut child = Command::new("python3")
        .arg(script)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut port = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut port,
    )
    .unwrap();
    (child, port.trim().parse().expect("the fixture prints its port"))
}
