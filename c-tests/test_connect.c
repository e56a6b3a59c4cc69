/* connect_with_sni and verify_srv_authenticity from C against the testbed's dovecot and
 * postfix: blocking, thread-mode async and loop-mode async. T-ids: docs/conformance.md groups H, J,
 * K, C and M. */
#define _POSIX_C_SOURCE 200809L
#include <poll.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "mailsrv.h"
#include "harness.h"

static mailsrv_ctx *make_ctx(uint32_t dispatch) {
    mailsrv_config *cfg = NULL;
    mailsrv_ctx *ctx = NULL;
    char err[256];
    mailsrv_config_new(&cfg);
    mailsrv_config_set_nameserver(cfg, testbed_env("MAILSRV_TEST_NS"));
    mailsrv_config_set_trust_anchor_file(cfg, testbed_env("MAILSRV_TEST_ANCHOR"));
    mailsrv_config_set_ca_file(cfg, testbed_env("MAILSRV_TEST_CA"));
    mailsrv_config_set_dispatch(cfg, dispatch);
    CHECK_EQ_INT(mailsrv_ctx_new(cfg, &ctx, err, sizeof err), MAILSRV_STATUS_OK);
    mailsrv_config_free(cfg);
    return ctx;
}

static uint16_t port(const char *var) { return (uint16_t)atoi(testbed_env(var)); }

static void test_every_security_mode(void) {
    mailsrv_ctx *ctx = make_ctx(MAILSRV_DISPATCH_THREAD);
    struct {
        const char *port_var;
        uint32_t security;
        const char *greeting_prefix;
        uint32_t service;
    } modes[] = {
        {"MAILSRV_TEST_IMAPS_PORT", MAILSRV_SECURITY_IMPLICIT_TLS, "* OK", MAILSRV_SERVICE_IMAPS},  /* T-STL-07 */
        {"MAILSRV_TEST_IMAP_PORT", MAILSRV_SECURITY_STARTTLS_IMAP, "* OK", MAILSRV_SERVICE_IMAP},   /* T-STL-01 */
        {"MAILSRV_TEST_POP3S_PORT", MAILSRV_SECURITY_IMPLICIT_TLS, "+OK", MAILSRV_SERVICE_POP3S},
        {"MAILSRV_TEST_POP3_PORT", MAILSRV_SECURITY_STARTTLS_POP3, "+OK", MAILSRV_SERVICE_POP3},    /* T-STL-09 */
        {"MAILSRV_TEST_SUBMISSIONS_PORT", MAILSRV_SECURITY_IMPLICIT_TLS, "220", MAILSRV_SERVICE_SUBMISSIONS}, /* T-STL-15 */
        {"MAILSRV_TEST_SUBMISSION_PORT", MAILSRV_SECURITY_STARTTLS_SMTP, "220", MAILSRV_SERVICE_SUBMISSION},  /* T-STL-11 */
    };
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        mailsrv_tls_stream *s = NULL;
        char err[256];
        mailsrv_status st = mailsrv_connect_with_sni(ctx, "mail.example.net", port(modes[i].port_var),
                                                     modes[i].security, NULL, NULL, 0, &s, err, sizeof err);
        if (st != MAILSRV_STATUS_OK) fprintf(stderr, "  %s: %s\n", modes[i].port_var, err);
        CHECK_EQ_INT(st, MAILSRV_STATUS_OK);
        if (!s) continue;
        /* the library's default for the service reaches the same server, checking its protocol */
        mailsrv_security dflt = MAILSRV_SECURITY_IMPLICIT_TLS;
        CHECK_EQ_INT(mailsrv_service_default_security(modes[i].service, &dflt), MAILSRV_STATUS_OK);
        CHECK(dflt == modes[i].security || (modes[i].security == MAILSRV_SECURITY_IMPLICIT_TLS &&
                                            dflt >= MAILSRV_SECURITY_IMPLICIT_TLS_IMAP));
        mailsrv_tls_stream *again = NULL;
        CHECK_EQ_INT(mailsrv_connect_with_sni(ctx, "mail.example.net", port(modes[i].port_var), dflt, NULL, NULL, 0,
                                              &again, err, sizeof err),
                     MAILSRV_STATUS_OK);
        mailsrv_tls_stream_free(again);
        CHECK_EQ_STR(mailsrv_tls_stream_tls_version(s), "TLSv1.3"); /* T-TLS-02 */
        CHECK_EQ_STR(mailsrv_tls_stream_sni(s), "mail.example.net");  /* T-SNI-01 */
        CHECK_EQ_STR(mailsrv_tls_stream_matched_identity(s), "DNS-ID mail.example.net");
        CHECK(strncmp(mailsrv_tls_stream_greeting(s), modes[i].greeting_prefix, strlen(modes[i].greeting_prefix)) == 0);
        CHECK(mailsrv_tls_stream_capabilities_len(s) > 0);
        CHECK(mailsrv_tls_stream_peer_chain_len(s) >= 1);
        const uint8_t *der = NULL;
        size_t len = 0;
        CHECK_EQ_INT(mailsrv_tls_stream_peer_cert_get(s, 0, &der, &len), MAILSRV_STATUS_OK);
        CHECK(der && len > 100 && der[0] == 0x30);
        CHECK(mailsrv_tls_stream_fd(s) >= 0);
        CHECK_EQ_INT(mailsrv_tls_stream_close(s), MAILSRV_STATUS_OK); /* T-TLS-07 */
        size_t n = 0;
        char buf[16];
        CHECK_EQ_INT(mailsrv_tls_stream_read(s, (uint8_t *)buf, sizeof buf, &n), MAILSRV_STATUS_CONNECTION_CLOSED);
        mailsrv_tls_stream_free(s);
    }
    mailsrv_ctx_free(ctx);
}

