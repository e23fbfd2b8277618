//! The git HEAD of the working directory, read with gix: it becomes a
//! subject of the attestation (SPEC.md §11.4).

use std::path::Path;

use serde::{Deserialize, Serialize};

/// The commit checked out where the pipeline runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitHead {
    /// The commit id (hex).
    pub commit: String,
    /// The checked-out branch, if HEAD is not detached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// `Name <email>` of the author.
    pub author: String,
    /// Author time, RFC 3339.
    pub author_date: String,
    /// `Name <email>` of the committer.
    pub committer: String,
    /// The commit message.
    pub message: String,
    /// Whether the commit carries a signature (`gpgsig`); not verified here.
    pub signed: bool,
    /// Remotes by name, credentials removed from their URLs.
    pub remotes: Vec<Remote>,
}

/// A configured remote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remote {
    /// Its name.
    pub name: String,
    /// Its fetch URL without user or password.
    pub url: String,
}

/// Reads HEAD of the repository containing `dir`; `Ok(None)` when `dir` is
/// not in a git repository or HEAD has no commit yet.
pub fn head(dir: &Path) -> Result<Option<GitHead>, String> {
    let repo = match gix::discover(dir) {
        Ok(r) => r,
        Err(e) if e.classify().is_not_found() => return Ok(None),
        Err(e) => return Err(format!("opening the git repository at {}: {e}", dir.display())),
    };
    let mut head = repo.head().map_err(|e| format!("reading HEAD: {e}"))?;
    let branch = head.referent_name().map(|n| n.shorten().to_string());
    let Ok(commit) = head.peel_to_commit() else {
        return Ok(None);
    };
    let who = |s: gix::actor::SignatureRef<'_>| format!("{} <{}>", s.name, s.email);
    let author = commit.author().map_err(|e| format!("reading the author: {e}"))?;
    let committer = commit
        .committer()
        .map_err(|e| format!("reading the committer: {e}"))?;
    let seconds = author.time().map(|t| t.seconds).unwrap_or(0);
    let author_date = jiff::Timestamp::from_second(seconds)
        .map(|t| t.to_string())
        .unwrap_or_default();
    let message = commit
        .message_raw()
        .map_err(|e| format!("reading the message: {e}"))?
        .to_string();
    let signed = commit
        .decode()
        .map_err(|e| format!("decoding the commit: {e}"))?
        .extra_headers()
        .pgp_signature()
        .is_some();
    let mut remotes = Vec::new();
    for name in repo.remote_names() {
        let Ok(remote) = repo.find_remote(AsRef::<gix::bstr::BStr>::as_ref(&name)) else {
            continue;
        };
        if let Some(url) = remote.url(gix::remote::Direction::Fetch) {
            let mut url = url.clone();
            url.set_user(None);
            url.set_password(None);
            remotes.push(Remote {
                name: name.to_string(),
                url: url.to_bstring().to_string(),
            });
        }
    }
    Ok(Some(GitHead {
        commit: commit.id.to_string(),
        branch,
        author: who(author),
        author_date,
        committer: who(committer),
        message,
        signed,
        remotes,
    }))
}
