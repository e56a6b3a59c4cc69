/* The binding from C (docs/SECURITY.md, "SNI relay"): the documented flow -- discover,
 * verify, store the binding, connect with it, LOGIN -- against the testbed's SNI relay
 * (testbed/sni-relay.py at relay.example.net, named by the forgeable unsigned SRV record of
 * relayed.hosted.test). The relay logs every command it receives; it must never see ours.
 * Blocking, thread-mode async and loop-mode async. */
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

static void pause_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* True when the relay's command log contains `needle`. */
static int relay_saw(const char *needle) {
    FILE *f = fopen(testbed_env("MAILSRV_TEST_RELAY_LOG"), "r");
    if (!f) return 0;
    char line[512];
    int found = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, needle)) found = 1;
    fclose(f);
    return found;
}

/* Sends LOGIN with `user` and the testbed's password (dovecot accepts any user with it:
 * failed logins would earn an auth penalty) and reads the tagged reply; 1 when it is OK. */
static int login(mailsrv_tls_stream *s, const char *user) {
    char cmd[128], buf[2048];
    snprintf(cmd, sizeof cmd, "b1 LOGIN %s test\r\n", user);
    size_t n = 0, got = 0;
    if (mailsrv_tls_stream_write(s, (const uint8_t *)cmd, strlen(cmd), &n) != MAILSRV_STATUS_OK) return 0;
    while (got < sizeof buf - 1) {
        if (mailsrv_tls_stream_read(s, (uint8_t *)buf + got, sizeof buf - 1 - got, &n) != MAILSRV_STATUS_OK || n == 0)
            return 0;
        got += n;
        buf[got] = 0;
        if (strstr(buf, "b1 ")) return strstr(buf, "b1 OK") != NULL;
    }
    return 0;
}

/* discover + verify the preferred access service of relayed.hosted.test. */
static mailsrv_authenticity *verify_relayed(mailsrv_ctx *ctx) {
    mailsrv_discovery *d = NULL;
    mailsrv_authenticity *a = NULL;
    char err[256];
    CHECK_EQ_INT(mailsrv_srv_discover(ctx, "joe@relayed.hosted.test", 0, 0, &d, err, sizeof err), MAILSRV_STATUS_OK);
    const mailsrv_srv_set *set = d ? mailsrv_discovery_preferred(d, MAILSRV_PURPOSE_ACCESS) : NULL;
    CHECK(set != NULL);
    if (!set) {
        mailsrv_discovery_free(d);
        return NULL;
    }
    const mailsrv_endpoint *e = mailsrv_srv_set_endpoint_get(set, 0);
    CHECK_EQ_STR(mailsrv_endpoint_target(e), "relay.example.net");
    CHECK_EQ_INT(mailsrv_verify_srv_authenticity(ctx, "relayed.hosted.test", mailsrv_srv_set_service(set),
                                                 mailsrv_endpoint_target(e), mailsrv_endpoint_port(e), 0, &a, err,
                                                 sizeof err),
                 MAILSRV_STATUS_OK);
    mailsrv_discovery_free(d);
    return a;
}

static void test_relay_never_sees_the_login_blocking(void) {
    mailsrv_ctx *ctx = make_ctx(MAILSRV_DISPATCH_THREAD);
    mailsrv_authenticity *a = verify_relayed(ctx);
    if (!a) {
        mailsrv_ctx_free(ctx);
        return;
    }
    /* The relay passes the probe and the reconnect... */
    CHECK_EQ_INT(mailsrv_authenticity_verdict(a), MAILSRV_VERDICT_AUTHENTIC);
    const mailsrv_binding *b = mailsrv_authenticity_binding(a);
    CHECK(b != NULL);
    if (!b) goto out;
    /* ...but the binding keeps SNI and identity on the mail domain. */
    CHECK_EQ_STR(mailsrv_binding_host(b), "relay.example.net");
    CHECK_EQ_STR(mailsrv_binding_sni(b), "relayed.hosted.test");
    CHECK_EQ_STR(mailsrv_binding_identity(b), "SRV-ID _imaps.relayed.hosted.test");
    CHECK_EQ_INT(mailsrv_binding_security(b), MAILSRV_SECURITY_IMPLICIT_TLS_IMAP);
    CHECK(!mailsrv_binding_dane(b));

    /* The account keeps the text; a later session reads it back. */
    mailsrv_binding *stored = NULL;
    char err[256];
    CHECK_EQ_INT(mailsrv_binding_from_text(mailsrv_binding_text(b), &stored, err, sizeof err), MAILSRV_STATUS_OK);
    CHECK_EQ_STR(mailsrv_binding_text(stored), mailsrv_binding_text(b));

    char user[64];
    snprintf(user, sizeof user, "c-blocking-%ld", (long)getpid());
    mailsrv_tls_stream *s = NULL;
    CHECK_EQ_INT(mailsrv_connect_with_binding(ctx, stored, 0, &s, err, sizeof err), MAILSRV_STATUS_OK);
    if (s) {
        CHECK(strstr(mailsrv_tls_stream_greeting(s), "Dovecot") != NULL);
        CHECK_EQ_STR(mailsrv_tls_stream_matched_identity(s), "SRV-ID _imaps.relayed.hosted.test");
        CHECK(login(s, user));
        mailsrv_tls_stream_free(s);
    }
    pause_ms(200);
    CHECK(!relay_saw(user));
    mailsrv_binding_free(stored);
out:
    mailsrv_authenticity_free(a);
    mailsrv_ctx_free(ctx);
}