static void test_imap_session_over_the_stream(void) {
    mailsrv_ctx *ctx = make_ctx(MAILSRV_DISPATCH_THREAD);
    mailsrv_tls_stream *s = NULL;
    CHECK_EQ_INT(mailsrv_connect_with_sni(ctx, "mail.example.net", port("MAILSRV_TEST_IMAPS_PORT"),
                                          MAILSRV_SECURITY_IMPLICIT_TLS, NULL, NULL, 0, &s, NULL, 0),
                 MAILSRV_STATUS_OK);
    /* A stream outlives its context (docs/threads.md, "What outlives a context"). */
    mailsrv_ctx_free(ctx);
    const char *cmd = "a1 NOOP\r\n";
    size_t n = 0;
    CHECK_EQ_INT(mailsrv_tls_stream_write(s, (const uint8_t *)cmd, strlen(cmd), &n), MAILSRV_STATUS_OK);
    CHECK_EQ_INT(n, strlen(cmd));
    char buf[1024] = {0};
    CHECK_EQ_INT(mailsrv_tls_stream_read(s, (uint8_t *)buf, sizeof buf - 1, &n), MAILSRV_STATUS_OK);
    CHECK(strstr(buf, "a1 OK") != NULL);
    /* Non-blocking: nothing more to read now. */
    CHECK_EQ_INT(mailsrv_tls_stream_set_nonblocking(s, true), MAILSRV_STATUS_OK);
    CHECK_EQ_INT(mailsrv_tls_stream_read(s, (uint8_t *)buf, sizeof buf, &n), MAILSRV_STATUS_WOULD_BLOCK);
    mailsrv_tls_stream_free(s); /* closes with close_notify */
}

