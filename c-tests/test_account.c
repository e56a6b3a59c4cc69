/* Account discovery beyond SRV (issues 16 and 17, docs/account-discovery.md) from C, against
 * the testbed's nginx (testbed/web.sh), knotd and dovecot: a domain found only through provider
 * autoconfig (ac.test), one only through the ISPDB (ispdbonly.ac.test), one only through a
 * DNSSEC-signed MX into a provider (mxs.example.com -> example.net), one only through PACC
 * with a DNSSEC-signed digest (pacc.example.com), one only through Exchange Autodiscover
 * (adisc.ac.test), one only by guessing (guess.ac.test). Each checks the verdict, the evidence
 * and the binding of the preferred candidates, then logs in with the binding. A PACC document
 * its signed digest does not match is rejected; Autodiscover credentials come only from the
 * callback. Blocking, async in both dispatch modes, and one cancel ending in exactly one
 * CANCELLED. */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
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
    CHECK_EQ_INT(mailsrv_config_set_ispdb_url(cfg, testbed_env("MAILSRV_TEST_ISPDB")), MAILSRV_STATUS_OK);
    /* generous deadlines: under valgrind one TLS fetch can take seconds */
    CHECK_EQ_INT(mailsrv_config_set_timeout_ms(cfg, 60000), MAILSRV_STATUS_OK);
    CHECK_EQ_INT(mailsrv_config_set_fetch_timeouts_ms(cfg, 30000, 30000), MAILSRV_STATUS_OK);
    /* PACC and guessing name hosts only: the testbed's mail servers use other ports */
    static const struct { uint32_t service; const char *var; } ports[] = {
        {MAILSRV_SERVICE_IMAPS, "MAILSRV_TEST_IMAPS_PORT"}, {MAILSRV_SERVICE_IMAP, "MAILSRV_TEST_IMAP_PORT"},
        {MAILSRV_SERVICE_POP3S, "MAILSRV_TEST_POP3S_PORT"}, {MAILSRV_SERVICE_POP3, "MAILSRV_TEST_POP3_PORT"},
        {MAILSRV_SERVICE_SUBMISSIONS, "MAILSRV_TEST_SUBMISSIONS_PORT"},
        {MAILSRV_SERVICE_SUBMISSION, "MAILSRV_TEST_SUBMISSION_PORT"},
    };
    for (size_t i = 0; i < sizeof ports / sizeof ports[0]; i++)
        CHECK_EQ_INT(mailsrv_config_set_service_port(cfg, ports[i].service, (uint16_t)atoi(testbed_env(ports[i].var))),
                     MAILSRV_STATUS_OK);
    mailsrv_config_set_dispatch(cfg, dispatch);
    CHECK_EQ_INT(mailsrv_ctx_new(cfg, &ctx, err, sizeof err), MAILSRV_STATUS_OK);
    mailsrv_config_free(cfg);
    return ctx;
}

/* Sends LOGIN (dovecot accepts any user with the testbed's password) and reads the tagged
 * reply; 1 when it is OK. */
static int login(mailsrv_tls_stream *s, const char *user) {
    char cmd[128], buf[2048];
    snprintf(cmd, sizeof cmd, "a1 LOGIN %s test\r\n", user);
    size_t n = 0, got = 0;
    if (mailsrv_tls_stream_write(s, (const uint8_t *)cmd, strlen(cmd), &n) != MAILSRV_STATUS_OK) return 0;
    while (got < sizeof buf - 1) {
        if (mailsrv_tls_stream_read(s, (uint8_t *)buf + got, sizeof buf - 1 - got, &n) != MAILSRV_STATUS_OK || n == 0)
            return 0;
        got += n;
        buf[got] = 0;
        if (strstr(buf, "a1 ")) return strstr(buf, "a1 OK") != NULL;
    }
    return 0;
}

