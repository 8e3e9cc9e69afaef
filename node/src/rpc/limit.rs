//! Rate limits: a token bucket per client IP for anonymous requests and per credential for
//! authenticated ones (ten times the quota), with what the `X-RateLimit-*` headers need.
//! A request takes as many tokens as it costs ([`super::cost`], ADR 0021). There is also a
//! bucket per caller and route (a REST route's method and path pattern, or a JSON-RPC
//! method), [`ROUTE_SHARE`] of the caller's, so one endpoint cannot spend a caller's whole
//! quota (`X-RateLimit-Route-*` headers); a route's bucket decides *which* quota a request
//! also draws on, one call at a time.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use axum::http::{HeaderMap, HeaderValue};

use super::auth::Principal;

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock, StateInformationMiddleware>;

/// Multiplier of the public quota for authenticated callers.
pub const AUTH_MULTIPLIER: u32 = 10;

/// A route's bucket is this fraction of the caller's (rate and burst divided by it).
pub const ROUTE_SHARE: u32 = 2;

/// The outcome of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Let through.
    Allowed {
        /// Bucket size (burst).
        limit: u32,
        /// Requests left in the bucket.
        remaining: u32,
        /// Seconds until the bucket is full again.
        reset: u64,
    },
    /// Refused: 429.
    Limited {
        /// Bucket size.
        limit: u32,
        /// Seconds until a request would pass.
        retry_after: u64,
    },
    /// Limiting is off.
    Unlimited,
}

struct Bucket<K: std::hash::Hash + Eq + Clone> {
    limiter: Keyed<K>,
    rate: u32,
    burst: u32,
}

impl<K: std::hash::Hash + Eq + Clone> Bucket<K> {
    fn new(rate: NonZeroU32, burst: NonZeroU32) -> Bucket<K> {
        Bucket {
            limiter: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
                .with_middleware::<StateInformationMiddleware>(),
            rate: rate.get(),
            burst: burst.get(),
        }
    }

    fn check(&self, key: &K, cost: u32) -> Decision {
        // A request costlier than the whole bucket takes the whole bucket.
        let n = NonZeroU32::new(cost.min(self.burst)).unwrap_or(NonZeroU32::MIN);
        let outcome = match self.limiter.check_key_n(key, n) {
            Ok(outcome) => outcome,
            // Cannot happen (n is at most the burst); refuse for a second if it does.
            Err(_) => {
                return Decision::Limited {
                    limit: self.burst,
                    retry_after: 1,
                }
            }
        };
        match outcome {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                let missing = u64::from(self.burst.saturating_sub(remaining));
                Decision::Allowed {
                    limit: self.burst,
                    remaining,
                    reset: missing.div_ceil(u64::from(self.rate)),
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Decision::Limited {
                    limit: self.burst,
                    retry_after: wait.as_secs_f64().ceil().max(1.0) as u64,
                }
            }
        }
    }
}

/// The per-route buckets: keyed by (caller, route), public and authenticated sizes.
struct RouteBuckets {
    public: Bucket<(IpAddr, String)>,
    authed: Bucket<(String, String)>,
}

/// The node's rate limiters.
pub struct RateLimits {
    buckets: Option<(Bucket<IpAddr>, Bucket<String>)>,
    routes: Option<RouteBuckets>,
}

impl RateLimits {
    /// `per_second` public requests per client (0: no limit) with a burst of twice that;
    /// authenticated callers get [`AUTH_MULTIPLIER`] times both.
    pub fn new(per_second: u32) -> RateLimits {
        let buckets = NonZeroU32::new(per_second).map(|rate| {
            let burst = rate.saturating_mul(NonZeroU32::MIN.saturating_add(1));
            let mult = NonZeroU32::new(AUTH_MULTIPLIER).unwrap_or(NonZeroU32::MIN);
            (
                Bucket::new(rate, burst),
                Bucket::new(rate.saturating_mul(mult), burst.saturating_mul(mult)),
            )
        });
        let routes = NonZeroU32::new(per_second).map(|rate| {
            let share = |n: NonZeroU32| NonZeroU32::new(n.get() / ROUTE_SHARE).unwrap_or(NonZeroU32::MIN);
            let rate = share(rate);
            let burst = rate.saturating_mul(NonZeroU32::MIN.saturating_add(1));
            let mult = NonZeroU32::new(AUTH_MULTIPLIER).unwrap_or(NonZeroU32::MIN);
            RouteBuckets {
                public: Bucket::new(rate, burst),
                authed: Bucket::new(rate.saturating_mul(mult), burst.saturating_mul(mult)),
            }
        });
        RateLimits { buckets, routes }
    }

    /// Takes one request from the caller's bucket for `route` (a name from a fixed set —
    /// a route pattern or a known method — so the map stays bounded by callers).
    pub fn check_route(&self, principal: &Principal, ip: IpAddr, route: &str) -> Decision {
        let Some(routes) = &self.routes else {
            return Decision::Unlimited;
        };
        match principal.bucket() {
            Some(key) => routes.authed.check(&(key, route.to_string()), 1),
            None => routes.public.check(&(ip, route.to_string()), 1),
        }
    }

    /// Takes one token from the caller's bucket.
    pub fn check(&self, principal: &Principal, ip: IpAddr) -> Decision {
        self.check_n(principal, ip, 1)
    }

    /// Takes `cost` tokens from the caller's bucket (all or none; a cost above the burst
    /// takes the whole burst).
    pub fn check_n(&self, principal: &Principal, ip: IpAddr, cost: u32) -> Decision {
        let Some((public, authed)) = &self.buckets else {
            return Decision::Unlimited;
        };
        match principal.bucket() {
            Some(key) => authed.check(&key, cost),
            None => public.check(&ip, cost),
        }
    }

