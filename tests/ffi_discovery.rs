//! Discovery through the C entry points against the real testbed DNS (knotd, signed zones
//! under a private root). Test vector ids (T-xxx) are those of docs/conformance.md.

mod common;

use std::os::raw::c_char;
use std::ptr;
use std::time::{Duration, Instant};

use common::*;
use mailsrv::ffi::config::*;
use mailsrv::ffi::ctx::*;
use mailsrv::ffi::discovery::*;
use mailsrv::ffi::status::mailsrv_status;

const IMAPS: u32 = 1;
const IMAP: u32 = 2;
const POP3S: u32 = 4;
const POP3: u32 = 8;
const SUBMISSIONS: u32 = 16;
const SUBMISSION: u32 = 32;

const FOUND: u32 = 1;
const NOT_OFFERED: u32 = 2;
const NO_RECORD: u32 = 3;
const LOOKUP_FAILED: u32 = 4;
const BOGUS: u32 = 5;

const SECURE: u32 = 1;
const INSECURE: u32 = 2;

/// A discovery result that frees itself.
struct Disc(*mut mailsrv_discovery);

impl Drop for Disc {
    fn drop(&mut self) {
        unsafe { mailsrv_discovery_free(self.0) };
    }
}

impl Disc {
    fn set(&self, service: u32) -> *const mailsrv_srv_set {
        let s = unsafe { mailsrv_discovery_find(self.0, service) };
        assert!(!s.is_null(), "service {service} missing");
        s
    }
    fn state(&self, service: u32) -> u32 {
        unsafe { mailsrv_srv_set_state(self.set(service)) }
    }
    fn targets(&self, service: u32) -> Vec<(String, u16, u16, u16)> {
        let s = self.set(service);
        (0..unsafe { mailsrv_srv_set_endpoints_len(s) })
            .map(|i| unsafe {
                let e = mailsrv_srv_set_endpoint_get(s, i);
                (
                    text(mailsrv_endpoint_target(e)),
                    mailsrv_endpoint_port(e),
                    mailsrv_endpoint_priority(e),
                    mailsrv_endpoint_weight(e),
                )
            })
            .collect()
    }
}

fn discover_with(ctx: *mut mailsrv_ctx, address: &str, services: u32, flags: u32) -> Disc {
    let mut out = ptr::null_mut();
    let mut err = [0 as c_char; 256];
    let st = unsafe {
        mailsrv_srv_discover(
            ctx,
            c(address).as_ptr(),
            services,
            flags,
            &mut out,
            err.as_mut_ptr(),
            err.len(),
        )
    };
    assert_eq!(st, mailsrv_status::Ok, "{address}: {}", text(err.as_ptr()));
    assert_eq!(text(err.as_ptr()), "", "errbuf must be empty on success");
    Disc(out)
}

fn discover(address: &str, services: u32) -> Disc {
    let ctx = testbed_ctx(0, 10_000);
    let d = discover_with(ctx, address, services, 0);
    unsafe { mailsrv_ctx_free(ctx) };
    d
}

#[test]
fn example_com_all_six_services() {
    let d = discover("joe@example.com", 0);
    assert_eq!(
        text(unsafe { mailsrv_discovery_domain(d.0) }),
        "example.com"
    );
    assert_eq!(unsafe { mailsrv_discovery_services_len(d.0) }, 6);
    assert_eq!(
        d.targets(IMAPS),
        [("mail.example.net".to_string(), port("IMAPS"), 0, 1)]
    );
    assert_eq!(
        d.targets(IMAP),
        [("mail.example.net".to_string(), port("IMAP"), 10, 1)]
    );
    assert_eq!(
        d.targets(POP3S),
        [("mail.example.net".to_string(), port("POP3S"), 20, 1)]
    );
    assert_eq!(d.targets(SUBMISSIONS)[0].1, port("SUBMISSIONS"));
    assert_eq!(d.targets(SUBMISSION)[0].1, port("SUBMISSION"));
    // T-SRV-04: a sole "." target means not offered; no endpoints, no fallback.
    assert_eq!(d.state(POP3), NOT_OFFERED);
    assert!(d.targets(POP3).is_empty());
    for s in [IMAPS, IMAP, POP3S, SUBMISSIONS, SUBMISSION] {
        let set = d.set(s);
        assert_eq!(d.state(s), FOUND);
        unsafe {
            assert_eq!(mailsrv_srv_set_dnssec(set), SECURE, "T-AUTH-01");
            assert_eq!(mailsrv_srv_set_ttl(set), 300);
            assert_eq!(mailsrv_srv_set_status(set), mailsrv_status::Ok);
            let e = mailsrv_srv_set_endpoint_get(set, 0);
            assert_eq!(mailsrv_endpoint_dnssec(e), SECURE);
            assert_eq!(mailsrv_endpoint_address_dnssec(e), SECURE);
            let addrs: Vec<String> = (0..mailsrv_endpoint_addresses_len(e))
                .map(|i| text(mailsrv_endpoint_address_get(e, i)))
                .collect();
            assert_eq!(addrs, ["::1", "127.0.0.1"]);
            assert!(mailsrv_endpoint_address_get(e, 2).is_null());
        }
    }
    // T-SEL-01 / T-SEL-04: lowest priority, then implicit TLS on a tie.
    unsafe {
        assert_eq!(
            mailsrv_srv_set_service(mailsrv_discovery_preferred(d.0, 1)),
            IMAPS
        );
        assert_eq!(
            mailsrv_srv_set_service(mailsrv_discovery_preferred(d.0, 2)),
            SUBMISSIONS
        );
        assert!(mailsrv_discovery_preferred(d.0, 3).is_null());
        assert!(
            mailsrv_discovery_find(d.0, 3).is_null(),
            "two bits are not one service"
        );
        assert!(mailsrv_discovery_service_get(d.0, 6).is_null());
    }
}