/* What one domain must give. */
struct expect {
    const char *address;
    uint32_t source;     /* the mailsrv_source taken */
    uint32_t evidence;   /* of the preferred candidates */
    const char *host;    /* the preferred candidates' host, the binding's host and SNI */
    uint32_t sources;    /* the mask asked (0: the defaults) */
    const char *submission_host; /* when it differs from host */
};

static const struct expect AUTOCONFIG = {"joe@ac.test", MAILSRV_SOURCE_AUTOCONFIG, MAILSRV_EVIDENCE_HTTPS_DOMAIN,
                                         "mail.example.net", 0, NULL};
static const struct expect ISPDB = {"joe@ispdbonly.ac.test", MAILSRV_SOURCE_ISPDB, MAILSRV_EVIDENCE_ISPDB,
                                    "mail.example.net", 0, NULL};
static const struct expect MX = {"joe@mxs.example.com", MAILSRV_SOURCE_MX_AUTOCONFIG, MAILSRV_EVIDENCE_DNSSEC,
                                 "mail.example.net", 0, NULL};
static const struct expect PACC = {"joe@pacc.example.com", MAILSRV_SOURCE_PACC, MAILSRV_EVIDENCE_PACC_DNSSEC,
                                   "mail.example.net", 0, NULL};
static const struct expect AUTODISCOVER = {"joe@adisc.ac.test", MAILSRV_SOURCE_AUTODISCOVER,
                                           MAILSRV_EVIDENCE_HTTPS_DOMAIN, "mail.example.net", 0, NULL};
static const struct expect GUESS = {"joe@guess.ac.test", MAILSRV_SOURCE_GUESS, MAILSRV_EVIDENCE_PROBE_DNS_ID,
                                    "imap.guess.ac.test", MAILSRV_SOURCES_DEFAULT | MAILSRV_SOURCE_GUESS,
                                    "smtp.guess.ac.test"};

/* Checks `a` against `x`: the source, the preferred access and submission candidates (verdict,
 * evidence, binding), then connects with the access binding and logs in. */
static void check_account(mailsrv_ctx *ctx, const mailsrv_account *a, const struct expect *x, const char *tag) {
    CHECK(a != NULL);
    if (!a) return;
    CHECK_EQ_INT(mailsrv_account_source(a), x->source);
    if (mailsrv_account_source(a) != x->source)
        fprintf(stderr, "  %s: source %u: status %d, %s\n", x->address, (unsigned)x->source,
                (int)mailsrv_account_source_status(a, x->source), mailsrv_account_source_detail(a, x->source));
    CHECK_EQ_INT(mailsrv_account_source_state(a, x->source), MAILSRV_SOURCE_STATE_FOUND);
    CHECK(mailsrv_account_candidates_len(a) > 0);
    for (uint32_t purpose = MAILSRV_PURPOSE_ACCESS; purpose <= MAILSRV_PURPOSE_SUBMISSION; purpose++) {
        size_t i = (size_t)-1;
        const mailsrv_candidate *c = mailsrv_account_preferred(a, purpose, &i);
        CHECK(c != NULL);
        if (!c) continue;
        CHECK(c == mailsrv_account_candidate_get(a, i));
        const char *host = purpose == MAILSRV_PURPOSE_SUBMISSION && x->submission_host ? x->submission_host : x->host;
        CHECK_EQ_INT(mailsrv_candidate_source(c), x->source);
        CHECK_EQ_STR(mailsrv_candidate_host(c), host);
        CHECK(mailsrv_candidate_service(c) != 0);
        CHECK_EQ_STR(mailsrv_candidate_protocol(c), purpose == MAILSRV_PURPOSE_ACCESS ? "imap" : "smtp");
        const mailsrv_authenticity *v = mailsrv_candidate_verdict(c);
        CHECK(v != NULL);
        if (!v) {
            fprintf(stderr, "  %s: verdict status %d\n", x->address, (int)mailsrv_candidate_verdict_status(c));
            continue;
        }
        CHECK_EQ_INT(mailsrv_authenticity_verdict(v), MAILSRV_VERDICT_AUTHENTIC);
        CHECK_EQ_INT(mailsrv_authenticity_evidence(v), x->evidence);
        const mailsrv_binding *b = mailsrv_authenticity_binding(v);
        CHECK(b != NULL);
        if (!b) continue;
        /* the host's own name, as for a signed SRV target */
        CHECK_EQ_STR(mailsrv_binding_host(b), host);
        CHECK_EQ_STR(mailsrv_binding_sni(b), host);
        CHECK_EQ_INT(mailsrv_binding_port(b), mailsrv_candidate_port(c));
        if (mailsrv_candidate_service(c) == MAILSRV_SERVICE_IMAPS)
            CHECK_EQ_INT(mailsrv_binding_security(b), MAILSRV_SECURITY_IMPLICIT_TLS_IMAP);
        if (purpose != MAILSRV_PURPOSE_ACCESS) continue;
        /* stored as text with the account, read back, connected with */
        mailsrv_binding *stored = NULL;
        char err[256];
        CHECK_EQ_INT(mailsrv_binding_from_text(mailsrv_binding_text(b), &stored, err, sizeof err), MAILSRV_STATUS_OK);
        mailsrv_tls_stream *s = NULL;
        CHECK_EQ_INT(mailsrv_connect_with_binding(ctx, stored, 0, &s, err, sizeof err), MAILSRV_STATUS_OK);
        if (s) {
            CHECK(strstr(mailsrv_tls_stream_greeting(s), "Dovecot") != NULL);
            CHECK_EQ_STR(mailsrv_tls_stream_sni(s), x->host);
            char user[96];
            snprintf(user, sizeof user, "c-account-%s-%ld", tag, (long)getpid());
            CHECK(login(s, user));
            mailsrv_tls_stream_free(s);
        } else {
            fprintf(stderr, "  %s: connect: %s\n", x->address, err);
        }
        mailsrv_binding_free(stored);
    }
}

