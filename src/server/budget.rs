//! How many refused pushes a caller may cause: a token bucket per token
//! (the admin counts as one). A refusal does not consume its run, so without
//! a bound a token could make the server verify and refuse forever; once its
//! bucket is empty, pushes are answered 429 before their body is read.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Refusal budgets, per caller.
#[derive(Debug)]
pub struct RefusalBudget {
    per_minute: u32,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    level: f64,
    at: Instant,
}

impl RefusalBudget {
    /// A budget of `per_minute` refusals (also the burst); 0 disables it.
    pub fn new(per_minute: u32) -> Self {
        RefusalBudget {
            per_minute,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn refill(&self, b: &mut Bucket, now: Instant) {
        let rate = f64::from(self.per_minute) / 60.0;
        b.level = (b.level + now.duration_since(b.at).as_secs_f64() * rate).min(f64::from(self.per_minute));
        b.at = now;
    }

    /// `None` when `caller` may push now; else how long until it may.
    pub fn check(&self, caller: &str) -> Option<Duration> {
        if self.per_minute == 0 {
            return None;
        }
        let now = Instant::now();
        let mut all = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let b = all.get_mut(caller)?;
        self.refill(b, now);
        if b.level >= 1.0 {
            return None;
        }
        let rate = f64::from(self.per_minute) / 60.0;
        Some(Duration::from_secs_f64((1.0 - b.level) / rate))
    }

    /// Records a refusal of `caller`'s push.
    pub fn spend(&self, caller: &str) {
        if self.per_minute == 0 {
            return;
        }
        let now = Instant::now();
        let mut all = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded memory: forget full buckets when the map grows large.
        if all.len() > 100_000 {
            let full = f64::from(self.per_minute);
            let rate = full / 60.0;
            all.retain(|_, b| b.level + now.duration_since(b.at).as_secs_f64() * rate < full);
        }
        let b = all.entry(caller.to_owned()).or_insert(Bucket {
            level: f64::from(self.per_minute),
            at: now,
        });
        self.refill(b, now);
        b.level = (b.level - 1.0).max(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_beyond_the_budget_wait() {
        let b = RefusalBudget::new(3);
        for _ in 0..3 {
            assert_eq!(b.check("t"), None);
            b.spend("t");
        }
        let wait = b.check("t").unwrap();
        assert!(
            wait > Duration::from_secs(15) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert_eq!(b.check("other"), None, "per caller");
        assert_eq!(RefusalBudget::new(0).check("t"), None);
    }
}
