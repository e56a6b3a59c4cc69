//! Happy Eyeballs v2 (RFC 8305) for one host name: AAAA and A asked at once, a 50 ms
//! resolution delay when A answers first, families interleaved IPv6 first, one new attempt
//! every connection attempt delay (250 ms by default, never below 10 ms), and the first
//! completed TCP handshake wins; the other attempts are dropped, which closes their sockets.
//!
//! The timing logic ([`race`]) takes the two lookups as futures and the connect step as a
//! function, so tests drive it with scripted delays under tokio's paused clock. Addresses
//! keep the order DNS gave them (no RFC 6724 sorting: the client has no source-address
//! policy to apply on the loopback-only and single-homed hosts this serves).
//!
//! Names, never addresses, feed SNI and the reference identifiers (T-HE-07): this module
//! returns only a socket and the address that won.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::pin;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::stream::{FuturesUnordered, StreamExt};
use hickory_resolver::proto::rr::{Name, RecordType};
use tokio::time::{Instant, sleep_until};

use crate::core::dns::answer::Outcome;
use crate::core::dns::resolver::Resolver;
use crate::core::{Error, Result};

/// RFC 8305 §3: how long to wait for AAAA once A has answered.
pub const RESOLUTION_DELAY: Duration = Duration::from_millis(50);
/// RFC 8305 §5: the recommended connection attempt delay.
pub const DEFAULT_ATTEMPT_DELAY: Duration = Duration::from_millis(250);
/// RFC 8305 §5: never start attempts faster than this.
pub const MIN_ATTEMPT_DELAY: Duration = Duration::from_millis(10);
/// RFC 8305 §5: recommended upper bound.
pub const MAX_ATTEMPT_DELAY: Duration = Duration::from_secs(2);

/// The connection attempt delay actually used: `None` is the default, anything else is
/// clamped to 10 ms ..= 2 s (T-HE-06).
pub fn attempt_delay(configured: Option<Duration>) -> Duration {
    configured
        .unwrap_or(DEFAULT_ATTEMPT_DELAY)
        .clamp(MIN_ATTEMPT_DELAY, MAX_ATTEMPT_DELAY)
}

/// Timing of a race.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    pub resolution_delay: Duration,
    pub attempt_delay: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            resolution_delay: RESOLUTION_DELAY,
            attempt_delay: DEFAULT_ATTEMPT_DELAY,
        }
    }
}

/// The addresses one lookup returned (its family only; others are ignored), or why it
/// failed. An empty list is NODATA.
pub type Lookup = Result<Vec<IpAddr>>;

