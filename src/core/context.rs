//! A context: the resolver, the settings and the request table of one client.
//! Every operation exists twice, blocking and async, running the same future.

use std::future::Future;
use std::sync::Arc;

use tokio::time::Instant;

use super::account::change::{AccountChangeOutcome, FreshCandidate, decide_account};
use super::account::{AccountDiscovery, AccountOptions, Source, discover_account};
use super::address::MailDomain;
use super::cert::ca_store::{CaStore, parse_anchor_certs};
use super::cert::dane::{self, TlsaState};
use super::cert::identity::{MatchOptions, ReferenceIdentity};
use super::cert::verifier::{CertVerdict, check_names_only, verify_cert};
use super::config::{CaMode, Config};
use super::dns::anchors::AnchorSource;
use super::dns::answer::DnssecState;
use super::dns::discover::{DiscoverOptions, Discovery, discover};
use super::dns::resolver::Resolver;
use super::dns::system::{FileStamp, ResolvConf};
use super::requests::{Deliver, DispatchMode, Dispatcher, RequestId};
use super::runtime::{block_on, runtime};
use super::service::Service;
use super::tls::connect::{self, ConnectRequest, MailConnection};
use super::verdict::authenticity::Evidence;
use super::verdict::authenticity::{self, AuthRequest, Authenticity, CallerChains, PeerSource};
use super::verdict::binding::Binding;
use super::verdict::change::{
    ChangeOutcome, ChangeRequest, Decision, Reason, apply_decline, decide,
};
use super::verdict::history::{History, ObservationKey};
use super::{Error, Result};
use once_cell::sync::OnceCell;
use rustls_pki_types::{CertificateDer, UnixTime};
use std::sync::Mutex;

/// The stamp of the system resolver configuration, when the context follows it.
fn system_stamp(config: &Config) -> Option<FileStamp> {
    if config.follows_system() {
        FileStamp::of(&config.resolv_conf)
    } else {
        None
    }
}

/// What `autoconfigure` found: the discovery, and for each of its services (same order) the
/// verdict on each endpoint (same order); a verdict that could not be reached is an error.
pub struct AutoConfig {
    pub discovery: Discovery,
    pub verdicts: Vec<Vec<Result<Authenticity>>>,
}

/// The choices of one `autoconfigure` call.
#[derive(Debug, Clone, Copy)]
pub struct AutoconfigFlags {
    /// Whether the authenticity checks may probe the targets.
    pub probe: bool,
    /// Only DNSSEC-secure answers count (discovery fails the others; no probe).
    pub require_secure: bool,
}

pub struct Context {
    config: Config,
    anchors: AnchorSource,
    /// The resolver in use, and the stamp of the resolv.conf it was built from (when the
    /// nameservers come from there): see [`Context::resolver`].
    resolver: Mutex<(Arc<Resolver>, Option<FileStamp>)>,
    dispatcher: Dispatcher,
    /// Loaded on first use: a DNS-only client never pays for (or fails on) the CA store.
    trust: OnceCell<CaStore>,
}

impl Drop for Context {
    /// The Autodiscover hook first: no call starts any more and the calls in flight have
    /// returned before the requests are cancelled, so the caller's function never runs
    /// after the context is gone.
    fn drop(&mut self) {
        if let Some(h) = &self.config.autodiscover_hook {
            h.close();
        }
    }
}

impl Context {
    pub fn new(config: Config) -> Result<Self> {
        let rt = runtime()?;
        let anchors = match &config.trust_anchor_file {
            Some(p) => AnchorSource::from_file(p)?,
            None => AnchorSource::BuiltIn,
        };
        // Stamped before it is read: a change made meanwhile is seen by the next operation.
        let stamp = system_stamp(&config);
        let rcfg = config.resolver_config(anchors.clone())?;
        let resolver = {
            let _in_runtime = rt.enter();
            Arc::new(Resolver::new(&rcfg)?)
        };
        let dispatcher = Dispatcher::new(config.dispatch)?;
        Ok(Context {
            config,
            anchors,
            resolver: Mutex::new((resolver, stamp)),
            dispatcher,
            trust: OnceCell::new(),
        })
    }