static void discover_blocking(const struct expect *x, const char *tag) {
    mailsrv_ctx *ctx = make_ctx(MAILSRV_DISPATCH_THREAD);
    mailsrv_account *a = NULL;
    char err[256];
    CHECK_EQ_INT(mailsrv_account_discover(ctx, x->address, x->sources, 0, &a, err, sizeof err), MAILSRV_STATUS_OK);
    CHECK_EQ_STR(mailsrv_account_address(a), x->address);
    check_account(ctx, a, x, tag);
    mailsrv_account_free(a);
    mailsrv_ctx_free(ctx);
}

static void test_autoconfig_only_blocking(void) {
    discover_blocking(&AUTOCONFIG, "ac");
}

static void test_ispdb_only_blocking(void) {
    discover_blocking(&ISPDB, "ispdb");
}

static void test_signed_mx_only_blocking(void) {
    discover_blocking(&MX, "mx");
}

static void test_pacc_only_blocking(void) {
    discover_blocking(&PACC, "pacc");
    /* the JMAP, CalDAV, CardDAV URLs and the oauth-public issuer pass through */
    mailsrv_ctx *ctx = make_ctx(MAILSRV_DISPATCH_THREAD);
    mailsrv_account *a = NULL;
    char err[256];
    CHECK_EQ_INT(mailsrv_account_discover(ctx, PACC.address, MAILSRV_SOURCE_PACC, 0, &a, err, sizeof err),
                 MAILSRV_STATUS_OK);
    CHECK_EQ_STR(mailsrv_account_web_url(a, MAILSRV_WEB_SERVICE_JMAP), "https://jmap.example.net/session");
    CHECK_EQ_STR(mailsrv_account_web_url(a, MAILSRV_WEB_SERVICE_CARDDAV), "https://dav.example.net/contacts/");
    CHECK_EQ_STR(mailsrv_account_web_url(a, MAILSRV_WEB_SERVICE_OAUTH_PUBLIC_ISSUER), "https://auth.example.net");
    CHECK(mailsrv_account_web_url(a, 0) == NULL);
    mailsrv_account_free(a);
    mailsrv_ctx_free(ctx);
}

