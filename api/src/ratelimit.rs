//! Rate limits on data pulls: a token bucket per caller (a token id, or the salted hash of
//! an anonymous client's IP address). Token holders get the larger quota.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

#[derive(Debug)]
pub struct Limiter {
    anonymous_per_min: f64,
    token_per_min: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl Limiter {
    pub fn new(anonymous_per_min: u32, token_per_min: u32) -> Self {
        Self {
            anonymous_per_min: f64::from(anonymous_per_min.max(1)),
            token_per_min: f64::from(token_per_min.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one pull from the caller's bucket; `Err(seconds)` to wait when it is empty.
    pub fn take(&self, key: &str, with_token: bool) -> Result<(), u64> {
        let per_min = if with_token {
            self.token_per_min
        } else {
            self.anonymous_per_min
        };
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("poisoned");
        if buckets.len() > 100_000 {
            // Forget callers whose bucket has refilled.
            buckets.retain(|_, (_, at)| now.duration_since(*at).as_secs_f64() < 60.0);
        }
        let (tokens, at) = buckets.entry(key.to_owned()).or_insert((per_min, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * per_min / 60.0).min(per_min);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) * 60.0 / per_min).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_empty_and_tokens_get_more() {
        let l = Limiter::new(3, 30);
        for _ in 0..3 {
            assert!(l.take("ip-a", false).is_ok());
        }
        assert_eq!(l.take("ip-a", false), Err(20));
        assert!(
            l.take("ip-b", false).is_ok(),
            "another caller has its own bucket"
        );
        for _ in 0..30 {
            assert!(l.take("token-x", true).is_ok());
        }
        assert!(l.take("token-x", true).is_err());
    }
}