#[test]
fn t_srv_01_case_and_t_srv_03_last_at() {
    let d = discover("\"a@b\"@Example.COM", IMAPS);
    assert_eq!(
        text(unsafe { mailsrv_discovery_domain(d.0) }),
        "example.com"
    );
    assert_eq!(d.state(IMAPS), FOUND);
    assert_eq!(unsafe { mailsrv_discovery_services_len(d.0) }, 1);
}

#[test]
fn t_srv_02_idn_domain() {
    let d = discover("user@bücher.example", IMAPS | SUBMISSIONS);
    assert_eq!(
        text(unsafe { mailsrv_discovery_domain(d.0) }),
        "xn--bcher-kva.example"
    );
    assert_eq!(d.state(IMAPS), FOUND);
    assert_eq!(unsafe { mailsrv_srv_set_dnssec(d.set(IMAPS)) }, SECURE);
}

#[test]
fn t_srv_05_nxdomain_is_no_record() {
    let d = discover("nosrv.example.com", IMAPS);
    assert_eq!(d.state(IMAPS), NO_RECORD);
    unsafe {
        assert_eq!(mailsrv_srv_set_status(d.set(IMAPS)), mailsrv_status::Ok);
        assert_eq!(
            mailsrv_srv_set_dnssec(d.set(IMAPS)),
            SECURE,
            "NSEC proof validated"
        );
    }
}

#[test]
fn t_srv_06_servfail_is_lookup_failed_never_no_record() {
    let d = discover("broken.test", IMAPS);
    assert_eq!(d.state(IMAPS), LOOKUP_FAILED);
    unsafe {
        assert_eq!(
            mailsrv_srv_set_status(d.set(IMAPS)),
            mailsrv_status::Servfail
        );
        assert!(text(mailsrv_srv_set_detail(d.set(IMAPS))).contains("Server Failure"));
    }
}

#[test]
fn t_auth_03_bogus_is_an_error_for_the_service() {
    let d = discover("bogus.test", IMAPS | SUBMISSIONS);
    for s in [IMAPS, SUBMISSIONS] {
        assert_eq!(d.state(s), BOGUS);
        unsafe {
            assert_eq!(mailsrv_srv_set_status(d.set(s)), mailsrv_status::Bogus);
            assert_eq!(
                mailsrv_srv_set_endpoints_len(d.set(s)),
                0,
                "bogus data is never handed out"
            );
        }
    }
}

#[test]
fn unsigned_zone_is_insecure_and_usable() {
    let d = discover("insecure.test", IMAPS);
    assert_eq!(d.state(IMAPS), FOUND);
    unsafe { assert_eq!(mailsrv_srv_set_dnssec(d.set(IMAPS)), INSECURE) };
}

#[test]
fn require_secure_flag_rejects_insecure_answers() {
    let ctx = testbed_ctx(0, 10_000);
    let d = discover_with(ctx, "insecure.test", IMAPS, MAILSRV_FLAG_REQUIRE_SECURE);
    assert_eq!(d.state(IMAPS), LOOKUP_FAILED);
    unsafe {
        assert_eq!(
            mailsrv_srv_set_status(d.set(IMAPS)),
            mailsrv_status::NoSecureAnswer
        )
    };
    let d = discover_with(ctx, "example.com", IMAPS, MAILSRV_FLAG_REQUIRE_SECURE);
    assert_eq!(d.state(IMAPS), FOUND);
    unsafe { mailsrv_ctx_free(ctx) };
}

