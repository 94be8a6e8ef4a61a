//! Abuse resistance for Register and Login: a token bucket per client
//! address (in memory, per replica) that failed logins and registrations
//! drain, and a growing delay between password checks per user name (in the
//! database, so shared by every replica).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ipnet::{IpNet, Ipv6Net};

use crate::error::{Error, Result};

/// Buckets kept at most; past it, full (idle) buckets are dropped first.
const MAX_TRACKED_CLIENTS: usize = 100_000;

/// The metadata key that carries the client's address from a trusted proxy.
pub const FORWARDED_FOR: &str = "x-forwarded-for";

/// A token bucket per client address: `burst` calls at once, then
/// `rate_per_minute` on average. IPv6 clients are keyed by their /64, the
/// block one subscriber usually holds.
#[derive(Debug)]
pub struct ClientRateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl ClientRateLimiter {
    /// A limiter; `rate_per_minute == 0` lets every call through.
    pub fn new(rate_per_minute: u32, burst: u32) -> Self {
        Self {
            per_second: f64::from(rate_per_minute) / 60.0,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `client`, or says how long until one is there
    /// (`ResourceExhausted` with a retry-after). The token is taken before
    /// the call runs, so parallel calls cannot outrun the bucket; a call
    /// that should not count gives it back with [`Self::refund`].
    pub fn check(&self, client: IpAddr) -> Result<()> {
        if self.per_second <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let key = bucket_key(client);
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= MAX_TRACKED_CLIENTS && !buckets.contains_key(&key) {
            let (per_second, burst) = (self.per_second, self.burst);
            buckets.retain(|_, bucket| refilled(*bucket, now, per_second, burst) < burst);
        }
        let bucket = buckets.entry(key).or_insert(Bucket { tokens: self.burst, updated: now });
        let tokens = refilled(*bucket, now, self.per_second, self.burst);
        if tokens >= 1.0 {
            *bucket = Bucket { tokens: tokens - 1.0, updated: now };
            return Ok(());
        }
        *bucket = Bucket { tokens, updated: now };
        let wait = Duration::from_secs_f64((1.0 - tokens) / self.per_second);
        Err(Error::RateLimited {
            message: "too many requests from this address, retry later".into(),
            retry_after: wait,
        })
    }
}

impl ClientRateLimiter {
    /// Gives back the token a call of `client` took: a successful login
    /// costs nothing, so one address (an office behind NAT, a test script)
    /// can log in as often as it likes while wrong guesses still drain it.
    pub fn refund(&self, client: IpAddr) {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(bucket) = buckets.get_mut(&bucket_key(client)) {
            let tokens = refilled(*bucket, now, self.per_second, self.burst);
            *bucket = Bucket { tokens: (tokens + 1.0).min(self.burst), updated: now };
        }
    }
}

fn refilled(bucket: Bucket, now: Instant, per_second: f64, burst: f64) -> f64 {
    let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
    (bucket.tokens + elapsed * per_second).min(burst)
}

fn bucket_key(client: IpAddr) -> IpAddr {
    match unmapped(client) {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Net::new(v6, 64).map_or(v6, |block| block.network())),
        v4 @ IpAddr::V4(_) => v4,
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as its IPv4 address; any
/// other address as it is.
fn unmapped(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        IpAddr::V4(_) => address,
    }
}

/// An address or a block of addresses (`10.0.0.0/8`, `fd00::/8`) whose
/// `x-forwarded-for` is believed; `none` is no address at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustedProxy {
    /// `None` for `none`.
    network: Option<IpNet>,
}

impl TrustedProxy {
    /// Whether `address` (an IPv4-mapped IPv6 address counting as its IPv4
    /// address) is in this block.
    pub fn contains(&self, address: IpAddr) -> bool {
        self.network.is_some_and(|network| network.contains(&unmapped(address)))
    }
}

impl std::str::FromStr for TrustedProxy {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, Self::Err> {
        if text.trim() == "none" {
            return Ok(Self { network: None });
        }
        let (address, prefix) = text.trim().split_once('/').map_or((text.trim(), None), |(a, p)| (a, Some(p)));
        let network: IpAddr = address.parse().map_err(|_| format!("{text:?} is not an IP address or CIDR block"))?;
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let network = match prefix {
            None => IpNet::from(network),
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .and_then(|prefix| IpNet::new(network, prefix).ok())
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {bits}"))?,
        };
        Ok(Self { network: Some(network) })
    }
}

/// The client's address: the peer's, or, when the peer is a trusted proxy
/// that sent `x-forwarded-for`, the last address there (the one the proxy
/// itself saw; earlier ones are the client's own claims).
pub fn client_address<T>(request: &tonic::Request<T>, trusted_proxies: &[TrustedProxy]) -> Option<IpAddr> {
    let peer = bookstore_tls::peer_addr(request)?.ip();
    if !trusted_proxies.iter().any(|proxy| proxy.contains(peer)) {
        return Some(peer);
    }
    let forwarded = request
        .metadata()
        .get(FORWARDED_FOR)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.rsplit(',').next())
        .and_then(|last| last.trim().parse::<IpAddr>().ok());
    Some(forwarded.unwrap_or(peer))
}

