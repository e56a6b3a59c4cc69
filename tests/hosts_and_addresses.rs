//! Addresses like the system (issue 14 item 5), through the C entry points against the
//! testbed: the hosts file (a temp file set with mailsrv_config_set_hosts_file(), never the
//! real /etc/hosts) for SRV target addresses and for connections, with its DNSSEC state
//! reported as HOSTS_FILE and no DANE from it; mailsrv_connect() with caller-resolved
//! addresses to the testbed's dovecot, bad address strings and NULL arguments.

mod common;

use std::os::raw::{c_char, c_void};
use std::path::PathBuf;
use std::ptr;
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use mailsrv::ffi::authenticity::*;
use mailsrv::ffi::config::*;
use mailsrv::ffi::ctx::*;
use mailsrv::ffi::discovery::*;
use mailsrv::ffi::identity::*;
use mailsrv::ffi::request::mailsrv_request_id;
use mailsrv::ffi::status::mailsrv_status;
use mailsrv::ffi::stream::*;

const IMAPS: u32 = 1;
const SECURE: u32 = 1;
const HOSTS_FILE: u32 = 6;
const IMPLICIT_TLS: u32 = 1;
/// In the signed example.net zone, with no record at all (NXDOMAIN): a connection to it
/// can only have used the hosts file or the caller's addresses.
const NO_DNS_HOST: &str = "nodns-hosts-test.example.net";

/// A hosts file with `text`, unique per test, removed on drop.
struct Hosts(PathBuf);