    /// The resolver an operation starting now uses (with its capability verdicts and its
    /// key and answer caches). When the nameservers come from the system configuration
    /// (none configured), that file is checked first, one `stat` per operation as glibc
    /// does: when its inode, size or times changed, the resolver is rebuilt from it, so the
    /// new nameservers and options apply at once and nothing learnt on the old network
    /// (RFC 8027 capability verdicts, cached keys and answers) is kept. A file that names
    /// no nameserver any more leaves the previous ones in use. Operations already running
    /// keep the resolver they started with.
    pub fn resolver(&self) -> Arc<Resolver> {
        let mut current = self.resolver.lock().unwrap_or_else(|p| p.into_inner());
        let stamp = system_stamp(&self.config);
        if stamp != current.1 {
            current.1 = stamp;
            if let Some(r) = self.rebuilt_resolver() {
                current.0 = r;
            }
        }
        current.0.clone()
    }

    /// A resolver built from the system configuration as it is now, if it names a
    /// nameserver.
    fn rebuilt_resolver(&self) -> Option<Arc<Resolver>> {
        let sys = ResolvConf::read(&self.config.resolv_conf);
        let rcfg = self
            .config
            .resolver_config_with(self.anchors.clone(), &sys)
            .ok()?;
        let _in_runtime = runtime().ok()?.enter();
        Resolver::new(&rcfg).ok().map(Arc::new)
    }

    /// Checks a certificate chain (leaf first, DER) against the trusted CAs and `identity`
    /// for clients that keep their own TLS stack: chain first, then names (T-AUTH-11).
    /// The context's matching policy is OR'ed with `options`. No network.
    pub fn check_cert(
        &self,
        chain: &[Vec<u8>],
        identity: &ReferenceIdentity,
        options: MatchOptions,
    ) -> Result<CertVerdict> {
        let store = self.ca_store()?;
        let chain: Vec<CertificateDer<'_>> = chain
            .iter()
            .map(|c| CertificateDer::from(c.as_slice()))
            .collect();
        let options = self.config.match_options.union(options);
        verify_cert(&store, &chain, identity, &options, UnixTime::now())
    }

    /// [`Context::check_cert`] without path validation (the caller's TLS stack did it):
    /// the names of the leaf only (see [`check_names_only`]). No CA store is needed.
    pub fn check_cert_names(
        &self,
        chain: &[Vec<u8>],
        identity: &ReferenceIdentity,
        options: MatchOptions,
    ) -> Result<CertVerdict> {
        let chain: Vec<CertificateDer<'_>> = chain
            .iter()
            .map(|c| CertificateDer::from(c.as_slice()))
            .collect();
        let options = self.config.match_options.union(options);
        check_names_only(&chain, identity, &options)
    }