/// Runs the race: `aaaa` and `a` are the two lookups (already started or lazy; both are
/// polled at once), `connect` opens one TCP connection. Every step ends at `deadline`.
///
/// Returns the winning connection and its address. Errors: the DNS error when no lookup
/// gave an address ([`Error::NoRecord`] when both were empty), [`Error::ConnectFailed`]
/// listing each address's failure, or [`Error::Timeout`] (naming what was still pending).
pub async fn race<T, C, F>(
    host: &str,
    port: u16,
    aaaa: impl Future<Output = Lookup>,
    a: impl Future<Output = Lookup>,
    timing: Timing,
    deadline: Instant,
    mut connect: C,
) -> Result<(T, SocketAddr)>
where
    C: FnMut(SocketAddr) -> F,
    F: Future<Output = io::Result<T>>,
{
    let mut aaaa = pin!(aaaa.fuse());
    let mut a = pin!(a.fuse());
    let mut v6_done = false;
    let mut v4_done = false;
    let mut q6: VecDeque<SocketAddr> = VecDeque::new();
    let mut q4: VecDeque<SocketAddr> = VecDeque::new();
    // The first attempt may start once AAAA answered, or A answered and either AAAA
    // answered too or the resolution delay ran out.
    let mut started = false;
    let mut hold_until: Option<Instant> = None;
    // When the next attempt may start; `None` once the queue ran dry (a late answer then
    // starts an attempt at once).
    let mut next_at: Option<Instant> = None;
    let mut last_v6 = false;
    let mut attempts = FuturesUnordered::new();
    let mut failures: Vec<String> = Vec::new();
    let mut dns_errors: Vec<Error> = Vec::new();

    loop {
        let now = Instant::now();
        if !started {
            let v6_ready = !q6.is_empty();
            let v4_ready = !q4.is_empty() && (v6_done || hold_until.is_some_and(|t| now >= t));
            if v6_ready || v4_ready {
                started = true;
                next_at = Some(now);
            }
        }
        if started && next_at.is_some_and(|t| now >= t) {
            // Alternate families, IPv6 first (RFC 8305 §4, first address family count 1).
            let pick = if last_v6 {
                q4.pop_front()
                    .map(|s| (s, false))
                    .or_else(|| q6.pop_front().map(|s| (s, true)))
            } else {
                q6.pop_front()
                    .map(|s| (s, true))
                    .or_else(|| q4.pop_front().map(|s| (s, false)))
            };
            match pick {
                Some((addr, v6)) => {
                    last_v6 = v6;
                    let attempt = connect(addr);
                    attempts.push(async move { (addr, attempt.await) });
                    next_at = Some(now + timing.attempt_delay);
                }
                None => next_at = None,
            }
        }
        if v6_done && v4_done && attempts.is_empty() && q6.is_empty() && q4.is_empty() {
            return Err(give_up(host, port, failures, dns_errors));
        }
        let has_queue = !q6.is_empty() || !q4.is_empty();
        let hold = hold_until.filter(|_| !started);
        let next = next_at.filter(|_| started && has_queue);
        tokio::select! {
            biased;
            Some((addr, res)) = attempts.next(), if !attempts.is_empty() => match res {
                // Returning drops `attempts`: the losers are cancelled and their sockets closed.
                Ok(conn) => return Ok((conn, addr)),
                Err(e) => {
                    failures.push(format!("{addr}: {e}"));
                    // A failed attempt frees its slot: try the next address at once.
                    if started {
                        next_at = Some(Instant::now());
                    }
                }
            },
            res = &mut aaaa, if !v6_done => {
                v6_done = true;
                match res {
                    Ok(list) => q6.extend(list.into_iter().filter(IpAddr::is_ipv6).map(|ip| SocketAddr::new(ip, port))),
                    Err(e) => dns_errors.push(e),
                }
                if started && next_at.is_none() {
                    next_at = Some(Instant::now());
                }
            },
            res = &mut a, if !v4_done => {
                v4_done = true;
                match res {
                    Ok(list) => q4.extend(list.into_iter().filter(IpAddr::is_ipv4).map(|ip| SocketAddr::new(ip, port))),
                    Err(e) => dns_errors.push(e),
                }
                if !v6_done && !started {
                    hold_until = Some(Instant::now() + timing.resolution_delay);
                }
                if started && next_at.is_none() {
                    next_at = Some(Instant::now());
                }
            },
            _ = sleep_until(hold.unwrap_or(deadline)), if hold.is_some() => {},
            _ = sleep_until(next.unwrap_or(deadline)), if next.is_some() => {},
            _ = sleep_until(deadline) => {
                let mut pending = Vec::new();
                if !v6_done { pending.push("AAAA lookup".to_string()); }
                if !v4_done { pending.push("A lookup".to_string()); }
                if !attempts.is_empty() { pending.push(format!("{} connection attempt(s)", attempts.len())); }
                let mut detail = format!("connecting to {host} port {port}: deadline passed");
                if !pending.is_empty() {
                    detail.push_str(&format!(" waiting for {}", pending.join(", ")));
                }
                if !failures.is_empty() {
                    detail.push_str(&format!("; failed: {}", failures.join("; ")));
                }
                return Err(Error::Timeout(detail));
            },
        }
    }
}

fn give_up(host: &str, port: u16, failures: Vec<String>, dns_errors: Vec<Error>) -> Error {
    if failures.is_empty() {
        // Nothing to try: report the DNS reason (NXDOMAIN beats NODATA beats the rest).
        if let Some(e) = dns_errors
            .iter()
            .find(|e| matches!(e, Error::NxDomain(_)))
            .or_else(|| dns_errors.first())
        {
            return e.clone();
        }
        return Error::NoRecord(format!("{host} has no A or AAAA record"));
    }
    let mut detail = format!(
        "no TCP connection to {host} port {port}: {}",
        failures.join("; ")
    );
    for e in &dns_errors {
        detail.push_str(&format!("; lookup: {e}"));
    }
    Error::ConnectFailed(detail)
}