impl Hosts {
    fn new(tag: &str, text: &str) -> Hosts {
        let p = std::env::temp_dir().join(format!("mailsrv-hosts-{}-{tag}", std::process::id()));
        std::fs::write(&p, text).unwrap();
        Hosts(p)
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn mail_addr() -> String {
    env("MAILSRV_TEST_MAIL_ADDR")
}

/// A testbed context (thread dispatch, test CA) with `hosts` as its hosts file (`None`: off).
fn ctx(hosts: Option<&Hosts>) -> *mut mailsrv_ctx {
    let cfg = testbed_config(0, 10_000);
    unsafe {
        assert_eq!(
            mailsrv_config_set_ca_file(cfg, c(&env("MAILSRV_TEST_CA")).as_ptr()),
            mailsrv_status::Ok
        );
        let path = hosts.map(|h| c(h.0.to_str().unwrap()));
        assert_eq!(
            mailsrv_config_set_hosts_file(cfg, path.as_ref().map_or(ptr::null(), |p| p.as_ptr())),
            mailsrv_status::Ok
        );
    }
    ctx_from(cfg)
}

/// (addresses, address DNSSEC state, SRV DNSSEC state) of the first IMAPS endpoint.
fn imaps_endpoint(ctx: *mut mailsrv_ctx, address: &str) -> (Vec<String>, u32, u32) {
    let mut d = ptr::null_mut();
    let mut err = [0 as c_char; 256];
    unsafe {
        let st = mailsrv_srv_discover(
            ctx,
            c(address).as_ptr(),
            IMAPS,
            0,
            &mut d,
            err.as_mut_ptr(),
            err.len(),
        );
        assert_eq!(st, mailsrv_status::Ok, "{}", text(err.as_ptr()));
        let s = mailsrv_discovery_find(d, IMAPS);
        let e = mailsrv_srv_set_endpoint_get(s, 0);
        assert!(!e.is_null(), "{address}: no endpoint");
        let addrs = (0..mailsrv_endpoint_addresses_len(e))
            .map(|i| text(mailsrv_endpoint_address_get(e, i)))
            .collect();
        let out = (
            addrs,
            mailsrv_endpoint_address_dnssec(e),
            mailsrv_endpoint_dnssec(e),
        );
        mailsrv_discovery_free(d);
        out
    }
}

#[test]
fn hosts_entry_gives_addresses_to_a_target_dns_has_none_for() {
    // noaddr.example.net has no A or AAAA (NODATA, signed).
    let off = ctx(None);
    let (addrs, _, _) = imaps_endpoint(off, "joe@noaddr.example.com");
    assert!(addrs.is_empty(), "{addrs:?}");
    unsafe { mailsrv_ctx_free(off) };

    let hosts = Hosts::new(
        "noaddr",
        &format!("# test\n{} NoAddr.Example.NET. alias\n", mail_addr()),
    );
    let ctx = ctx(Some(&hosts));
    let (addrs, addr_state, srv_state) = imaps_endpoint(ctx, "joe@noaddr.example.com");
    assert_eq!(addrs, vec![mail_addr()]);
    // Reported as coming from the hosts file: never secure, whatever the SRV answer is.
    assert_eq!(addr_state, HOSTS_FILE);
    assert_eq!(text(mailsrv_dnssec_name(addr_state)), "hosts_file");
    assert_eq!(
        srv_state, SECURE,
        "the SRV RRset keeps its own DNSSEC state"
    );
    unsafe { mailsrv_ctx_free(ctx) };
}

#[test]
fn hosts_entry_is_preferred_over_dns_and_never_secure() {
    // mail.example.net has DNSSEC-secure A and AAAA records.
    let off = ctx(None);
    let (dns_addrs, dns_state, _) = imaps_endpoint(off, "joe@example.com");
    assert_eq!(dns_state, SECURE);
    assert!(!dns_addrs.contains(&"127.0.0.77".to_string()));
    unsafe { mailsrv_ctx_free(off) };

    let hosts = Hosts::new("pref", "127.0.0.77 mail.example.net\n");
    let ctx = ctx(Some(&hosts));
    let (addrs, state, _) = imaps_endpoint(ctx, "joe@example.com");
    assert_eq!(addrs, vec!["127.0.0.77".to_string()], "files before dns");
    assert_eq!(state, HOSTS_FILE);
    // The file is re-read when it changes.
    std::fs::write(
        &hosts.0,
        "127.0.0.78 mail.example.net\n::1 mail.example.net\n",
    )
    .unwrap();
    let (addrs, _, _) = imaps_endpoint(ctx, "joe@example.com");
    assert_eq!(addrs, vec!["::1".to_string(), "127.0.0.78".to_string()]);
    unsafe { mailsrv_ctx_free(ctx) };
}

#[test]
fn dane_never_uses_hosts_file_addresses() {
    // dane.example.net's secure A record points at the DANE-EE server; the hosts entry
    // points at the ordinary server, whose certificate the TLSA record does not match. DANE
    // evidence proves the TLSA check ran on the DNSSEC-secure address only.
    let hosts = Hosts::new("dane", &format!("{} dane.example.net\n", mail_addr()));
    let ctx = ctx(Some(&hosts));
    let mut out = ptr::null_mut();
    let mut err = [0 as c_char; 512];
    unsafe {
        let st = mailsrv_verify_srv_authenticity(
            ctx,
            c("dane.example.com").as_ptr(),
            IMAPS,
            c("dane.example.net").as_ptr(),
            port("IMAPS"),
            0,
            &mut out,
            err.as_mut_ptr(),
            err.len(),
        );
        assert_eq!(st, mailsrv_status::Ok, "{}", text(err.as_ptr()));
        let detail = text(mailsrv_authenticity_detail(out));
        assert_eq!(
            mailsrv_authenticity_verdict(out),
            mailsrv_verdict::Authentic as u32,
            "{detail}"
        );
        assert_eq!(
            mailsrv_authenticity_evidence(out),
            mailsrv_evidence::Dane as u32,
            "{detail}"
        );
        mailsrv_authenticity_free(out);
        mailsrv_ctx_free(ctx);
    }
}

/// Connect options for NO_DNS_HOST on the testbed's IMAPS port, expecting the certificate
/// of mail.example.net (what the server shows for an unknown SNI).
fn opts_for(host: &str) -> *mut mailsrv_connect_opts {
    let mut opts = ptr::null_mut();
    let mut id = ptr::null_mut();
    unsafe {
        assert_eq!(
            mailsrv_connect_opts_new(c(host).as_ptr(), port("IMAPS"), IMPLICIT_TLS, &mut opts),
            mailsrv_status::Ok
        );
        assert_eq!(mailsrv_identity_new(&mut id), mailsrv_status::Ok);
        assert_eq!(
            mailsrv_identity_add_dns_id(id, c("mail.example.net").as_ptr()),
            mailsrv_status::Ok
        );
        assert_eq!(
            mailsrv_connect_opts_set_identity(opts, id),
            mailsrv_status::Ok
        );
        mailsrv_identity_free(id); // copied
    }
    opts
}

fn add(opts: *mut mailsrv_connect_opts, addr: &str) -> (mailsrv_status, String) {
    let mut err = [0 as c_char; 256];
    let st = unsafe {
        mailsrv_connect_opts_add_address(opts, c(addr).as_ptr(), err.as_mut_ptr(), err.len())
    };
    (st, text(err.as_ptr()))
}

/// mailsrv_connect(); on success the peer address and the greeting, the stream freed.
fn connect(
    ctx: *mut mailsrv_ctx,
    opts: *const mailsrv_connect_opts,
) -> Result<(String, String), (mailsrv_status, String)> {
    let mut s = ptr::null_mut();
    let mut err = [0 as c_char; 512];
    let st = unsafe { mailsrv_connect(ctx, opts, &mut s, err.as_mut_ptr(), err.len()) };
    if st != mailsrv_status::Ok {
        assert!(s.is_null());
        return Err((st, text(err.as_ptr())));
    }
    unsafe {
        let r = (
            text(mailsrv_tls_stream_peer_address(s)),
            text(mailsrv_tls_stream_greeting(s)),
        );
        mailsrv_tls_stream_free(s);
        Ok(r)
    }
}

#[test]
fn connect_with_explicit_addresses_to_a_name_without_dns() {
    let ctx = ctx(None);
    let opts = opts_for(NO_DNS_HOST);
    // Without addresses the name is resolved: it does not exist.
    let (st, why) = connect(ctx, opts).unwrap_err();
    assert_eq!(st, mailsrv_status::Nxdomain, "{why}");
    assert_eq!(add(opts, &mail_addr()), (mailsrv_status::Ok, String::new()));
    // Nothing listens on 127.0.0.99: the race falls through to the good address.
    assert_eq!(add(opts, "127.0.0.99").0, mailsrv_status::Ok);
    assert_eq!(
        add(opts, &mail_addr()).0,
        mailsrv_status::Ok,
        "repeat ignored"
    );
    let (peer, greeting) = connect(ctx, opts).expect("connects to the given address");
    assert!(peer.starts_with(&mail_addr()), "{peer}");
    assert!(greeting.starts_with("* OK"), "{greeting}");
    unsafe {
        mailsrv_connect_opts_free(opts);
        mailsrv_ctx_free(ctx);
    }
}

#[test]
fn caller_addresses_come_before_the_hosts_file_which_comes_before_dns() {
    let hosts = Hosts::new("connect", &format!("{} {NO_DNS_HOST}\n", mail_addr()));
    let ctx = ctx(Some(&hosts));
    let opts = opts_for(NO_DNS_HOST);
    let (peer, _) = connect(ctx, opts).expect("the hosts entry is used");
    assert!(peer.starts_with(&mail_addr()), "{peer}");
    // Given addresses replace the hosts file: nothing listens on 127.0.0.99.
    assert_eq!(add(opts, "127.0.0.99").0, mailsrv_status::Ok);
    let (st, why) = connect(ctx, opts).unwrap_err();
    assert_eq!(st, mailsrv_status::ConnectFailed, "{why}");
    assert!(why.contains("127.0.0.99"), "{why}");
    unsafe {
        mailsrv_connect_opts_free(opts);
        mailsrv_ctx_free(ctx);
    }
}

unsafe extern "C" fn on_connect(
    userdata: *mut c_void,
    _id: mailsrv_request_id,
    status: mailsrv_status,
    result: *mut mailsrv_tls_stream,
    detail: *const c_char,
) {
    let tx = unsafe { Box::from_raw(userdata as *mut mpsc::Sender<(mailsrv_status, String)>) };
    let peer = if result.is_null() {
        text(detail)
    } else {
        let p = text(unsafe { mailsrv_tls_stream_peer_address(result) });
        unsafe { mailsrv_tls_stream_free(result) };
        p
    };
    let _ = tx.send((status, peer));
}

#[test]
fn connect_async_with_explicit_addresses() {
    let ctx = ctx(None);
    let opts = opts_for(NO_DNS_HOST);
    assert_eq!(add(opts, &mail_addr()).0, mailsrv_status::Ok);
    let (tx, rx) = mpsc::channel::<(mailsrv_status, String)>();
    let mut id: mailsrv_request_id = 0;
    let st = unsafe {
        mailsrv_connect_async(
            ctx,
            opts,
            Some(on_connect),
            Box::into_raw(Box::new(tx)) as *mut c_void,
            &mut id,
        )
    };
    assert_eq!(st, mailsrv_status::Ok);
    unsafe { mailsrv_connect_opts_free(opts) }; // copied by the call
    let (st, peer) = rx.recv_timeout(Duration::from_secs(15)).unwrap();
    assert_eq!(st, mailsrv_status::Ok, "{peer}");
    assert!(peer.starts_with(&mail_addr()), "{peer}");
    assert_ne!(id, 0);
    unsafe { mailsrv_ctx_free(ctx) };
}

#[test]
fn bad_address_strings_are_invalid_arg_with_a_reason() {
    let opts = opts_for(NO_DNS_HOST);
    for bad in [
        "",
        "mail.example.net",
        "127.0.0.1:993",
        "[::1]:993",
        "fe80::1%eth0",
        "0.0.0.0",
        "::",
        "224.0.0.1",
        "255.255.255.255",
        "1.2.3",
        " 127.0.0.1",
    ] {
        let (st, why) = add(opts, bad);
        assert_eq!(st, mailsrv_status::InvalidArg, "{bad:?}");
        assert!(why.contains(&format!("{bad:?}")), "{bad:?}: {why}");
    }
    for good in ["192.0.2.1", "2001:db8::1", "[2001:db8::2]"] {
        assert_eq!(
            add(opts, good),
            (mailsrv_status::Ok, String::new()),
            "{good}"
        );
    }
    for i in 3..32 {
        assert_eq!(add(opts, &format!("192.0.2.{i}")).0, mailsrv_status::Ok);
    }
    let (st, why) = add(opts, "192.0.2.200");
    assert_eq!(st, mailsrv_status::InvalidArg);
    assert!(why.contains("more than 32"), "{why}");
    unsafe { mailsrv_connect_opts_free(opts) };
}

#[test]
fn null_and_invalid_arguments() {
    unsafe {
        let mut opts = std::ptr::dangling_mut::<mailsrv_connect_opts>();
        assert_eq!(
            mailsrv_connect_opts_new(ptr::null(), 993, IMPLICIT_TLS, &mut opts),
            mailsrv_status::NullArg
        );
        assert!(opts.is_null(), "out is NULL on failure");
        assert_eq!(
            mailsrv_connect_opts_new(c("h.example").as_ptr(), 993, IMPLICIT_TLS, ptr::null_mut()),
            mailsrv_status::NullArg
        );
        assert_eq!(
            mailsrv_connect_opts_new(c("h.example").as_ptr(), 0, IMPLICIT_TLS, &mut opts),
            mailsrv_status::InvalidArg
        );
        assert_eq!(
            mailsrv_connect_opts_new(c("h.example").as_ptr(), 993, 99, &mut opts),
            mailsrv_status::InvalidArg
        );
        let bad_utf8 = [0xffu8 as c_char, 0];
        assert_eq!(
            mailsrv_connect_opts_new(bad_utf8.as_ptr(), 993, IMPLICIT_TLS, &mut opts),
            mailsrv_status::InvalidArg
        );
        assert_eq!(
            mailsrv_connect_opts_new(c("h.example").as_ptr(), 993, IMPLICIT_TLS, &mut opts),
            mailsrv_status::Ok
        );
        assert_eq!(
            mailsrv_connect_opts_add_address(
                ptr::null_mut(),
                c("::1").as_ptr(),
                ptr::null_mut(),
                0
            ),
            mailsrv_status::NullArg
        );
        assert_eq!(
            mailsrv_connect_opts_add_address(opts, ptr::null(), ptr::null_mut(), 0),
            mailsrv_status::NullArg
        );
        assert_eq!(
            mailsrv_connect_opts_set_sni(ptr::null_mut(), ptr::null()),
            mailsrv_status::NullArg
        );
        assert_eq!(
            mailsrv_connect_opts_set_sni(opts, ptr::null()),
            mailsrv_status::Ok
        );
        assert_eq!(
            mailsrv_connect_opts_set_identity(ptr::null_mut(), ptr::null()),
            mailsrv_status::NullArg
        );
        assert_eq!(
            mailsrv_connect_opts_set_identity(opts, ptr::null()),
            mailsrv_status::Ok
        );
        assert_eq!(
            mailsrv_connect_opts_set_flags(ptr::null_mut(), 0),
            mailsrv_status::NullArg
        );
        assert_eq!(
            mailsrv_connect_opts_set_flags(opts, 1 << 30),
            mailsrv_status::InvalidArg
        );
        let ctx = ctx(None);
        let mut s = ptr::null_mut();
        let mut err = [0 as c_char; 128];
        assert_eq!(
            mailsrv_connect(ptr::null_mut(), opts, &mut s, err.as_mut_ptr(), err.len()),
            mailsrv_status::NullArg
        );
        assert_eq!(
            mailsrv_connect(ctx, ptr::null(), &mut s, err.as_mut_ptr(), err.len()),
            mailsrv_status::NullArg
        );
        assert_eq!(
            mailsrv_connect(ctx, opts, ptr::null_mut(), err.as_mut_ptr(), err.len()),
            mailsrv_status::NullArg
        );
        assert_eq!(
            mailsrv_connect_async(ctx, opts, None, ptr::null_mut(), ptr::null_mut()),
            mailsrv_status::NullArg
        );
        assert_eq!(
            mailsrv_connect_async(ctx, ptr::null(), None, ptr::null_mut(), ptr::null_mut()),
            mailsrv_status::NullArg
        );
        // A bad SNI is found by the core before any traffic.
        assert_eq!(
            mailsrv_connect_opts_set_sni(opts, c("bad name!").as_ptr()),
            mailsrv_status::Ok
        );
        assert_eq!(
            mailsrv_connect(ctx, opts, &mut s, err.as_mut_ptr(), err.len()),
            mailsrv_status::InvalidArg
        );
        assert!(s.is_null());
        assert!(!text(err.as_ptr()).is_empty());
        mailsrv_connect_opts_free(opts);
        mailsrv_connect_opts_free(ptr::null_mut());
        assert_eq!(
            mailsrv_config_set_hosts_file(ptr::null_mut(), ptr::null()),
            mailsrv_status::NullArg
        );
        mailsrv_ctx_free(ctx);
    }
}
