//! Guessing, Thunderbird's last resort (opt-in in mailsrv): `imap.<domain>`, `mail.<domain>`
//! and the bare domain for IMAP and POP3; `smtp.<domain>` and `mail.<domain>` for
//! submission; each on the TLS services' ports ([`ServicePorts`]: 993, 143 STARTTLS, 995, 110
//! STARTTLS, 465, 587 STARTTLS by default; never plaintext).
//!
//! Every guess is checked at once through the connect pipeline: the protocol's greeting and
//! a TLS handshake whose certificate proves the host's own name (or, where the host
//! publishes DNSSEC-signed TLSA records, matches them). A guess that passes becomes a
//! candidate, in preference order (IMAP with implicit TLS first, then STARTTLS, then POP3;
//! within a service `imap.`, `mail.`, the bare domain); one that does not is noted and
//! dropped. Passing says only that a mail server with a valid certificate answers at that
//! name: the verdict ([`super::Coverage::Guess`]) is UNVERIFIED unless DANE or the probe
//! (SNI = the mail domain) proves it.

use futures_util::future::join_all;
use tokio::time::Instant;

use super::source_run::SourceRun;
use super::xml::{AddressParts, ClientConfig, ServerEntry};
use super::{Coverage, Found, ServicePorts, Source, entry_of};
use crate::core::cert::ca_store::CaStore;
use crate::core::cert::dane::{self, TlsaState};
use crate::core::dns::resolver::Resolver;
use crate::core::service::Service;
use crate::core::tls::connect::connect;
use crate::core::verdict::authenticity::reconnect_request;
use crate::core::{Error, Result};

/// The guesses for `domain`, in preference order.
pub fn guesses(domain: &str, ports: &ServicePorts) -> Vec<(Service, String, u16)> {
    let access = [
        format!("imap.{domain}"),
        format!("mail.{domain}"),
        domain.to_string(),
    ];
    let submission = [format!("smtp.{domain}"), format!("mail.{domain}")];
    let mut out = Vec::new();
    for service in Service::ALL {
        let hosts: &[String] = if service.purpose() == crate::core::service::Purpose::Access {
            &access
        } else {
            &submission
        };
        for h in hosts {
            out.push((service, h.clone(), ports.get(service)));
        }
    }
    // Service::ALL is IMAPS, IMAP, POP3S, POP3, SUBMISSIONS, SUBMISSION: the preference order.
    out
}

/// One guess: greeting + TLS with the host's own name, or its TLSA records.
async fn check(
    resolver: &Resolver,
    trust: &CaStore,
    service: Service,
    host: &str,
    port: u16,
    deadline: Instant,
) -> Result<String> {
    let mut req = reconnect_request(service, host, port);
    let mut how = "a certificate for its own name";
    if let Ok(TlsaState::Required { addresses, records }) =
        dane::lookup(resolver, host, port, deadline).await
    {
        req.addresses = addresses;
        req.tlsa = Some(records);
        how = "a certificate its DNSSEC-signed TLSA records match";
    }
    let mut conn = connect(resolver, Some(trust.clone()), req, deadline).await?;
    let _ = conn.close();
    Ok(format!("{host}:{port} answered {service} with {how}"))
}

/// The guessing source for the mail domain of `parts`.
pub async fn run(
    resolver: &Resolver,
    trust: &CaStore,
    parts: &AddressParts,
    ports: &ServicePorts,
    deadline: Instant,
) -> SourceRun {
    let list = guesses(&parts.domain, ports);
    let checks = list.iter().map(|(service, host, port)| async move {
        tokio::time::timeout_at(
            deadline,
            check(resolver, trust, *service, host, *port, deadline),
        )
        .await
        .unwrap_or_else(|_| Err(Error::Timeout(format!("{host}:{port}: deadline passed"))))
    });
    let results = join_all(checks).await;
    let mut config = ClientConfig::default();
    let mut notes = Vec::new();
    for ((service, host, port), r) in list.iter().zip(results) {
        match r {
            Ok(how) => {
                let (protocol, socket) = entry_of(*service);
                notes.push(how);
                config.servers.push(ServerEntry {
                    protocol,
                    host: host.clone(),
                    port: *port,
                    socket,
                    username: Some(parts.address.clone()),
                    authentication: Vec::new(),
                });
            }
            Err(e) => notes.push(format!("{host}:{port} ({service}): {e}")),
        }
    }
    let found = if config.servers.is_empty() {
        Err(Error::NotFound(format!(
            "no guessed server of {} answered with TLS ({} tried)",
            parts.domain,
            list.len()
        )))
    } else {
        Ok(Found {
            source: Source::Guess,
            url: None,
            config,
            coverage: Coverage::Guess,
            srv: None,
            mx_dnssec: None,
        })
    };
    SourceRun {
        found,
        hops: Vec::new(),
        notes,
        mx: None,
        record: None,
        unfollowed: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guesses_in_preference_order() {
        let mut ports = ServicePorts::default();
        ports.set(Service::Imaps, 10993);
        let g = guesses("example.com", &ports);
        assert_eq!(g.len(), 16);
        assert_eq!(g[0], (Service::Imaps, "imap.example.com".into(), 10993));
        assert_eq!(g[1].1, "mail.example.com");
        assert_eq!(g[2].1, "example.com");
        assert_eq!(g[3], (Service::Imap, "imap.example.com".into(), 143));
        assert_eq!(
            g[12],
            (Service::Submissions, "smtp.example.com".into(), 465)
        );
        assert_eq!(g[15], (Service::Submission, "mail.example.com".into(), 587));
    }
}
