//! Entry points shared by the cargo-fuzz targets (fuzz/) and the corpus replay test
//! (tests/fuzz_corpus.rs), so both exercise exactly the same code. Each must return
//! normally for every input: an error is fine, a panic or a hang is a bug.

use super::address::MailDomain;
use super::cert::identity::{MatchOptions, PresentedIds, ReferenceIdentity, match_identity};
use super::dns::anchors::AnchorSource;

/// SAN / SRVName extraction, then matching against fixed references.
pub fn san(data: &[u8]) {
    if let Ok(ids) = PresentedIds::from_der(data) {
        let _ = ids.describe();
        let mut refs = ReferenceIdentity::new();
        let _ = refs.add_srv_id("imaps", "example.com");
        let _ = refs.add_dns_id("mail.example.net");
        let legacy = MatchOptions {
            legacy_cn: true,
            accept_sibling_service: true,
        };
        let _ = match_identity(&refs, &ids, &MatchOptions::default());
        let _ = match_identity(&refs, &ids, &legacy);
    }
}

/// Address parsing: the result is either an error or a normalised, bounded name.
pub fn address(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(domain) = MailDomain::parse(text)
    {
        assert!(domain.len() <= 253 && domain.is_ascii() && !domain.ends_with('.'));
        assert_eq!(
            MailDomain::parse(&domain).as_ref(),
            Ok(&domain),
            "idempotent"
        );
    }
}

/// Trust anchor parsing.
pub fn anchor(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = AnchorSource::from_text(text);
    }
}

/// The history file reader: any bytes give records or a reason, never a panic; what it
/// accepts is normalised and survives a write/read round trip.
pub fn history(data: &[u8]) {
    use super::verdict::history::{parse, render};
    if let Ok(records) = parse(data) {
        for (k, e) in &records {
            assert!(e.seen.first <= e.seen.last);
            assert!(!k.domain.ends_with('.') && k.domain.is_ascii());
        }
        let again = parse(render(&records, &Default::default()).as_bytes())
            .expect("a rendered history parses");
        assert_eq!(again, records, "write/read round trip");
    }
}

/// RFC 2782 ordering of arbitrary (priority, weight) lists: a permutation with
/// non-decreasing priorities, whatever the seed.
pub fn srv_order(data: &[u8]) {
    use super::dns::srv_order::{SplitMix, rfc2782_order};
    if data.len() < 8 {
        return;
    }
    let seed = u64::from_le_bytes(data[..8].try_into().unwrap_or([0; 8]));
    let items: Vec<(usize, u16, u16)> = data[8..]
        .chunks_exact(4)
        .take(512)
        .enumerate()
        .map(|(i, c)| {
            (
                i,
                u16::from_le_bytes([c[0], c[1]]),
                u16::from_le_bytes([c[2], c[3]]),
            )
        })
        .collect();
    let n = items.len();
    let out = rfc2782_order(items, |t| t.1, |t| t.2, &mut SplitMix::from_seed(seed));
    assert_eq!(out.len(), n);
    assert!(
        out.windows(2).all(|w| w[0].1 <= w[1].1),
        "priorities out of order"
    );
    let mut ids: Vec<usize> = out.iter().map(|t| t.0).collect();
    ids.sort_unstable();
    assert!(
        ids.iter().enumerate().all(|(i, &x)| i == x),
        "not a permutation"
    );
}

/// The pre-TLS dialogues (IMAP, POP3, SMTP) against arbitrary server bytes: an error or a
/// go-ahead, never a panic or a hang (the in-memory stream ends where the data ends).
pub fn starttls(data: &[u8]) {
    use super::service::Security;
    use super::tls::starttls::upgrade;
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    else {
        return;
    };
    for security in [
        Security::StartTlsImap,
        Security::StartTlsPop3,
        Security::StartTlsSmtp,
    ] {
        let (client, mut server) = tokio::io::duplex(1 << 16);
        let script = data.to_vec();
        rt.block_on(async {
            use tokio::io::AsyncWriteExt;
            let feed = async move {
                let _ = server.write_all(&script).await;
                let _ = server.shutdown().await;
                // Keep the server side open (and drain what the client says) until done.
                let mut sink = [0u8; 1024];
                loop {
                    use tokio::io::AsyncReadExt;
                    match server.read(&mut sink).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
            };
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(200);
            let talk = async move {
                let mut client = client;
                let r = upgrade(&mut client, security, "[127.0.0.1]", deadline).await;
                drop(client); // lets the server side see EOF and stop
                r
            };
            let (_, res) = tokio::join!(feed, talk);
            let _ = res;
        });
    }
}