    /// Forgets idle clients (called now and then so the maps stay small).
    pub fn prune(&self) {
        if let Some((public, authed)) = &self.buckets {
            public.limiter.retain_recent();
            authed.limiter.retain_recent();
        }
        if let Some(routes) = &self.routes {
            routes.public.limiter.retain_recent();
            routes.authed.limiter.retain_recent();
        }
    }
}

/// `X-RateLimit-Route` and `X-RateLimit-Route-{Limit,Remaining,Reset}`: the caller's quota
/// on this route.
pub(crate) fn route_headers(h: &mut HeaderMap, route: &str, decision: Decision) {
    if let Ok(v) = HeaderValue::from_str(route) {
        h.insert("x-ratelimit-route", v);
    }
    rate_headers(h, "x-ratelimit-route", decision);
}

/// `{prefix}-limit`, `{prefix}-remaining`, `{prefix}-reset` for a decision.
pub(crate) fn rate_headers(h: &mut HeaderMap, prefix: &str, decision: Decision) {
    let (limit, remaining, reset) = match decision {
        Decision::Allowed {
            limit,
            remaining,
            reset,
        } => (limit, remaining, reset),
        Decision::Limited { limit, retry_after } => (limit, 0, retry_after),
        Decision::Unlimited => return,
    };
    let name = |suffix: &str| axum::http::HeaderName::try_from(format!("{prefix}-{suffix}"));
    for (suffix, value) in [
        ("limit", HeaderValue::from(limit)),
        ("remaining", HeaderValue::from(remaining)),
        ("reset", HeaderValue::from(reset)),
    ] {
        if let Ok(n) = name(suffix) {
            h.insert(n, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refusal_with_a_retry_time_and_a_bigger_authenticated_quota() {
        let limits = RateLimits::new(5);
        let ip: IpAddr = [127, 0, 0, 1].into();
        let mut allowed = 0;
        let mut refused = None;
        for _ in 0..50 {
            match limits.check(&Principal::Anonymous, ip) {
                Decision::Allowed { limit, .. } => {
                    assert_eq!(limit, 10);
                    allowed += 1;
                }
                d @ Decision::Limited { .. } => {
                    refused = Some(d);
                    break;
                }
                Decision::Unlimited => panic!("limiting is on"),
            }
        }
        // The burst (10) passes, perhaps plus a token refilled meanwhile.
        assert!((10..=11).contains(&allowed), "{allowed}");
        assert!(matches!(refused, Some(Decision::Limited { retry_after: 1, .. })));
        // The cookie holder's bucket is separate and ten times larger.
        let mut authed = 0;
        while let Decision::Allowed { .. } = limits.check(&Principal::Cookie, ip) {
            authed += 1;
            if authed > 1000 {
                break;
            }
        }
        assert!((100..=102).contains(&authed), "{authed}");
        assert_eq!(RateLimits::new(0).check(&Principal::Anonymous, ip), Decision::Unlimited);
    }

    #[test]
    fn a_costly_request_takes_its_cost_and_a_cheap_one_still_fits_after() {
        let limits = RateLimits::new(50);
        let ip: IpAddr = [127, 0, 0, 2].into();
        // Burst 100: a cost of 60 leaves about 40; a second 60 does not fit, a 1 does.
        assert!(matches!(
            limits.check_n(&Principal::Anonymous, ip, 60),
            Decision::Allowed { remaining: 40..=41, .. }
        ));
        assert!(matches!(
            limits.check_n(&Principal::Anonymous, ip, 60),
            Decision::Limited { .. }
        ));
        assert!(matches!(
            limits.check_n(&Principal::Anonymous, ip, 1),
            Decision::Allowed { .. }
        ));
        // More than the burst takes the whole (full) bucket of another client.
        let other: IpAddr = [127, 0, 0, 3].into();
        assert!(matches!(
            limits.check_n(&Principal::Anonymous, other, 1000),
            Decision::Allowed { remaining: 0..=1, .. }
        ));
    }

    #[test]
    fn each_route_has_its_own_smaller_bucket_per_caller() {
        let limits = RateLimits::new(10);
        let ip: IpAddr = [127, 0, 0, 1].into();
        let other: IpAddr = [127, 0, 0, 2].into();
        let drain = |principal: &Principal, ip: IpAddr, route: &str| {
            let mut n = 0;
            while let Decision::Allowed { limit, .. } = limits.check_route(principal, ip, route) {
                assert_eq!(limit, if principal.bucket().is_some() { 100 } else { 10 });
                n += 1;
                if n > 1000 {
                    break;
                }
            }
            n
        };
        // Half the caller's quota (rate 5, burst 10), perhaps plus a token refilled meanwhile.
        let getblock = drain(&Principal::Anonymous, ip, "rpc getblock");
        assert!((10..=11).contains(&getblock), "{getblock}");
        assert!(matches!(
            limits.check_route(&Principal::Anonymous, ip, "rpc getblock"),
            Decision::Limited { limit: 10, .. }
        ));
        // Another route, another caller and an authenticated caller are untouched.
        assert!(matches!(
            limits.check_route(&Principal::Anonymous, ip, "GET /api/v1/tip"),
            Decision::Allowed { remaining: 9, .. }
        ));
        assert!(matches!(
            limits.check_route(&Principal::Anonymous, other, "rpc getblock"),
            Decision::Allowed { .. }
        ));
        let authed = drain(&Principal::Cookie, ip, "rpc getblock");
        assert!((100..=102).contains(&authed), "{authed}");
        assert_eq!(
            RateLimits::new(0).check_route(&Principal::Anonymous, ip, "rpc getblock"),
            Decision::Unlimited
        );
    }
}
