//! Progress on a terminal, none in CI logs: bars are drawn only when
//! stderr is a terminal (and `TALLY_PROGRESS=0` is not set), so a pipeline's
//! log never fills with redraws.

use std::io::IsTerminal as _;

use indicatif::{ProgressBar, ProgressStyle};

/// Whether progress is drawn at all.
fn wanted() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("TALLY_PROGRESS").is_none_or(|v| v != "0")
}

/// A bar over `len` bytes (none below 16 MiB: it would only flicker).
pub fn bytes(len: u64, message: impl Into<String>) -> Option<ProgressBar> {
    if len < (16 << 20) || !wanted() {
        return None;
    }
    let b = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}")
    {
        b.set_style(style.progress_chars("=> "));
    }
    b.set_message(message.into());
    Some(b)
}

/// A counter of things done whose total is not known up front.
pub fn counter(message: impl Into<String>) -> Option<ProgressBar> {
    if !wanted() {
        return None;
    }
    let b = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}: {pos} {per_sec}") {
        b.set_style(style);
    }
    b.set_message(message.into());
    b.enable_steady_tick(std::time::Duration::from_millis(200));
    Some(b)
}

/// A reader that moves a bar.
#[derive(Debug)]
pub struct Counting<R> {
    /// What is read.
    pub inner: R,
    /// The bar, if drawn.
    pub bar: Option<ProgressBar>,
}

impl<R: std::io::Read> std::io::Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(b) = &self.bar {
            b.inc(n as u64);
        }
        Ok(n)
    }
}