static void test_identity_and_sni_choices(void) {
    mailsrv_ctx *ctx = make_ctx(MAILSRV_DISPATCH_THREAD);
    mailsrv_identity *srv = NULL, *dns = NULL;
    mailsrv_identity_new(&srv);
    mailsrv_identity_add_srv_id(srv, "imaps", "example.com");
    mailsrv_identity_new(&dns);
    mailsrv_identity_add_dns_id(dns, "example.com");
    mailsrv_tls_stream *s = NULL;
    char err[256];
    uint16_t imaps = port("MAILSRV_TEST_IMAPS_PORT");
    /* T-SNI-06: SNI = the mail domain, TCP to the provider: the SRV-ID certificate. */
    CHECK_EQ_INT(mailsrv_connect_with_sni(ctx, "mail.example.net", imaps, MAILSRV_SECURITY_IMPLICIT_TLS,
                                          "example.com", srv, 0, &s, err, sizeof err),
                 MAILSRV_STATUS_OK);
    if (s) CHECK_EQ_STR(mailsrv_tls_stream_matched_identity(s), "SRV-ID _imaps.example.com");
    mailsrv_tls_stream_free(s);
    /* The same certificate does not prove the DNS-ID example.com (T-SRVID-13). */
    CHECK_EQ_INT(mailsrv_connect_with_sni(ctx, "mail.example.net", imaps, MAILSRV_SECURITY_IMPLICIT_TLS,
                                          "example.com", dns, 0, &s, err, sizeof err),
                 MAILSRV_STATUS_NAME_MISMATCH);
    CHECK(s == NULL);
    /* T-SNI-08: an SRV-ID is never a host name. */
    CHECK_EQ_INT(mailsrv_connect_with_sni(ctx, "mail.example.net", imaps, MAILSRV_SECURITY_IMPLICIT_TLS,
                                          "_imaps.example.com", NULL, 0, &s, NULL, 0),
                 MAILSRV_STATUS_INVALID_ARG);
    /* T-TLS-03: an expired certificate is a hard failure with its own status. */
    CHECK_EQ_INT(mailsrv_connect_with_sni(ctx, "127.0.20.1", imaps, MAILSRV_SECURITY_IMPLICIT_TLS, NULL, dns, 0, &s,
                                          err, sizeof err),
                 MAILSRV_STATUS_CERT_EXPIRED);
    CHECK_EQ_INT(mailsrv_connect_with_sni(ctx, "127.0.20.3", imaps, MAILSRV_SECURITY_IMPLICIT_TLS, NULL, dns, 0, &s,
                                          err, sizeof err),
                 MAILSRV_STATUS_UNKNOWN_ISSUER);
    mailsrv_identity_free(srv);
    mailsrv_identity_free(dns);
    mailsrv_ctx_free(ctx);
}

struct done {
    pthread_mutex_t mu;
    int calls;
    mailsrv_status status;
    uint32_t verdict;
};

static void on_stream(void *ud, mailsrv_request_id id, mailsrv_status status, mailsrv_tls_stream *s, const char *detail) {
    struct done *d = ud;
    (void)id;
    (void)detail;
    pthread_mutex_lock(&d->mu);
    d->calls++;
    d->status = status;
    pthread_mutex_unlock(&d->mu);
    mailsrv_tls_stream_free(s);
}

static void on_verdict(void *ud, mailsrv_request_id id, mailsrv_status status, mailsrv_authenticity *a,
                       const char *detail) {
    struct done *d = ud;
    (void)id;
    (void)detail;
    pthread_mutex_lock(&d->mu);
    d->calls++;
    d->status = status;
    d->verdict = a ? mailsrv_authenticity_verdict(a) : 0;
    pthread_mutex_unlock(&d->mu);
    mailsrv_authenticity_free(a);
}

static int calls(struct done *d) {
    pthread_mutex_lock(&d->mu);
    int n = d->calls;
    pthread_mutex_unlock(&d->mu);
    return n;
}

static void wait_loop(mailsrv_ctx *ctx, struct done *d, int want) {
    int fd = mailsrv_ctx_notify_fd(ctx);
    for (int i = 0; i < 200 && calls(d) < want; i++) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 50) == 1) mailsrv_ctx_dispatch(ctx, NULL);
    }
}