static void test_pacc_mismatching_a_signed_digest_is_rejected(void) {
    mailsrv_ctx *ctx = make_ctx(MAILSRV_DISPATCH_THREAD);
    mailsrv_account *a = NULL;
    char err[256];
    CHECK_EQ_INT(mailsrv_account_discover(ctx, "joe@paccbad.example.com", 0, 0, &a, err, sizeof err),
                 MAILSRV_STATUS_OK);
    CHECK_EQ_INT(mailsrv_account_source(a), 0);
    CHECK_EQ_INT(mailsrv_account_candidates_len(a), 0);
    CHECK_EQ_INT(mailsrv_account_source_state(a, MAILSRV_SOURCE_PACC), MAILSRV_SOURCE_STATE_FAILED);
    CHECK_EQ_INT(mailsrv_account_source_status(a, MAILSRV_SOURCE_PACC), MAILSRV_STATUS_DIGEST_MISMATCH);
    CHECK(strstr(mailsrv_account_source_detail(a, MAILSRV_SOURCE_PACC), "rejected") != NULL);
    CHECK(strstr(mailsrv_status_str(MAILSRV_STATUS_DIGEST_MISMATCH), "digest") != NULL);
    mailsrv_account_free(a);
    mailsrv_ctx_free(ctx);
}

static void test_autodiscover_only_blocking(void) {
    discover_blocking(&AUTODISCOVER, "ad");
}

static void test_guessing_only_blocking(void) {
    discover_blocking(&GUESS, "guess");
}

/* The Autodiscover callback: counts its calls, follows nothing, gives joe / secret. */
struct asked {
    pthread_mutex_t mu;
    int follow, credentials;
    char url[256];
};

static bool on_autodiscover(void *ud, uint32_t ask, const char *url, const char *address, const char *why,
                            mailsrv_credentials *creds) {
    struct asked *k = ud;
    (void)address;
    (void)why;
    pthread_mutex_lock(&k->mu);
    snprintf(k->url, sizeof k->url, "%s", url);
    if (ask == MAILSRV_AUTODISCOVER_ASK_FOLLOW) k->follow++;
    if (ask == MAILSRV_AUTODISCOVER_ASK_CREDENTIALS) k->credentials++;
    pthread_mutex_unlock(&k->mu);
    if (ask != MAILSRV_AUTODISCOVER_ASK_CREDENTIALS || !creds) return false;
    return mailsrv_credentials_set(creds, "joe", "secret") == MAILSRV_STATUS_OK;
}