#[test]
fn t_srv_07_priority_order_and_seeded_weights() {
    let order = |seed: u64| {
        let cfg = testbed_config(0, 10_000);
        unsafe { mailsrv_config_set_rng_seed(cfg, seed) };
        let ctx = ctx_from(cfg);
        let d = discover_with(ctx, "multi.example.com", IMAPS, 0);
        unsafe { mailsrv_ctx_free(ctx) };
        d.targets(IMAPS)
            .into_iter()
            .map(|t| t.0)
            .collect::<Vec<_>>()
    };
    let first = order(5);
    assert_eq!(first.len(), 3);
    assert_eq!(
        first[2], "c.example.net",
        "priority 20 comes after priority 10"
    );
    assert_eq!(order(5), first, "same seed, same order");
    let mut a_first = 0;
    for seed in 0..200 {
        if order(seed)[0] == "a.example.net" {
            a_first += 1;
        }
    }
    // Weights 60 and 20: a is first in about 3 of 4 draws.
    assert!((120..180).contains(&a_first), "a first {a_first}/200");
}

#[test]
fn t_srv_17_mixed_dot_rrset_is_not_offered_with_diagnostic() {
    let d = discover("mixed.example.com", IMAPS);
    assert_eq!(d.state(IMAPS), NOT_OFFERED);
    unsafe {
        assert_eq!(mailsrv_srv_set_diagnostics_len(d.set(IMAPS)), 1);
        assert!(text(mailsrv_srv_set_diagnostic_get(d.set(IMAPS), 0)).contains("mixed"));
    }
}

#[test]
fn t_srv_15_truncated_answer_retried_over_tcp() {
    let d = discover("big.example.com", IMAPS);
    assert_eq!(d.state(IMAPS), FOUND);
    assert_eq!(d.targets(IMAPS).len(), 40);
}

#[test]
fn t_srv_14_cname_target_flagged_and_cname_owner_followed() {
    let d = discover("cnametarget.example.com", IMAPS);
    assert_eq!(
        d.targets(IMAPS)[0].0,
        "mail.example.com",
        "the SRV target, never the CNAME expansion"
    );
    unsafe {
        assert!(text(mailsrv_srv_set_diagnostic_get(d.set(IMAPS), 0)).contains("RFC 2782"));
        assert_eq!(
            mailsrv_endpoint_addresses_len(mailsrv_srv_set_endpoint_get(d.set(IMAPS), 0)),
            2
        );
    }
    let d = discover("alias.example.com", IMAPS);
    assert_eq!(d.state(IMAPS), FOUND);
    assert_eq!(d.targets(IMAPS)[0].0, "mail.example.net");
}

#[test]
fn target_without_address_is_reported() {
    let d = discover("noaddr.example.com", IMAPS);
    unsafe {
        let e = mailsrv_srv_set_endpoint_get(d.set(IMAPS), 0);
        assert_eq!(mailsrv_endpoint_addresses_len(e), 0);
        assert_eq!(mailsrv_endpoint_address_status(e), mailsrv_status::NoRecord);
    }
    let d = discover("v6.example.com", IMAPS);
    unsafe {
        let e = mailsrv_srv_set_endpoint_get(d.set(IMAPS), 0);
        assert_eq!(text(mailsrv_endpoint_address_get(e, 0)), "::1");
        assert_eq!(mailsrv_endpoint_addresses_len(e), 1);
    }
}

#[test]
fn ds_trust_anchor_validates_too() {
    let cfg = testbed_config(0, 10_000);
    unsafe {
        mailsrv_config_set_trust_anchor_file(cfg, c(&env("MAILSRV_TEST_ANCHOR_DS")).as_ptr());
    }
    let ctx = ctx_from(cfg);
    let d = discover_with(ctx, "example.com", IMAPS, 0);
    unsafe {
        assert_eq!(mailsrv_srv_set_dnssec(d.set(IMAPS)), SECURE);
        mailsrv_ctx_free(ctx);
    }
}

#[test]
fn builtin_iana_anchors_make_the_private_root_bogus() {
    // Without the testbed's anchor the fake root cannot validate: bogus, never "insecure".
    let mut cfg = ptr::null_mut();
    unsafe {
        mailsrv_config_new(&mut cfg);
        mailsrv_config_set_nameserver(cfg, c(&env("MAILSRV_TEST_NS")).as_ptr());
    }
    let ctx = ctx_from(cfg);
    let d = discover_with(ctx, "example.com", IMAPS, 0);
    assert_eq!(d.state(IMAPS), BOGUS);
    unsafe { mailsrv_ctx_free(ctx) };
}