    /// Checks `req` now, and returns the authenticity future (see [`authenticity::verify`]).
    fn authenticity_future(
        &self,
        mut req: AuthRequest,
    ) -> Result<impl Future<Output = Result<Authenticity>> + Send + 'static + use<>> {
        authenticity::check(&req)?;
        req.probe &= self.config.probe;
        req.require_secure |= self.config.require_secure;
        let trust = if req.probe {
            Some(self.ca_store()?)
        } else {
            None
        };
        req.accept_sibling |= self.config.match_options.accept_sibling_service;
        let resolver = self.resolver();
        let deadline = self.deadline() - self.config.timeout / 20;
        Ok(async move { authenticity::verify(&resolver, trust, req, deadline).await })
    }

    /// The authenticity future over the chains of the caller's own TLS connections (see
    /// [`authenticity::verify_with`]): the same rules and the same DNSSEC and DANE steps,
    /// with the caller's chains in place of mailsrv's probe and reconnect.
    fn chains_future(
        &self,
        mut req: AuthRequest,
        mut chains: CallerChains,
    ) -> Result<impl Future<Output = Result<Authenticity>> + Send + 'static + use<>> {
        authenticity::check(&req)?;
        if req.keep_probe {
            return Err(Error::InvalidArg(
                "KEEP_PROBE: there is no probe connection to keep when the chains come from the caller".into(),
            ));
        }
        req.probe &= self.config.probe;
        req.require_secure |= self.config.require_secure;
        req.accept_sibling |= self.config.match_options.accept_sibling_service;
        chains.store = match chains.names_only {
            true => None,
            false => Some(self.ca_store()?),
        };
        let resolver = self.resolver();
        let deadline = self.deadline() - self.config.timeout / 20;
        let peers = Some(PeerSource::Chains(chains));
        Ok(async move { authenticity::verify_with(&resolver, peers, req, deadline).await })
    }

    /// `verify_srv_authenticity_with_chains`, blocking.
    pub fn verify_srv_authenticity_with_chains(
        &self,
        req: AuthRequest,
        chains: CallerChains,
    ) -> Result<Authenticity> {
        self.run(self.chains_future(req, chains)?)
    }

    /// `verify_srv_authenticity_with_chains`, async.
    pub fn verify_srv_authenticity_with_chains_async(
        &self,
        req: AuthRequest,
        chains: CallerChains,
        deliver: Deliver<Authenticity>,
    ) -> Result<RequestId> {
        self.spawn(self.chains_future(req, chains)?, deliver)
    }

    /// `verify_srv_authenticity`, blocking.
    pub fn verify_srv_authenticity(&self, req: AuthRequest) -> Result<Authenticity> {
        self.run(self.authenticity_future(req)?)
    }

    /// `verify_srv_authenticity`, async: `deliver` gets the verdict exactly once.
    pub fn verify_srv_authenticity_async(
        &self,
        req: AuthRequest,
        deliver: Deliver<Authenticity>,
    ) -> Result<RequestId> {
        self.spawn(self.authenticity_future(req)?, deliver)
    }

    /// The change check for one service (docs/design.md §2.12): a fresh discovery of that
    /// service, the authenticity of its first endpoint when it differs from the saved one,
    /// the observation recorded in `history` (in memory: the caller saves it), and the
    /// decision.
    fn change_future(
        &self,
        req: ChangeRequest,
        history: Option<Arc<Mutex<History>>>,
    ) -> Result<impl Future<Output = Result<ChangeOutcome>> + Send + 'static + use<>> {
        let domain = MailDomain::parse(&req.domain)?;
        // Not `require_secure` here: an insecure answer must still reach the decision (and
        // the history); the verdict below is what refuses it.
        let resolver = self.resolver();
        let discovery =
            self.discover_future(resolver.clone(), &domain, &[req.saved.service], false)?;
        let mut auth = AuthRequest::new(&domain, req.saved.service, "placeholder.invalid", 1);
        auth.probe = req.probe && self.config.probe;
        auth.require_secure = req.require_secure || self.config.require_secure;
        auth.accept_sibling = self.config.match_options.accept_sibling_service;
        let trust = if auth.probe {
            Some(self.ca_store()?)
        } else {
            None
        };
        let deadline = self.deadline() - self.config.timeout / 20;
        Ok(async move {
            let d = discovery.await?;
            let fresh = d
                .get(req.saved.service)
                .cloned()
                .ok_or_else(|| Error::Runtime("discovery lost the service".into()))?;
            let first = fresh.endpoints.first().map(|e| (e.target.clone(), e.port));
            let moved = first.as_ref().is_some_and(|(t, p)| {
                !(t.eq_ignore_ascii_case(req.saved.host.trim_end_matches('.'))
                    && *p == req.saved.port)
            });
            let mut authenticity = None;
            if let (Some((target, port)), true, true) =
                (&first, moved, req.saved.origin.automatic())
            {
                let auth = AuthRequest {
                    target: target.clone(),
                    port: *port,
                    ..auth
                };
                authenticity = Some(authenticity::verify(&resolver, trust, auth, deadline).await?);
            }
            let (seen, declined) = match (&first, &history) {
                (Some((target, port)), Some(h)) => {
                    let key = ObservationKey {
                        domain: domain.to_string(),
                        service: req.saved.service,
                        target: target.clone(),
                        port: *port,
                    };
                    let mut h = h
                        .lock()
                        .map_err(|_| Error::Runtime("history lock poisoned".into()))?;
                    let seen = h.observe_by(key.clone(), req.now, Some(Source::Srv))?;
                    (Some(seen), h.is_declined(&key))
                }
                _ => (None, false),
            };
            let verdict = authenticity.as_ref().map(|a| a.verdict);
            let binding = authenticity.as_ref().and_then(|a| a.binding.as_ref());
            let mut advice = decide(
                &req.saved,
                &fresh,
                verdict,
                binding,
                seen,
                req.now,
                req.min_age,
            );
            // A REJECT because the re-read SRV answer was bogus is not a wrong target.
            if advice.decision == Decision::Reject
                && authenticity
                    .as_ref()
                    .is_some_and(|a| a.srv_dnssec == Some(DnssecState::Bogus))
            {
                advice.reason = Reason::Bogus;
            }
            let advice = apply_decline(advice, declined);
            Ok(ChangeOutcome {
                advice,
                fresh,
                authenticity,
            })
        })
    }

    /// `srv_change_check`, blocking.
    pub fn srv_change_check(
        &self,
        req: ChangeRequest,
        history: Option<Arc<Mutex<History>>>,
    ) -> Result<ChangeOutcome> {
        self.run(self.change_future(req, history)?)
    }

    /// `srv_change_check`, async.
    pub fn srv_change_check_async(
        &self,
        req: ChangeRequest,
        history: Option<Arc<Mutex<History>>>,
        deliver: Deliver<ChangeOutcome>,
    ) -> Result<RequestId> {
        self.spawn(self.change_future(req, history)?, deliver)
    }

    /// Account setup in one call: discovery of every service, then the authenticity of every
    /// endpoint found (all at once), ready for a setup dialog.
    fn autoconfigure_future(
        &self,
        address: &str,
        flags: AutoconfigFlags,
    ) -> Result<impl Future<Output = Result<AutoConfig>> + Send + 'static + use<>> {
        let require_secure = flags.require_secure || self.config.require_secure;
        let resolver = self.resolver();
        let discovery = self.discover_future(
            resolver.clone(),
            &MailDomain::parse(address)?,
            &Service::ALL,
            require_secure,
        )?;
        let probe = flags.probe && self.config.probe;
        let trust = if probe { Some(self.ca_store()?) } else { None };
        let accept_sibling = self.config.match_options.accept_sibling_service;
        let deadline = self.deadline() - self.config.timeout / 20;
        Ok(async move {
            let discovery = discovery.await?;
            let checks = discovery.services.iter().flat_map(|s| {
                s.endpoints.iter().map(|e| {
                    let mut req = AuthRequest::new(&discovery.domain, s.service, &e.target, e.port);
                    req.probe = probe;
                    req.require_secure = require_secure;
                    req.accept_sibling = accept_sibling;
                    authenticity::verify(&resolver, trust.clone(), req, deadline)
                })
            });
            let verdicts = futures_util::future::join_all(checks).await;
            let mut it = verdicts.into_iter();
            let mut per_service = Vec::new();
            for s in &discovery.services {
                let v: Vec<Result<Authenticity>> = it.by_ref().take(s.endpoints.len()).collect();
                per_service.push(v);
            }
            Ok(AutoConfig {
                discovery,
                verdicts: per_service,
            })
        })
    }

    /// `autoconfigure`, blocking.
    pub fn autoconfigure(&self, address: &str, flags: AutoconfigFlags) -> Result<AutoConfig> {
        self.run(self.autoconfigure_future(address, flags)?)
    }

    /// `autoconfigure`, async.
    pub fn autoconfigure_async(
        &self,
        address: &str,
        flags: AutoconfigFlags,
        deliver: Deliver<AutoConfig>,
    ) -> Result<RequestId> {
        self.spawn(self.autoconfigure_future(address, flags)?, deliver)
    }

    /// Account discovery (issues 16, 17; `autoconfig/mod.rs`): every source of `sources` at
    /// once (the defaults when empty), the best-ranked configuration, and a verdict, evidence
    /// and binding for each of its servers. The ISPDB URL, the per-fetch deadlines, the
    /// service ports and the Autodiscover hook come from the configuration (the hook only
    /// when `interactive`: a change check never asks the user); `flags.probe` and
    /// `flags.require_secure` as for `autoconfigure`.
    fn account_future(
        &self,
        address: &str,
        sources: &[Source],
        flags: AutoconfigFlags,
        interactive: bool,
    ) -> Result<impl Future<Output = Result<AccountDiscovery>> + Send + 'static + use<>> {
        let domain = MailDomain::parse(address)?;
        crate::core::account::sources::address_parts(address, &domain)?;
        let trust = self.ca_store()?;
        let opts = AccountOptions {
            sources: if sources.is_empty() {
                Source::defaults()
            } else {
                sources.to_vec()
            },
            probe: flags.probe && self.config.probe,
            require_secure: flags.require_secure || self.config.require_secure,
            accept_sibling: self.config.match_options.accept_sibling_service,
            ispdb_url: self.config.ispdb_url.clone(),
            fetch_timeout: self.config.fetch_timeout,
            ispdb_timeout: self.config.ispdb_timeout,
            seed: self.config.rng_seed,
            ports: self.config.service_ports,
            autodiscover_hook: if interactive {
                self.config.autodiscover_hook.clone()
            } else {
                None
            },
        };
        let resolver = self.resolver();
        let address = address.to_string();
        let deadline = self.deadline() - self.config.timeout / 20;
        Ok(async move { discover_account(resolver, trust, &address, opts, deadline).await })
    }

    /// Account discovery, blocking.
    pub fn discover_account(
        &self,
        address: &str,
        sources: &[Source],
        flags: AutoconfigFlags,
    ) -> Result<AccountDiscovery> {
        self.run(self.account_future(address, sources, flags, true)?)
    }

    /// Account discovery, async: `deliver` gets the outcome exactly once.
    pub fn discover_account_async(
        &self,
        address: &str,
        sources: &[Source],
        flags: AutoconfigFlags,
        deliver: Deliver<AccountDiscovery>,
    ) -> Result<RequestId> {
        self.spawn(self.account_future(address, sources, flags, true)?, deliver)
    }

    /// The multi-source change check (the successor of `srv_change_check` for accounts set
    /// up by account discovery): a fresh account discovery of `req.domain` (an address)
    /// from every default source but plain HTTP (and guessing only for an account set up by
    /// guessing), never asking the user, the candidates of the saved service only, the
    /// chosen one recorded in `history`, and [`decide_account`]'s decision.
    fn account_change_future(
        &self,
        req: ChangeRequest,
        history: Option<Arc<Mutex<History>>>,
    ) -> Result<impl Future<Output = Result<AccountChangeOutcome>> + Send + 'static + use<>> {
        let domain = MailDomain::parse(&req.domain)?;
        let sources: Vec<Source> = Source::ALL
            .iter()
            .copied()
            .filter(|s| match s {
                Source::AutoconfigHttp => false,
                Source::Guess => req.saved.origin == crate::core::verdict::change::Origin::Guess,
                _ => true,
            })
            .collect();
        let flags = AutoconfigFlags {
            probe: req.probe,
            require_secure: req.require_secure,
        };
        let account = self.account_future(&req.domain, &sources, flags, false)?;
        Ok(async move {
            let account = account.await?;
            let service = req.saved.service;
            let index: Vec<usize> = (0..account.candidates.len())
                .filter(|i| account.candidates[*i].service == Some(service))
                .collect();
            let fresh: Vec<FreshCandidate> = index
                .iter()
                .map(|i| {
                    let c = &account.candidates[*i];
                    let a = c.verdict.as_ref().ok();
                    FreshCandidate {
                        host: c.host.clone(),
                        port: c.port,
                        verdict: a.map(|a| a.verdict),
                        tamper_proof: !matches!(c.source, Source::Ispdb | Source::AutoconfigHttp)
                            && a.is_some_and(|a| a.evidence != Some(Evidence::Ispdb)),
                        binding: a.and_then(|a| a.binding.clone()),
                    }
                })
                .collect();
            let found = account.source.map(|_| fresh.as_slice());
            // The history records the server the fresh configuration names for the saved
            // service: the saved one while it is still named, else the one the decision is
            // about (which does not depend on the history).
            let saved_host = req.saved.host.trim_end_matches('.');
            let still = fresh
                .iter()
                .position(|c| c.host.eq_ignore_ascii_case(saved_host) && c.port == req.saved.port);
            let (_, chosen) = decide_account(&req.saved, found, None, req.now, req.min_age);
            let (seen, declined) = match (still.or(chosen), &history) {
                (Some(i), Some(h)) if found.is_some() => {
                    let key = ObservationKey {
                        domain: domain.to_string(),
                        service,
                        target: fresh[i].host.clone(),
                        port: fresh[i].port,
                    };
                    let mut h = h
                        .lock()
                        .map_err(|_| Error::Runtime("history lock poisoned".into()))?;
                    let source = account.candidates[index[i]].source;
                    let seen = h.observe_by(key.clone(), req.now, Some(source))?;
                    (Some(seen), h.is_declined(&key))
                }
                _ => (None, false),
            };
            let (advice, chosen) = decide_account(&req.saved, found, seen, req.now, req.min_age);
            let advice = apply_decline(advice, declined);
            let verdict = chosen.and_then(|i| fresh[i].verdict);
            Ok(AccountChangeOutcome {
                advice,
                verdict,
                candidate: chosen.map(|i| index[i]),
                account,
            })
        })
    }

    /// `account_change_check`, blocking.
    pub fn account_change_check(
        &self,
        req: ChangeRequest,
        history: Option<Arc<Mutex<History>>>,
    ) -> Result<AccountChangeOutcome> {
        self.run(self.account_change_future(req, history)?)
    }

    /// `account_change_check`, async.
    pub fn account_change_check_async(
        &self,
        req: ChangeRequest,
        history: Option<Arc<Mutex<History>>>,
        deliver: Deliver<AccountChangeOutcome>,
    ) -> Result<RequestId> {
        self.spawn(self.account_change_future(req, history)?, deliver)
    }

    /// The CA certificates trusted for TLS: the system store, unless a CA file or in-memory
    /// CAs are configured; those replace it (`CaMode::Replace`, the default) or are added to
    /// it (`CaMode::Add`; with an empty or unreadable system store they are used alone).
    pub fn ca_store(&self) -> Result<CaStore> {
        self.trust
            .get_or_try_init(|| {
                let cfg = &self.config;
                match (&cfg.ca_file, cfg.ca_certs.is_empty(), cfg.ca_mode) {
                    (None, true, _) => return CaStore::system(),
                    (Some(p), true, CaMode::Replace) => return CaStore::from_pem_file(p),
                    _ => {}
                }
                let mut certs = Vec::new();
                let mut names = Vec::new();
                if let Some(p) = &cfg.ca_file {
                    let name = p.display().to_string();
                    let bytes = std::fs::read(p)
                        .map_err(|e| Error::Io(format!("cannot read CA file {name}: {e}")))?;
                    certs = parse_anchor_certs(&bytes, &format!("CA file {name}"))
                        .map_err(|e| Error::NoTrustAnchors(e.detail().to_string()))?;
                    names.push(name);
                }
                if !cfg.ca_certs.is_empty() {
                    names.push(format!("{} in-memory CA certificates", cfg.ca_certs.len()));
                    certs.extend(cfg.ca_certs.iter().cloned());
                }
                let source = names.join(" + ");
                match cfg.ca_mode {
                    CaMode::Replace => CaStore::from_der_certs(certs, &source),
                    CaMode::Add => match CaStore::system() {
                        Ok(system) => system.with_extra(&certs, &source),
                        Err(_) => CaStore::from_der_certs(certs, &source),
                    },
                }
            })
            .cloned()
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn dispatcher(&self) -> &Dispatcher {
        &self.dispatcher
    }

    pub fn dispatch_mode(&self) -> DispatchMode {
        self.dispatcher.mode()
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.config.timeout
    }

    /// Runs `fut` under the context's deadline, blocking the calling thread.
    pub fn run<T>(&self, fut: impl Future<Output = Result<T>>) -> Result<T> {
        let limit = self.config.timeout;
        block_on(async move {
            tokio::time::timeout(limit, fut)
                .await
                .unwrap_or_else(|_| Err(Error::Timeout(format!("no result within {limit:?}"))))
        })?
    }

    /// Starts `fut` under the context's deadline; `deliver` gets the outcome exactly once.
    pub fn spawn<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T>> + Send + 'static,
        deliver: Deliver<T>,
    ) -> Result<RequestId> {
        let limit = self.config.timeout;
        self.dispatcher.submit(
            async move {
                tokio::time::timeout(limit, fut)
                    .await
                    .unwrap_or_else(|_| Err(Error::Timeout(format!("no result within {limit:?}"))))
            },
            deliver,
        )
    }

    /// The discovery future, on `resolver` (the one the whole operation uses).
    fn discover_future(
        &self,
        resolver: Arc<Resolver>,
        domain: &MailDomain,
        services: &[Service],
        require_secure: bool,
    ) -> Result<impl Future<Output = Result<Discovery>> + Send + 'static + use<>> {
        let domain = domain.clone();
        let opts = DiscoverOptions {
            services: services.to_vec(),
            require_secure: require_secure || self.config.require_secure,
            seed: self.config.rng_seed,
        };
        // Stop the DNS phases a little early so partial answers beat the hard deadline.
        let deadline = self.deadline() - self.config.timeout / 20;
        Ok(async move { discover(&resolver, &domain, &opts, deadline).await })
    }

    pub fn discover(
        &self,
        address: &str,
        services: &[Service],
        require_secure: bool,
    ) -> Result<Discovery> {
        // Bad input fails the call itself, before any request exists.
        let domain = MailDomain::parse(address)?;
        self.run(self.discover_future(self.resolver(), &domain, services, require_secure)?)
    }

    pub fn discover_async(
        &self,
        address: &str,
        services: &[Service],
        require_secure: bool,
        deliver: Deliver<Discovery>,
    ) -> Result<RequestId> {
        let domain = MailDomain::parse(address)?;
        self.spawn(
            self.discover_future(self.resolver(), &domain, services, require_secure)?,
            deliver,
        )
    }

    /// Checks `req` and the trust store now (bad input fails the call itself, before any
    /// request exists), and returns the connect future. The context's matching policy is
    /// OR'ed with the request's, as in [`Context::check_cert`].
    fn connect_future(
        &self,
        mut req: ConnectRequest,
    ) -> Result<impl Future<Output = Result<MailConnection>> + Send + 'static + use<>> {
        req.options = self.config.match_options.union(req.options);
        self.connect_task(req, false, None)
    }

    /// [`Context::connect_future`] over the caller's connected socket, when given.
    fn connect_over_future(
        &self,
        mut req: ConnectRequest,
        socket: Option<std::net::TcpStream>,
    ) -> Result<impl Future<Output = Result<MailConnection>> + Send + 'static + use<>> {
        req.options = self.config.match_options.union(req.options);
        self.connect_task(req, false, socket)
    }

    /// `mailsrv_connect` with the caller's connected socket (`None`: mailsrv connects),
    /// blocking.
    pub fn connect_over(
        &self,
        req: ConnectRequest,
        socket: Option<std::net::TcpStream>,
    ) -> Result<MailConnection> {
        self.run(self.connect_over_future(req, socket)?)
    }

    /// [`Context::connect_over`], async.
    pub fn connect_over_async(
        &self,
        req: ConnectRequest,
        socket: Option<std::net::TcpStream>,
        deliver: Deliver<MailConnection>,
    ) -> Result<RequestId> {
        self.spawn(self.connect_over_future(req, socket)?, deliver)
    }

    /// The STARTTLS dialogue to the go-ahead, then the plain socket for the caller's own
    /// TLS (see [`connect::starttls_plain`]).
    fn plain_future(
        &self,
        req: ConnectRequest,
        socket: Option<std::net::TcpStream>,
    ) -> Result<impl Future<Output = Result<connect::PlainConnection>> + Send + 'static + use<>>
    {
        connect::plan(&req)?;
        if !req.security.is_starttls() {
            return Err(Error::InvalidArg(
                "the plain hand-over needs a STARTTLS security mode (IMAP, POP3 or SMTP)".into(),
            ));
        }
        let resolver = self.resolver();
        let deadline = self.deadline() - self.config.timeout / 20;
        Ok(async move { connect::starttls_plain(&resolver, req, socket, deadline).await })
    }

    /// `mailsrv_connect_starttls_plain`, blocking.
    pub fn starttls_plain(
        &self,
        req: ConnectRequest,
        socket: Option<std::net::TcpStream>,
    ) -> Result<connect::PlainConnection> {
        self.run(self.plain_future(req, socket)?)
    }

    /// `mailsrv_connect_starttls_plain`, async.
    pub fn starttls_plain_async(
        &self,
        req: ConnectRequest,
        socket: Option<std::net::TcpStream>,
        deliver: Deliver<connect::PlainConnection>,
    ) -> Result<RequestId> {
        self.spawn(self.plain_future(req, socket)?, deliver)
    }

    /// The connect future of a [`Binding`]: its host, port, SNI and identity, strict
    /// matching (the context's legacy flags never loosen a binding), and with `dane` the
    /// TLSA records looked up and enforced first (an answer that cannot be judged refuses
    /// the connection).
    fn bound_future(
        &self,
        binding: &Binding,
    ) -> Result<impl Future<Output = Result<MailConnection>> + Send + 'static + use<>> {
        self.connect_task(binding.connect_request(), binding.dane, None)
    }

    fn connect_task(
        &self,
        mut req: ConnectRequest,
        dane: bool,
        socket: Option<std::net::TcpStream>,
    ) -> Result<impl Future<Output = Result<MailConnection>> + Send + 'static + use<>> {
        connect::plan(&req)?;
        // A per-connection CA store replaces the context's (which is then not loaded); a
        // pinned key trusted on its own needs none.
        let trust = match (&req.trust, self.ca_store()) {
            (Some(t), _) => Some(t.clone()),
            (None, Ok(t)) => Some(t),
            (None, Err(_)) if !req.pins.is_empty() && req.pin_mode == connect::PinMode::Trust => {
                None
            }
            (None, Err(e)) => return Err(e),
        };
        let resolver = self.resolver();
        // End a little before `run`/`spawn` do, so the step that ran out is named.
        let deadline = self.deadline() - self.config.timeout / 20;
        // The stream's reads and writes get the context's timeout too (the caller may lift
        // it for IMAP IDLE): nothing blocks forever by default.
        let io_timeout = self.config.timeout;
        Ok(async move {
            if dane
                && let TlsaState::Required { addresses, records } =
                    dane::lookup(&resolver, &req.host, req.port, deadline).await?
            {
                req.addresses = addresses;
                req.tlsa = Some(records);
            }
            let mut conn = connect::connect_over(&resolver, trust, req, socket, deadline).await?;
            conn.set_timeout(Some(io_timeout))?;
            Ok(conn)
        })
    }

    /// Connects as `binding` says, blocking (see [`Context::bound_future`]).
    pub fn connect_bound(&self, binding: &Binding) -> Result<MailConnection> {
        self.run(self.bound_future(binding)?)
    }

    /// [`Context::connect_bound`], async.
    pub fn connect_bound_async(
        &self,
        binding: &Binding,
        deliver: Deliver<MailConnection>,
    ) -> Result<RequestId> {
        self.spawn(self.bound_future(binding)?, deliver)
    }

    /// `connect_with_sni`, blocking: a verified TLS stream to a mail server (see
    /// [`connect::connect`]), everything within the context's timeout.
    pub fn connect(&self, req: ConnectRequest) -> Result<MailConnection> {
        self.run(self.connect_future(req)?)
    }

    /// `connect_with_sni`, async: `deliver` gets the connection (or the error) exactly once.
    /// Cancelling the request drops the half-open connection.
    pub fn connect_async(
        &self,
        req: ConnectRequest,
        deliver: Deliver<MailConnection>,
    ) -> Result<RequestId> {
        self.spawn(self.connect_future(req)?, deliver)
    }
}