static void test_autodiscover_credentials_come_from_the_callback(void) {
    char err[256];
    mailsrv_account *a = NULL;
    /* without the callback: no credentials, the 401 is the report */
    mailsrv_ctx *ctx = make_ctx(MAILSRV_DISPATCH_THREAD);
    CHECK_EQ_INT(mailsrv_account_discover(ctx, "joe@adauth.ac.test", MAILSRV_SOURCE_AUTODISCOVER, 0, &a, err,
                                          sizeof err),
                 MAILSRV_STATUS_OK);
    CHECK_EQ_INT(mailsrv_account_source(a), 0);
    CHECK_EQ_INT(mailsrv_account_source_status(a, MAILSRV_SOURCE_AUTODISCOVER), MAILSRV_STATUS_HTTP);
    mailsrv_account_free(a);
    /* a foreign SRV target: reported, not followed */
    CHECK_EQ_INT(mailsrv_account_discover(ctx, "joe@adsrvu.ac.test", MAILSRV_SOURCE_AUTODISCOVER, 0, &a, err,
                                          sizeof err),
                 MAILSRV_STATUS_OK);
    CHECK_EQ_STR(mailsrv_account_source_unfollowed(a, MAILSRV_SOURCE_AUTODISCOVER, 0),
                 "https://autodiscover.adprov.example.net/autodiscover/autodiscover.xml");
    CHECK(mailsrv_account_source_unfollowed(a, MAILSRV_SOURCE_AUTODISCOVER, 1) == NULL);
    mailsrv_account_free(a);
    mailsrv_ctx_free(ctx);
    /* with it: asked once for credentials, then the answer */
    struct asked k = {PTHREAD_MUTEX_INITIALIZER, 0, 0, ""};
    mailsrv_config *cfg = NULL;
    mailsrv_config_new(&cfg);
    mailsrv_config_set_nameserver(cfg, testbed_env("MAILSRV_TEST_NS"));
    mailsrv_config_set_trust_anchor_file(cfg, testbed_env("MAILSRV_TEST_ANCHOR"));
    mailsrv_config_set_ca_file(cfg, testbed_env("MAILSRV_TEST_CA"));
    CHECK_EQ_INT(mailsrv_config_set_timeout_ms(cfg, 60000), MAILSRV_STATUS_OK);
    CHECK_EQ_INT(mailsrv_config_set_fetch_timeouts_ms(cfg, 30000, 30000), MAILSRV_STATUS_OK);
    CHECK_EQ_INT(mailsrv_config_set_autodiscover_cb(cfg, on_autodiscover, &k), MAILSRV_STATUS_OK);
    CHECK_EQ_INT(mailsrv_ctx_new(cfg, &ctx, err, sizeof err), MAILSRV_STATUS_OK);
    mailsrv_config_free(cfg);
    CHECK_EQ_INT(mailsrv_account_discover(ctx, "joe@adauth.ac.test", MAILSRV_SOURCE_AUTODISCOVER, 0, &a, err,
                                          sizeof err),
                 MAILSRV_STATUS_OK);
    CHECK_EQ_INT(mailsrv_account_source(a), MAILSRV_SOURCE_AUTODISCOVER);
    CHECK_EQ_INT(k.credentials, 1);
    CHECK_EQ_STR(k.url, "https://autodiscover.adauth.ac.test/autodiscover/autodiscover.xml");
    mailsrv_account_free(a);
    /* the callback declines to follow: asked once, still not followed */
    CHECK_EQ_INT(mailsrv_account_discover(ctx, "joe@adsrvu.ac.test", MAILSRV_SOURCE_AUTODISCOVER, 0, &a, err,
                                          sizeof err),
                 MAILSRV_STATUS_OK);
    CHECK_EQ_INT(mailsrv_account_source(a), 0);
    CHECK_EQ_INT(k.follow, 1);
    mailsrv_account_free(a);
    mailsrv_ctx_free(ctx);
}

struct done {
    pthread_mutex_t mu;
    int calls;
    mailsrv_status status;
    mailsrv_account *account;
};

static void on_account(void *ud, mailsrv_request_id id, mailsrv_status status, mailsrv_account *a,
                       const char *detail) {
    struct done *d = ud;
    (void)id;
    CHECK(detail != NULL);
    pthread_mutex_lock(&d->mu);
    d->calls++;
    d->status = status;
    if (d->account) mailsrv_account_free(d->account); /* a second call is a failure, not a leak */
    d->account = a;
    pthread_mutex_unlock(&d->mu);
}

static int calls(struct done *d) {
    pthread_mutex_lock(&d->mu);
    int n = d->calls;
    pthread_mutex_unlock(&d->mu);
    return n;
}

/* Runs the context for about `ms` or until `d` has `want` calls (loop mode dispatches here). */
static void run_until(mailsrv_ctx *ctx, uint32_t mode, struct done *d, int want, long ms) {
    for (long t = 0; t < ms && calls(d) < want; t += 25) {
        if (mode == MAILSRV_DISPATCH_LOOP) {
            struct pollfd p = {mailsrv_ctx_notify_fd(ctx), POLLIN, 0};
            if (poll(&p, 1, 25) == 1) mailsrv_ctx_dispatch(ctx, NULL);
        } else {
            struct timespec ts = {0, 25000000};
            nanosleep(&ts, NULL);
        }
    }
}