struct done {
    pthread_mutex_t mu;
    int calls;
    mailsrv_status status;
    mailsrv_tls_stream *stream;
};

static void on_stream(void *ud, mailsrv_request_id id, mailsrv_status status, mailsrv_tls_stream *s,
                      const char *detail) {
    struct done *d = ud;
    (void)id;
    if (status != MAILSRV_STATUS_OK) fprintf(stderr, "  connect: %s\n", detail);
    pthread_mutex_lock(&d->mu);
    d->calls++;
    d->status = status;
    d->stream = s;
    pthread_mutex_unlock(&d->mu);
}

static int calls(struct done *d) {
    pthread_mutex_lock(&d->mu);
    int n = d->calls;
    pthread_mutex_unlock(&d->mu);
    return n;
}

static void test_relay_never_sees_the_login_async_both_modes(void) {
    for (uint32_t mode = 0; mode <= 1; mode++) {
        mailsrv_ctx *ctx = make_ctx(mode);
        mailsrv_authenticity *a = verify_relayed(ctx);
        if (!a) {
            mailsrv_ctx_free(ctx);
            continue;
        }
        mailsrv_binding *b = NULL;
        CHECK_EQ_INT(mailsrv_binding_clone(mailsrv_authenticity_binding(a), &b), MAILSRV_STATUS_OK);
        mailsrv_authenticity_free(a); /* the clone outlives the verdict */
        struct done d = {PTHREAD_MUTEX_INITIALIZER, 0, MAILSRV_STATUS_OK, NULL};
        mailsrv_request_id id = 0;
        CHECK_EQ_INT(mailsrv_connect_with_binding_async(ctx, b, 0, on_stream, &d, &id), MAILSRV_STATUS_OK);
        mailsrv_binding_free(b); /* copied by the call */
        for (int i = 0; i < 400 && calls(&d) < 1; i++) {
            if (mode == MAILSRV_DISPATCH_LOOP) {
                struct pollfd p = {mailsrv_ctx_notify_fd(ctx), POLLIN, 0};
                if (poll(&p, 1, 25) == 1) mailsrv_ctx_dispatch(ctx, NULL);
            } else {
                struct timespec ts = {0, 25000000};
                nanosleep(&ts, NULL);
            }
        }
        CHECK_EQ_INT(calls(&d), 1);
        CHECK_EQ_INT(d.status, MAILSRV_STATUS_OK);
        char user[64];
        snprintf(user, sizeof user, "c-async%u-%ld", mode, (long)getpid());
        if (d.stream) {
            CHECK_EQ_STR(mailsrv_tls_stream_sni(d.stream), "relayed.hosted.test");
            CHECK(login(d.stream, user));
            mailsrv_tls_stream_free(d.stream);
        }
        pause_ms(200);
        CHECK(!relay_saw(user));
        mailsrv_ctx_free(ctx);
    }
}

static void test_dane_binding_and_errors(void) {
    mailsrv_ctx *ctx = make_ctx(MAILSRV_DISPATCH_THREAD);
    mailsrv_authenticity *a = NULL;
    char err[256];
    uint16_t port = (uint16_t)atoi(testbed_env("MAILSRV_TEST_IMAPS_PORT"));
    CHECK_EQ_INT(mailsrv_verify_srv_authenticity(ctx, "dane.example.com", MAILSRV_SERVICE_IMAPS, "dane.example.net",
                                                 port, 0, &a, err, sizeof err),
                 MAILSRV_STATUS_OK);
    CHECK_EQ_INT(mailsrv_authenticity_evidence(a), MAILSRV_EVIDENCE_DANE); /* T-DANE-02 */
    const mailsrv_binding *b = mailsrv_authenticity_binding(a);
    CHECK(b && mailsrv_binding_dane(b));
    mailsrv_tls_stream *s = NULL;
    CHECK_EQ_INT(mailsrv_connect_with_binding(ctx, b, 0, &s, err, sizeof err), MAILSRV_STATUS_OK);
    mailsrv_tls_stream_free(s);
    mailsrv_authenticity_free(a);

    char text[512];
    snprintf(text, sizeof text,
             "mailsrv-binding-1 service=imaps host=danepkix.example.net port=%u sni=danepkix.example.net "
             "identity=dns:danepkix.example.net dane=yes",
             (unsigned)port);
    mailsrv_binding *impostor = NULL;
    CHECK_EQ_INT(mailsrv_binding_from_text(text, &impostor, err, sizeof err), MAILSRV_STATUS_OK);
    s = NULL;
    CHECK_EQ_INT(mailsrv_connect_with_binding(ctx, impostor, 0, &s, err, sizeof err),
                 MAILSRV_STATUS_DANE_MISMATCH); /* T-DANE-04 */
    CHECK(s == NULL);
    CHECK(err[0] != 0);
    mailsrv_binding_free(impostor);

    mailsrv_binding *bad = NULL;
    CHECK_EQ_INT(mailsrv_binding_from_text("mailsrv-binding-1 host=x", &bad, err, sizeof err),
                 MAILSRV_STATUS_INVALID_ARG);
    CHECK(bad == NULL);
    CHECK(strncmp(err, "binding text", 12) == 0);
    CHECK(mailsrv_authenticity_binding(NULL) == NULL);
    CHECK(mailsrv_binding_host(NULL) == NULL);
    mailsrv_ctx_free(ctx);
}

int main(void) {
    TEST(test_relay_never_sees_the_login_blocking);
    TEST(test_relay_never_sees_the_login_async_both_modes);
    TEST(test_dane_binding_and_errors);
    HARNESS_END();
}