/// How failed logins slow down further attempts for the same user name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginThrottle {
    /// Attempts without a success before waits begin; 0: no throttle.
    pub free_attempts: u32,
    /// The first wait, doubling with each further attempt.
    pub delay: Duration,
    /// The longest wait.
    pub max_delay: Duration,
}

impl LoginThrottle {
    /// 5 free attempts, then waits of 1 s, 2 s, 4 s, ... up to 15 minutes.
    pub const DEFAULT: Self =
        Self { free_attempts: 5, delay: Duration::from_secs(1), max_delay: Duration::from_secs(900) };

    /// A name's count is forgotten this long after its last attempt.
    pub const FORGET_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

    pub fn is_enabled(&self) -> bool {
        self.free_attempts > 0
    }
}

/// What the store says about a login attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginAttempt {
    /// Counted: go on and check the password.
    Allowed,
    /// The name must wait this many more seconds; nothing was counted.
    Wait { seconds: i64 },
}

/// The refusal of a login attempt for a name that must wait: the same for
/// existing and unknown names.
pub fn login_must_wait(seconds: i64) -> Error {
    let seconds = u64::try_from(seconds.max(1)).unwrap_or(1);
    Error::RateLimited {
        message: format!("too many failed logins for this name, retry in {seconds} s"),
        retry_after: Duration::from_secs(seconds),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_bucket_refuses_with_a_wait() {
        let limiter = ClientRateLimiter::new(60, 3);
        let client: IpAddr = "203.0.113.7".parse().unwrap();
        for _ in 0..3 {
            limiter.check(client).unwrap();
        }
        let Err(Error::RateLimited { retry_after, .. }) = limiter.check(client) else { panic!("not limited") };
        assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(1), "{retry_after:?}");
        limiter.check("203.0.113.8".parse().unwrap()).unwrap();
    }

    #[test]
    fn a_refunded_token_is_there_for_the_next_call() {
        let limiter = ClientRateLimiter::new(1, 2);
        let client: IpAddr = "203.0.113.9".parse().unwrap();
        for _ in 0..100 {
            limiter.check(client).unwrap();
            limiter.refund(client);
        }
        limiter.check(client).unwrap();
        limiter.check(client).unwrap();
        assert!(limiter.check(client).is_err());
    }

    #[test]
    fn ipv6_clients_share_a_bucket_per_64() {
        let limiter = ClientRateLimiter::new(60, 1);
        limiter.check("2001:db8:1:2::1".parse().unwrap()).unwrap();
        assert!(limiter.check("2001:db8:1:2:ffff::9".parse().unwrap()).is_err());
        limiter.check("2001:db8:1:3::1".parse().unwrap()).unwrap();
    }

    #[test]
    fn a_zero_rate_turns_the_limit_off() {
        let limiter = ClientRateLimiter::new(0, 1);
        for _ in 0..100 {
            limiter.check("192.0.2.1".parse().unwrap()).unwrap();
        }
    }

    #[test]
    fn the_forwarded_address_counts_only_from_a_trusted_proxy() {
        let proxy: TrustedProxy = "127.0.0.0/8".parse().unwrap();
        let mut request = tonic::Request::new(());
        request.metadata_mut().insert(FORWARDED_FOR, "10.9.9.9, 198.51.100.4".parse().unwrap());
        request.extensions_mut().insert(tonic::transport::server::TcpConnectInfo {
            local_addr: None,
            remote_addr: Some("127.0.0.1:4000".parse().unwrap()),
        });
        assert_eq!(client_address(&request, &[proxy]), Some("198.51.100.4".parse().unwrap()));
        assert_eq!(client_address(&request, &[]), Some("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn trusted_proxies_are_addresses_or_blocks() {
        let block: TrustedProxy = "10.0.0.0/8".parse().unwrap();
        assert!(block.contains("10.200.3.4".parse().unwrap()));
        assert!(block.contains("::ffff:10.1.1.1".parse().unwrap()));
        assert!(!block.contains("11.0.0.1".parse().unwrap()));
        let single: TrustedProxy = "::1".parse().unwrap();
        assert!(single.contains("::1".parse().unwrap()) && !single.contains("::2".parse().unwrap()));
        assert!("0.0.0.0/0".parse::<TrustedProxy>().unwrap().contains("203.0.113.9".parse().unwrap()));
        assert!(!"none".parse::<TrustedProxy>().unwrap().contains("127.0.0.1".parse().unwrap()));
        for bad in ["10.0.0.0/33", "nope", "10.0.0.0/x", "fd00::/129"] {
            assert!(bad.parse::<TrustedProxy>().is_err(), "{bad}");
        }
    }
}