/// The addresses of `name` of one family through the context's resolver: NODATA is an
/// empty list, NXDOMAIN and failures are errors.
pub async fn lookup(resolver: &Resolver, name: &Name, rtype: RecordType) -> Lookup {
    match resolver.query(name, rtype).await? {
        Outcome::Records(answer) => Ok(answer.addresses().0),
        Outcome::NoData { .. } => Ok(Vec::new()),
        Outcome::NxDomain { .. } => Err(Error::NxDomain(format!(
            "{} does not exist",
            name.to_ascii().trim_end_matches('.')
        ))),
    }
}

/// Connects to the given `addresses` (no DNS at all), else to `host` (a validated DNS name)
/// at the hosts file's addresses when it names the host, else at its A and AAAA through
/// `resolver`, racing per RFC 8305.
pub async fn connect_tcp(
    resolver: &Resolver,
    host: &str,
    addresses: &[IpAddr],
    port: u16,
    timing: Timing,
    deadline: Instant,
) -> Result<(tokio::net::TcpStream, SocketAddr)> {
    let tcp = |addr: SocketAddr| tokio::net::TcpStream::connect(addr);
    // The hosts file first, like getaddrinfo with `hosts: files dns` (src/core/dns/hosts.rs).
    let from_hosts;
    let addresses = if addresses.is_empty() {
        from_hosts = resolver.hosts_lookup(host).unwrap_or_default();
        &from_hosts[..]
    } else {
        addresses
    };
    if !addresses.is_empty() {
        let (v6, v4): (Vec<IpAddr>, Vec<IpAddr>) = addresses.iter().partition(|ip| ip.is_ipv6());
        return race(
            host,
            port,
            async { Ok(v6) },
            async { Ok(v4) },
            timing,
            deadline,
            tcp,
        )
        .await;
    }
    let name = Name::from_ascii(format!("{host}."))
        .map_err(|e| Error::InvalidArg(format!("{host}: {e}")))?;
    race(
        host,
        port,
        lookup(resolver, &name, RecordType::AAAA),
        lookup(resolver, &name, RecordType::A),
        timing,
        deadline,
        tcp,
    )
    .await
}