static void test_async_both_modes(void) {
    const struct expect *all[] = {&AUTOCONFIG, &ISPDB, &MX};
    for (uint32_t mode = 0; mode <= 1; mode++) {
        mailsrv_ctx *ctx = make_ctx(mode);
        for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) {
            struct done d = {PTHREAD_MUTEX_INITIALIZER, 0, MAILSRV_STATUS_OK, NULL};
            mailsrv_request_id id = 0;
            CHECK_EQ_INT(mailsrv_account_discover_async(ctx, all[k]->address, 0, 0, on_account, &d, &id),
                         MAILSRV_STATUS_OK);
            CHECK(id != 0);
            run_until(ctx, mode, &d, 1, 60000);
            CHECK_EQ_INT(calls(&d), 1);
            CHECK_EQ_INT(d.status, MAILSRV_STATUS_OK);
            char tag[32];
            snprintf(tag, sizeof tag, "async%u-%zu", mode, k);
            check_account(ctx, d.account, all[k], tag);
            mailsrv_account_free(d.account);
        }
        mailsrv_ctx_free(ctx);
    }
}

/* A TCP listener on the testbed's slow address, port 443, that never accepts: the TLS
 * handshake of autoconfig.slow.ac.test hangs there, so the request is surely still running
 * when it is cancelled. -1 when it cannot listen. */
static int hang_listener(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(443);
    if (inet_pton(AF_INET, testbed_env("MAILSRV_TEST_WEB_SLOW_ADDR"), &sa.sin_addr) != 1 ||
        bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 16) != 0) {
        perror("  hang listener");
        close(fd);
        return -1;
    }
    return fd;
}

static void test_cancel_gives_exactly_one_cancelled(void) {
    int l = hang_listener();
    CHECK(l >= 0);
    if (l < 0) return;
    for (uint32_t mode = 0; mode <= 1; mode++) {
        mailsrv_ctx *ctx = make_ctx(mode);
        struct done d = {PTHREAD_MUTEX_INITIALIZER, 0, MAILSRV_STATUS_OK, NULL};
        mailsrv_request_id id = 0;
        CHECK_EQ_INT(mailsrv_account_discover_async(ctx, "joe@slow.ac.test", 0, 0, on_account, &d, &id),
                     MAILSRV_STATUS_OK);
        struct timespec ts = {0, 100000000};
        nanosleep(&ts, NULL); /* under way: the provider URL hangs */
        CHECK_EQ_INT(mailsrv_cancel(ctx, id), MAILSRV_STATUS_OK);
        run_until(ctx, mode, &d, 1, 5000);
        /* ...and nothing after it */
        run_until(ctx, mode, &d, 2, 500);
        CHECK_EQ_INT(calls(&d), 1);
        CHECK_EQ_INT(d.status, MAILSRV_STATUS_CANCELLED);
        CHECK(d.account == NULL);
        CHECK_EQ_INT(mailsrv_cancel(ctx, id), MAILSRV_STATUS_NOT_FOUND);
        mailsrv_account_free(d.account);
        mailsrv_ctx_free(ctx);
    }
    close(l);
}

int main(void) {
    TEST(test_autoconfig_only_blocking);
    TEST(test_ispdb_only_blocking);
    TEST(test_signed_mx_only_blocking);
    TEST(test_pacc_only_blocking);
    TEST(test_pacc_mismatching_a_signed_digest_is_rejected);
    TEST(test_autodiscover_only_blocking);
    TEST(test_guessing_only_blocking);
    TEST(test_autodiscover_credentials_come_from_the_callback);
    TEST(test_async_both_modes);
    TEST(test_cancel_gives_exactly_one_cancelled);
    HARNESS_END();
}