static void test_async_connect_and_verify_in_both_modes(void) {
    for (uint32_t mode = 0; mode <= 1; mode++) {
        mailsrv_ctx *ctx = make_ctx(mode);
        struct done d = {PTHREAD_MUTEX_INITIALIZER, 0, MAILSRV_STATUS_OK, 0};
        mailsrv_request_id id = 0;
        CHECK_EQ_INT(mailsrv_connect_with_sni_async(ctx, "mail.example.net", port("MAILSRV_TEST_SUBMISSION_PORT"),
                                                    MAILSRV_SECURITY_STARTTLS_SMTP, NULL, NULL, 0, on_stream, &d, &id),
                     MAILSRV_STATUS_OK);
        CHECK_EQ_INT(mailsrv_verify_srv_authenticity_async(ctx, "example.com", MAILSRV_SERVICE_IMAPS,
                                                           "mail.example.net", port("MAILSRV_TEST_IMAPS_PORT"), 0,
                                                           on_verdict, &d, &id),
                     MAILSRV_STATUS_OK);
        if (mode == MAILSRV_DISPATCH_LOOP) {
            wait_loop(ctx, &d, 2);
        } else {
            for (int i = 0; i < 400 && calls(&d) < 2; i++) {
                struct timespec ts = {0, 25000000};
                nanosleep(&ts, NULL);
            }
        }
        CHECK_EQ_INT(calls(&d), 2);
        CHECK_EQ_INT(d.status, MAILSRV_STATUS_OK);
        CHECK_EQ_INT(d.verdict, MAILSRV_VERDICT_AUTHENTIC); /* T-AUTH-01: DNSSEC */
        mailsrv_ctx_free(ctx);
    }
}

static void test_authenticity_verdicts(void) {
    mailsrv_ctx *ctx = make_ctx(MAILSRV_DISPATCH_THREAD);
    mailsrv_authenticity *a = NULL;
    uint16_t imaps = port("MAILSRV_TEST_IMAPS_PORT");
    CHECK_EQ_INT(mailsrv_verify_srv_authenticity(ctx, "insecure.test", MAILSRV_SERVICE_IMAPS, "mail.example.net", imaps,
                                                 0, &a, NULL, 0),
                 MAILSRV_STATUS_OK);
    CHECK_EQ_INT(mailsrv_authenticity_verdict(a), MAILSRV_VERDICT_UNVERIFIED); /* T-AUTH-09 */
    CHECK_EQ_INT(mailsrv_authenticity_probe_status(a), MAILSRV_STATUS_NAME_MISMATCH);
    CHECK(strlen(mailsrv_authenticity_detail(a)) > 0);
    mailsrv_authenticity_free(a);
    CHECK_EQ_INT(mailsrv_verify_srv_authenticity(ctx, "bogus.test", MAILSRV_SERVICE_IMAPS, "mail.example.net", imaps, 0,
                                                 &a, NULL, 0),
                 MAILSRV_STATUS_OK);
    CHECK_EQ_INT(mailsrv_authenticity_verdict(a), MAILSRV_VERDICT_REJECTED); /* T-AUTH-03 */
    mailsrv_authenticity_free(a);
    mailsrv_ctx_free(ctx);
}