#[cfg(test)]
mod tests {
    //! T-HE-01..07 with scripted lookups and connects under tokio's paused clock: time
    //! only moves when every task waits, so the instants below are exact.

    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn v6(n: u16) -> IpAddr {
        IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, n))
    }

    fn v4(n: u8) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::new(198, 18, 0, n))
    }

    /// A lookup that answers `answer` after `after`.
    async fn answer(after: Duration, answer: Lookup) -> Lookup {
        tokio::time::sleep(after).await;
        answer
    }

    /// What happens to a connect attempt to one address.
    #[derive(Clone, Copy)]
    enum Fate {
        /// Succeeds after the delay.
        Win(u64),
        /// Fails after the delay.
        Fail(u64),
        /// Never completes.
        Hang,
    }

    /// Records (address, start time in ms) for each attempt and counts dropped attempts.
    #[derive(Clone, Default)]
    struct Log {
        started: Arc<Mutex<Vec<(IpAddr, u64)>>>,
        dropped: Arc<AtomicUsize>,
    }

    struct DropFlag(Arc<AtomicUsize>);
    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    async fn run(
        aaaa: (u64, Lookup),
        a: (u64, Lookup),
        fates: Vec<(IpAddr, Fate)>,
        delay: Duration,
        budget: Duration,
    ) -> (Result<(IpAddr, u64)>, Log) {
        let t0 = Instant::now();
        let log = Log::default();
        let l = log.clone();
        let connect = move |addr: SocketAddr| {
            let at = (Instant::now() - t0).as_millis() as u64;
            l.started.lock().unwrap().push((addr.ip(), at));
            let fate = fates
                .iter()
                .find(|(ip, _)| *ip == addr.ip())
                .map(|(_, f)| *f)
                .unwrap_or(Fate::Hang);
            let flag = DropFlag(l.dropped.clone());
            async move {
                let _flag = flag;
                match fate {
                    Fate::Win(d) => {
                        tokio::time::sleep(ms(d)).await;
                        Ok(addr.ip())
                    }
                    Fate::Fail(d) => {
                        tokio::time::sleep(ms(d)).await;
                        Err(io::Error::new(io::ErrorKind::ConnectionRefused, "refused"))
                    }
                    Fate::Hang => std::future::pending().await,
                }
            }
        };
        let timing = Timing {
            resolution_delay: RESOLUTION_DELAY,
            attempt_delay: attempt_delay(Some(delay)),
        };
        let res = race(
            "host.example",
            993,
            answer(ms(aaaa.0), aaaa.1),
            answer(ms(a.0), a.1),
            timing,
            t0 + budget,
            connect,
        )
        .await
        .map(|(ip, addr)| {
            assert_eq!(ip, addr.ip());
            (ip, (Instant::now() - t0).as_millis() as u64)
        });
        (res, log)
    }

    fn starts(log: &Log) -> Vec<(IpAddr, u64)> {
        log.started.lock().unwrap().clone()
    }

    #[tokio::test(start_paused = true)]
    async fn t_he_01_aaaa_first_starts_ipv6_at_once() {
        let (res, log) = run(
            (0, Ok(vec![v6(1)])),
            (20, Ok(vec![v4(1)])),
            vec![(v6(1), Fate::Win(5))],
            DEFAULT_ATTEMPT_DELAY,
            ms(5000),
        )
        .await;
        assert_eq!(res.unwrap(), (v6(1), 5));
        assert_eq!(starts(&log), vec![(v6(1), 0)]);
    }

    #[tokio::test(start_paused = true)]
    async fn t_he_02_aaaa_within_resolution_delay() {
        let (res, log) = run(
            (30, Ok(vec![v6(1)])),
            (0, Ok(vec![v4(1)])),
            vec![(v6(1), Fate::Win(5))],
            DEFAULT_ATTEMPT_DELAY,
            ms(5000),
        )
        .await;
        assert_eq!(res.unwrap(), (v6(1), 35));
        assert_eq!(starts(&log), vec![(v6(1), 30)]);
    }

    #[tokio::test(start_paused = true)]
    async fn t_he_03_late_aaaa_joins_the_list() {
        let (res, log) = run(
            (80, Ok(vec![v6(1)])),
            (0, Ok(vec![v4(1)])),
            vec![(v6(1), Fate::Win(10))],
            DEFAULT_ATTEMPT_DELAY,
            ms(5000),
        )
        .await;
        assert_eq!(starts(&log), vec![(v4(1), 50), (v6(1), 300)]);
        assert_eq!(res.unwrap(), (v6(1), 310));
        // The hanging IPv4 attempt was cancelled.
        assert_eq!(log.dropped.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn t_he_04_negative_aaaa_starts_ipv4() {
        let (res, log) = run(
            (10, Ok(vec![])),
            (0, Ok(vec![v4(1)])),
            vec![(v4(1), Fate::Win(1))],
            DEFAULT_ATTEMPT_DELAY,
            ms(5000),
        )
        .await;
        assert_eq!(starts(&log), vec![(v4(1), 10)]);
        assert_eq!(res.unwrap(), (v4(1), 11));
        // A failed AAAA lookup counts as negative too.
        let (_, log) = run(
            (10, Err(Error::ServFail("x".into()))),
            (0, Ok(vec![v4(1)])),
            vec![(v4(1), Fate::Win(1))],
            DEFAULT_ATTEMPT_DELAY,
            ms(5000),
        )
        .await;
        assert_eq!(starts(&log), vec![(v4(1), 10)]);
    }

    #[tokio::test(start_paused = true)]
    async fn t_he_05_interleaving() {
        let (res, log) = run(
            (0, Ok(vec![v6(1), v6(2)])),
            (0, Ok(vec![v4(1), v4(2)])),
            vec![],
            DEFAULT_ATTEMPT_DELAY,
            ms(2000),
        )
        .await;
        assert_eq!(
            starts(&log),
            vec![(v6(1), 0), (v4(1), 250), (v6(2), 500), (v4(2), 750)]
        );
        assert!(matches!(res, Err(Error::Timeout(_))), "{res:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn t_he_06_attempt_delay_clamped() {
        assert_eq!(attempt_delay(Some(ms(5))), MIN_ATTEMPT_DELAY);
        assert_eq!(attempt_delay(Some(Duration::ZERO)), MIN_ATTEMPT_DELAY);
        assert_eq!(attempt_delay(Some(ms(100))), ms(100));
        assert_eq!(
            attempt_delay(Some(Duration::from_secs(60))),
            MAX_ATTEMPT_DELAY
        );
        assert_eq!(attempt_delay(None), DEFAULT_ATTEMPT_DELAY);
        let (_, log) = run(
            (0, Ok(vec![v6(1), v6(2)])),
            (0, Ok(vec![v4(1)])),
            vec![],
            ms(5),
            ms(100),
        )
        .await;
        assert_eq!(starts(&log), vec![(v6(1), 0), (v4(1), 10), (v6(2), 20)]);
    }

    #[tokio::test(start_paused = true)]
    async fn t_he_07_ipv4_wins_and_the_rest_is_cancelled() {
        // IPv6 black-holed: IPv4 starts at 250 ms and wins; the IPv6 attempt is dropped.
        let (res, log) = run(
            (0, Ok(vec![v6(1)])),
            (0, Ok(vec![v4(1)])),
            vec![(v6(1), Fate::Hang), (v4(1), Fate::Win(3))],
            DEFAULT_ATTEMPT_DELAY,
            ms(5000),
        )
        .await;
        assert_eq!(res.unwrap(), (v4(1), 253));
        assert_eq!(log.dropped.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn failure_starts_the_next_attempt_at_once() {
        let (res, log) = run(
            (0, Ok(vec![v6(1)])),
            (0, Ok(vec![v4(1)])),
            vec![(v6(1), Fate::Fail(20)), (v4(1), Fate::Win(1))],
            DEFAULT_ATTEMPT_DELAY,
            ms(5000),
        )
        .await;
        assert_eq!(starts(&log), vec![(v6(1), 0), (v4(1), 20)]);
        assert_eq!(res.unwrap(), (v4(1), 21));
    }

    #[tokio::test(start_paused = true)]
    async fn all_fail_lists_each_address() {
        let (res, _) = run(
            (0, Ok(vec![v6(1)])),
            (0, Ok(vec![v4(1)])),
            vec![(v6(1), Fate::Fail(1)), (v4(1), Fate::Fail(1))],
            DEFAULT_ATTEMPT_DELAY,
            ms(5000),
        )
        .await;
        let Err(Error::ConnectFailed(d)) = res else {
            panic!("{res:?}");
        };
        assert!(
            d.contains("[2001:db8::1]:993") && d.contains("198.18.0.1:993"),
            "{d}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn dns_outcomes() {
        let (res, log) = run(
            (0, Ok(vec![])),
            (0, Ok(vec![])),
            vec![],
            DEFAULT_ATTEMPT_DELAY,
            ms(5000),
        )
        .await;
        assert!(matches!(res, Err(Error::NoRecord(_))), "{res:?}");
        assert!(starts(&log).is_empty());
        let (res, _) = run(
            (0, Err(Error::NxDomain("x".into()))),
            (0, Err(Error::NxDomain("x".into()))),
            vec![],
            DEFAULT_ATTEMPT_DELAY,
            ms(5000),
        )
        .await;
        assert!(matches!(res, Err(Error::NxDomain(_))), "{res:?}");
        // A lookup that never answers is bounded by the deadline.
        let (res, _) = run(
            (100_000, Ok(vec![])),
            (100_000, Ok(vec![])),
            vec![],
            DEFAULT_ATTEMPT_DELAY,
            ms(300),
        )
        .await;
        assert!(
            matches!(&res, Err(Error::Timeout(d)) if d.contains("AAAA lookup")),
            "{res:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_only_waits_the_resolution_delay() {
        // AAAA never answers (within the deadline): IPv4 starts after 50 ms.
        let (res, log) = run(
            (100_000, Ok(vec![])),
            (0, Ok(vec![v4(1)])),
            vec![(v4(1), Fate::Win(1))],
            DEFAULT_ATTEMPT_DELAY,
            ms(5000),
        )
        .await;
        assert_eq!(starts(&log), vec![(v4(1), 50)]);
        assert_eq!(res.unwrap(), (v4(1), 51));
    }
}
