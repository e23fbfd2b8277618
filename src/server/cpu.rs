//! The CPU-bound part of a request — verifying an envelope's signatures,
//! evaluating policies — runs here, off the async workers that serve every
//! other request: on `slots` threads of its own (the cores), at a lower
//! scheduling priority (nice +10) so that when the cores are busy the
//! threads serving `/healthz`, proofs and tiles run first, with at most
//! `queue` jobs waiting. A job arriving at a full queue is refused at once
//! ([`Saturated`], answered 503 with Retry-After): a flood of expensive
//! pushes costs the server a bounded amount of CPU and memory (SPEC.md
//! §12.4).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};

/// A bounded pool of CPU work.
#[derive(Debug)]
pub struct CpuPool {
    jobs: Mutex<Option<mpsc::SyncSender<Job>>>,
    waiting: Arc<AtomicUsize>,
}

type Job = Box<dyn FnOnce() + Send>;

/// The queue was full; the job was not run.
#[derive(Debug, thiserror::Error)]
#[error("the server is busy verifying other pushes; try again")]
pub struct Saturated;

/// Why a job did not return.
#[derive(Debug, thiserror::Error)]
pub enum CpuError {
    /// Refused at once: the queue was full.
    #[error(transparent)]
    Saturated(#[from] Saturated),
    /// The job panicked or the pool is shut down.
    #[error("{0}")]
    Failed(String),
}

impl CpuPool {
    /// `slots` threads (at least 1), `queue` more jobs waiting.
    pub fn new(slots: usize, queue: usize) -> Self {
        let (tx, rx) = mpsc::sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        let waiting = Arc::new(AtomicUsize::new(0));
        for i in 0..slots.max(1) {
            let (rx, waiting) = (rx.clone(), waiting.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("tally-cpu-{i}"))
                .spawn(move || worker(&rx, &waiting));
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "cannot start a CPU worker thread");
            }
        }
        CpuPool {
            jobs: Mutex::new(Some(tx)),
            waiting,
        }
    }

    /// Jobs waiting for a thread now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// Runs `f` on a pool thread, or refuses at once when the queue is
    /// full. A job whose caller went away (a client that hung up) before a
    /// thread took it is dropped unrun.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, CpuError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            if tx.is_closed() {
                return;
            }
            let _ = tx.send(f());
        });
        let sender = self
            .jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| CpuError::Failed("the CPU pool is shut down".into()))?;
        self.waiting.fetch_add(1, Ordering::AcqRel);
        if let Err(e) = sender.try_send(job) {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(match e {
                mpsc::TrySendError::Full(_) => Saturated.into(),
                mpsc::TrySendError::Disconnected(_) => CpuError::Failed("the CPU pool is shut down".into()),
            });
        }
        rx.await.map_err(|_| CpuError::Failed("the job panicked".into()))
    }

    /// Lets the threads end once the queued jobs are done.
    pub fn shut_down(&self) {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

impl Drop for CpuPool {
    fn drop(&mut self) {
        self.shut_down();
    }
}

fn worker(rx: &Mutex<mpsc::Receiver<Job>>, waiting: &AtomicUsize) {
    // Linux: the nice value is per thread; elsewhere this may renice the
    // process, so it is only asked for here.
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::setpriority_process(None, 10) {
        tracing::debug!(error = %e, "cannot lower the CPU worker's priority");
    }
    loop {
        let job = match rx.lock().unwrap_or_else(|p| p.into_inner()).recv() {
            Ok(j) => j,
            Err(_) => return,
        };
        waiting.fetch_sub(1, Ordering::AcqRel);
        // A panicking job drops its answer channel: its caller sees Failed.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A pool whose only thread runs a job that waits for `release`; returns
    /// once that job has started.
    async fn busy(
        queue: usize,
    ) -> (
        Arc<CpuPool>,
        mpsc::Sender<()>,
        tokio::task::JoinHandle<Result<bool, CpuError>>,
    ) {
        let pool = Arc::new(CpuPool::new(1, queue));
        let (release, gate) = mpsc::channel::<()>();
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let p = pool.clone();
        let running = tokio::spawn(async move {
            p.run(move || {
                let _ = started_tx.send(());
                gate.recv().is_ok()
            })
            .await
        });
        started.await.unwrap();
        (pool, release, running)
    }

    async fn until(f: impl Fn() -> bool) {
        while !f() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_refuses_at_once_and_frees_as_jobs_finish() {
        let (pool, release, running) = busy(2).await;
        // Two wait...
        let waiters: Vec<_> = (0..2)
            .map(|i| {
                let p = pool.clone();
                tokio::spawn(async move { p.run(move || i).await })
            })
            .collect();
        until(|| pool.waiting() == 2).await;
        // ...and the next is refused without waiting.
        assert!(matches!(pool.run(|| 9).await, Err(CpuError::Saturated(_))));
        assert_eq!(pool.waiting(), 2);
        // Released, every queued job runs, and the queue is empty again.
        release.send(()).unwrap();
        assert!(running.await.unwrap().unwrap());
        let mut got = Vec::new();
        for w in waiters {
            got.push(w.await.unwrap().unwrap());
        }
        got.sort_unstable();
        assert_eq!(got, vec![0, 1]);
        assert_eq!(pool.waiting(), 0);
        assert_eq!(pool.run(|| 7).await.unwrap(), 7);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_whose_caller_left_is_not_run() {
        let (pool, release, running) = busy(1).await;
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        let p = pool.clone();
        let waiter = tokio::spawn(async move { p.run(move || r.fetch_add(1, Ordering::SeqCst)).await });
        until(|| pool.waiting() == 1).await;
        // A client that hangs up while queued costs no CPU.
        waiter.abort();
        let _ = waiter.await;
        release.send(()).unwrap();
        assert!(running.await.unwrap().unwrap());
        until(|| pool.waiting() == 0).await;
        assert_eq!(pool.run(|| 1).await.unwrap(), 1);
        assert_eq!(ran.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_job_fails_alone() {
        let pool = CpuPool::new(1, 4);
        assert!(matches!(
            pool.run(|| panic!("boom")).await,
            Err(CpuError::Failed(_))
        ));
        assert_eq!(pool.run(|| 2).await.unwrap(), 2);
    }
}