static void test_change_check_and_history(void) {
    mailsrv_ctx *ctx = make_ctx(MAILSRV_DISPATCH_THREAD);
    char path[] = "/tmp/mailsrv-c-history-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    remove(path); /* a missing file is an empty history */
    mailsrv_history *h = NULL;
    CHECK_EQ_INT(mailsrv_history_open(path, &h, NULL, 0), MAILSRV_STATUS_OK);
    const uint64_t now = 1800000000u, day = 86400u;
    mailsrv_change *c = NULL;
    /* T-SEED-05: an unverified change waits, then the user may be asked. */
    CHECK_EQ_INT(mailsrv_srv_change_check(ctx, "insecure.test", MAILSRV_SERVICE_IMAPS, "old.example.net", 993,
                                          MAILSRV_ORIGIN_SRV, h, now, 0, 0, &c, NULL, 0),
                 MAILSRV_STATUS_OK);
    CHECK_EQ_INT(mailsrv_change_decision(c), MAILSRV_DECISION_WAIT);
    CHECK_EQ_INT(mailsrv_change_wait_until(c), now + 7 * day);
    mailsrv_change_free(c);
    CHECK_EQ_INT(mailsrv_history_save(h, NULL, 0), MAILSRV_STATUS_OK);
    CHECK_EQ_INT(mailsrv_srv_change_check(ctx, "insecure.test", MAILSRV_SERVICE_IMAPS, "old.example.net", 993,
                                          MAILSRV_ORIGIN_SRV, h, now + 8 * day, 0, 0, &c, NULL, 0),
                 MAILSRV_STATUS_OK);
    CHECK_EQ_INT(mailsrv_change_decision(c), MAILSRV_DECISION_ASK_USER);
    /* The origin to save once the user accepts, and the history's record of who named it. */
    CHECK_EQ_INT(mailsrv_change_origin(c), MAILSRV_ORIGIN_SRV);
    uint32_t source = 0;
    CHECK_EQ_INT(mailsrv_history_source(h, "insecure.test", MAILSRV_SERVICE_IMAPS, mailsrv_change_target(c),
                                        mailsrv_change_port(c), &source),
                 MAILSRV_STATUS_OK);
    CHECK_EQ_INT(source, MAILSRV_SOURCE_SRV);
    CHECK_EQ_INT(mailsrv_history_source(h, "insecure.test", MAILSRV_SERVICE_IMAPS, "old.example.net", 993, &source),
                 MAILSRV_STATUS_NOT_FOUND);
    CHECK_EQ_INT(source, 0);
    mailsrv_change_free(c);
    /* T-SEED-07: the signed domain's change is authenticated. */
    CHECK_EQ_INT(mailsrv_srv_change_check(ctx, "example.com", MAILSRV_SERVICE_IMAPS, "old.example.net", 993,
                                          MAILSRV_ORIGIN_SRV, NULL, now, 0, 0, &c, NULL, 0),
                 MAILSRV_STATUS_OK);
    CHECK_EQ_INT(mailsrv_change_decision(c), MAILSRV_DECISION_UPDATE);
    CHECK_EQ_STR(mailsrv_change_target(c), "mail.example.net");
    mailsrv_change_free(c);
    /* Typed by the user: never changed. */
    CHECK_EQ_INT(mailsrv_srv_change_check(ctx, "example.com", MAILSRV_SERVICE_IMAPS, "old.example.net", 993,
                                          MAILSRV_ORIGIN_USER, NULL, now, 0, 0, &c, NULL, 0),
                 MAILSRV_STATUS_OK);
    CHECK_EQ_INT(mailsrv_change_decision(c), MAILSRV_DECISION_NO_CHANGE);
    mailsrv_change_free(c);
    mailsrv_history_free(h);
    remove(path);
    mailsrv_ctx_free(ctx);
}

static void test_probe_verdicts_hosted_domains(void) {
    mailsrv_ctx *ctx = make_ctx(MAILSRV_DISPATCH_THREAD);
    mailsrv_authenticity *a = NULL;
    uint16_t imaps = port("MAILSRV_TEST_IMAPS_PORT");
    /* T-SEED-01 / T-AUTH-07 */
    CHECK_EQ_INT(mailsrv_verify_srv_authenticity(ctx, "hosted.test", MAILSRV_SERVICE_IMAPS, "mail.example.net", imaps,
                                                 0, &a, NULL, 0),
                 MAILSRV_STATUS_OK);
    CHECK_EQ_INT(mailsrv_authenticity_verdict(a), MAILSRV_VERDICT_AUTHENTIC);
    CHECK_EQ_INT(mailsrv_authenticity_evidence(a), MAILSRV_EVIDENCE_PROBE_SRV_ID);
    CHECK(mailsrv_authenticity_target_verified(a));
    CHECK_EQ_STR(mailsrv_authenticity_probe_matched(a), "SRV-ID _imaps.hosted.test");
    mailsrv_authenticity_free(a);
    /* T-DANE-02 */
    CHECK_EQ_INT(mailsrv_verify_srv_authenticity(ctx, "dane.example.com", MAILSRV_SERVICE_IMAPS, "dane.example.net",
                                                 imaps, 0, &a, NULL, 0),
                 MAILSRV_STATUS_OK);
    CHECK_EQ_INT(mailsrv_authenticity_evidence(a), MAILSRV_EVIDENCE_DANE);
    mailsrv_authenticity_free(a);
    mailsrv_ctx_free(ctx);
}

int main(void) {
    TEST(test_every_security_mode);
    TEST(test_imap_session_over_the_stream);
    TEST(test_identity_and_sni_choices);
    TEST(test_async_connect_and_verify_in_both_modes);
    TEST(test_authenticity_verdicts);
    TEST(test_change_check_and_history);
    TEST(test_probe_verdicts_hosted_domains);
    HARNESS_END();
}