#[test]
fn dead_nameserver_times_out_within_the_deadline() {
    let mut cfg = testbed_config(0, 1500);
    unsafe {
        mailsrv_config_free(cfg);
        cfg = ptr::null_mut();
        mailsrv_config_new(&mut cfg);
        mailsrv_config_set_nameserver(cfg, c(&env("MAILSRV_TEST_DEAD_NS")).as_ptr());
        mailsrv_config_set_trust_anchor_file(cfg, c(&env("MAILSRV_TEST_ANCHOR")).as_ptr());
        mailsrv_config_set_timeout_ms(cfg, 1500);
    }
    let ctx = ctx_from(cfg);
    let t0 = Instant::now();
    let d = discover_with(ctx, "example.com", 0, 0);
    let took = t0.elapsed();
    assert!(took < Duration::from_millis(2500), "took {took:?}");
    for s in [IMAPS, IMAP, POP3S, POP3, SUBMISSIONS, SUBMISSION] {
        assert_eq!(
            d.state(s),
            LOOKUP_FAILED,
            "T-SRV-06: a timeout is never 'no record'"
        );
        unsafe { assert_eq!(mailsrv_srv_set_status(d.set(s)), mailsrv_status::Timeout) };
    }
    unsafe { mailsrv_ctx_free(ctx) };
}

#[test]
fn bad_input_fails_the_call_with_a_reason() {
    let ctx = testbed_ctx(0, 5_000);
    for bad in [
        "",
        "user@",
        "@example.com",
        "localhost",
        "a@b@",
        "user@exa mple.com",
    ] {
        let mut out = ptr::null_mut();
        let mut err = [0 as c_char; 128];
        let st = unsafe {
            mailsrv_srv_discover(
                ctx,
                c(bad).as_ptr(),
                0,
                0,
                &mut out,
                err.as_mut_ptr(),
                err.len(),
            )
        };
        assert_eq!(st, mailsrv_status::InvalidArg, "{bad:?}");
        assert!(out.is_null());
        assert!(!text(err.as_ptr()).is_empty());
    }
    // Non-UTF-8 bytes.
    let latin1 = b"user@b\xfccher.example\0";
    let mut out = ptr::null_mut();
    let st = unsafe {
        mailsrv_srv_discover(
            ctx,
            latin1.as_ptr().cast(),
            0,
            0,
            &mut out,
            ptr::null_mut(),
            0,
        )
    };
    assert_eq!(st, mailsrv_status::InvalidArg);
    // Over-long names (T-SNI-10 applies to domains as well).
    let long = format!("u@{}.example", "a".repeat(64));
    let st =
        unsafe { mailsrv_srv_discover(ctx, c(&long).as_ptr(), 0, 0, &mut out, ptr::null_mut(), 0) };
    assert_eq!(st, mailsrv_status::InvalidArg);
    // Unknown service bits and flags.
    let st = unsafe {
        mailsrv_srv_discover(
            ctx,
            c("example.com").as_ptr(),
            64,
            0,
            &mut out,
            ptr::null_mut(),
            0,
        )
    };
    assert_eq!(st, mailsrv_status::InvalidArg);
    let st = unsafe {
        mailsrv_srv_discover(
            ctx,
            c("example.com").as_ptr(),
            0,
            0x80,
            &mut out,
            ptr::null_mut(),
            0,
        )
    };
    assert_eq!(st, mailsrv_status::InvalidArg);
    // Argument errors caught before the core runs still leave a terminated reason.
    let mut filled = [b'x' as c_char; 64];
    let st = unsafe {
        mailsrv_srv_discover(
            ctx,
            ptr::null(),
            0,
            0,
            &mut out,
            filled.as_mut_ptr(),
            filled.len(),
        )
    };
    assert_eq!(st, mailsrv_status::NullArg);
    assert!(
        text(filled.as_ptr()).contains("NULL"),
        "{}",
        text(filled.as_ptr())
    );
    // Error buffer truncation: always NUL-terminated.
    let mut small = [b'x' as c_char; 6];
    let st = unsafe {
        mailsrv_srv_discover(
            ctx,
            c("").as_ptr(),
            0,
            0,
            &mut out,
            small.as_mut_ptr(),
            small.len(),
        )
    };
    assert_eq!(st, mailsrv_status::InvalidArg);
    assert_eq!(text(small.as_ptr()).len(), 5);
    unsafe { mailsrv_ctx_free(ctx) };
}
