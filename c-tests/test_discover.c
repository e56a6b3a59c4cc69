/* Discovery from C against the testbed DNS: blocking, thread-mode callbacks, and loop mode
 * driven by poll() on the notify descriptor. T-ids are docs/conformance.md's test vectors. */
#define _POSIX_C_SOURCE 200809L
#include <poll.h>
#include <pthread.h>
#include <time.h>

#include "mailsrv.h"
#include "harness.h"

static mailsrv_ctx *make_ctx(uint32_t dispatch, const char *ns_var, uint32_t timeout_ms) {
    mailsrv_config *cfg = NULL;
    mailsrv_ctx *ctx = NULL;
    char err[256];
    CHECK_EQ_INT(mailsrv_config_new(&cfg), MAILSRV_STATUS_OK);
    CHECK_EQ_INT(mailsrv_config_set_nameserver(cfg, testbed_env(ns_var)), MAILSRV_STATUS_OK);
    CHECK_EQ_INT(mailsrv_config_set_trust_anchor_file(cfg, testbed_env("MAILSRV_TEST_ANCHOR")), MAILSRV_STATUS_OK);
    CHECK_EQ_INT(mailsrv_config_set_dispatch(cfg, dispatch), MAILSRV_STATUS_OK);
    CHECK_EQ_INT(mailsrv_config_set_timeout_ms(cfg, timeout_ms), MAILSRV_STATUS_OK);
    mailsrv_status st = mailsrv_ctx_new(cfg, &ctx, err, sizeof err);
    mailsrv_config_free(cfg);
    if (st != MAILSRV_STATUS_OK) fprintf(stderr, "  ctx_new: %s\n", err);
    CHECK_EQ_INT(st, MAILSRV_STATUS_OK);
    return ctx;
}

static void test_version_macros_match_the_library(void) {
    char want[64];
    snprintf(want, sizeof want, "mailsrv %d.%d.%d ", MAILSRV_VERSION_MAJOR, MAILSRV_VERSION_MINOR,
             MAILSRV_VERSION_PATCH);
    CHECK(strncmp(mailsrv_version(), want, strlen(want)) == 0);
    CHECK_EQ_INT(MAILSRV_VERSION_NUMBER,
                 MAILSRV_VERSION_MAJOR * 10000 + MAILSRV_VERSION_MINOR * 100 + MAILSRV_VERSION_PATCH);
    CHECK_EQ_STR(mailsrv_status_str(12345), "unknown status");
    CHECK(strlen(mailsrv_status_str(MAILSRV_STATUS_BOGUS)) > 0);
}

static void test_blocking_example_com(void) {
    mailsrv_ctx *ctx = make_ctx(MAILSRV_DISPATCH_THREAD, "MAILSRV_TEST_NS", 10000);
    mailsrv_discovery *d = NULL;
    char err[256] = "junk";
    CHECK_EQ_INT(mailsrv_srv_discover(ctx, "joe@Example.COM", 0, 0, &d, err, sizeof err), MAILSRV_STATUS_OK);
    CHECK_EQ_STR(err, "");
    CHECK_EQ_STR(mailsrv_discovery_domain(d), "example.com"); /* T-SRV-01 */
    CHECK_EQ_INT(mailsrv_discovery_services_len(d), 6);

    const mailsrv_srv_set *imaps = mailsrv_discovery_find(d, MAILSRV_SERVICE_IMAPS);
    CHECK_EQ_INT(mailsrv_srv_set_state(imaps), MAILSRV_SRV_STATE_FOUND);
    CHECK_EQ_INT(mailsrv_srv_set_dnssec(imaps), MAILSRV_DNSSEC_SECURE);
    CHECK_EQ_INT(mailsrv_srv_set_ttl(imaps), 300);
    const mailsrv_endpoint *e = mailsrv_srv_set_endpoint_get(imaps, 0);
    CHECK_EQ_STR(mailsrv_endpoint_target(e), "mail.example.net");
    CHECK_EQ_INT(mailsrv_endpoint_port(e), atoi(testbed_env("MAILSRV_TEST_IMAPS_PORT")));
    CHECK_EQ_INT(mailsrv_endpoint_addresses_len(e), 2);
    CHECK_EQ_STR(mailsrv_endpoint_address_get(e, 0), "::1");
    CHECK_EQ_STR(mailsrv_endpoint_address_get(e, 1), "127.0.0.1");

    /* T-SRV-04: "." means not offered. */
    CHECK_EQ_INT(mailsrv_srv_set_state(mailsrv_discovery_find(d, MAILSRV_SERVICE_POP3)),
                 MAILSRV_SRV_STATE_NOT_OFFERED);
    /* T-SEL-04: submissions and submission tie at priority 0: implicit TLS wins. */
    CHECK_EQ_INT(mailsrv_srv_set_service(mailsrv_discovery_preferred(d, MAILSRV_PURPOSE_SUBMISSION)),
                 MAILSRV_SERVICE_SUBMISSIONS);
    CHECK_EQ_INT(mailsrv_srv_set_service(mailsrv_discovery_preferred(d, MAILSRV_PURPOSE_ACCESS)),
                 MAILSRV_SERVICE_IMAPS);
    mailsrv_discovery_free(d);
    mailsrv_ctx_free(ctx);
}

static uint32_t state_of(mailsrv_ctx *ctx, const char *domain, uint32_t service, mailsrv_status *status,
                         uint32_t *dnssec) {
    mailsrv_discovery *d = NULL;
    CHECK_EQ_INT(mailsrv_srv_discover(ctx, domain, service, 0, &d, NULL, 0), MAILSRV_STATUS_OK);
    const mailsrv_srv_set *s = mailsrv_discovery_find(d, service);
    uint32_t state = mailsrv_srv_set_state(s);
    *status = mailsrv_srv_set_status(s);
    *dnssec = mailsrv_srv_set_dnssec(s);
    mailsrv_discovery_free(d);
    return state;
}

static void test_states_nxdomain_servfail_bogus_insecure_idn(void) {
    mailsrv_ctx *ctx = make_ctx(MAILSRV_DISPATCH_THREAD, "MAILSRV_TEST_NS", 10000);
    mailsrv_status st;
    uint32_t dnssec;
    /* T-SRV-05 vs T-SRV-06: NXDOMAIN is "no record", SERVFAIL is a failure. */
    CHECK_EQ_INT(state_of(ctx, "nosrv.example.com", MAILSRV_SERVICE_IMAPS, &st, &dnssec), MAILSRV_SRV_STATE_NO_RECORD);
    CHECK_EQ_INT(st, MAILSRV_STATUS_OK);
    CHECK_EQ_INT(dnssec, MAILSRV_DNSSEC_SECURE);
    CHECK_EQ_INT(state_of(ctx, "broken.test", MAILSRV_SERVICE_IMAPS, &st, &dnssec), MAILSRV_SRV_STATE_LOOKUP_FAILED);
    CHECK_EQ_INT(st, MAILSRV_STATUS_SERVFAIL);
    /* T-AUTH-03 */
    CHECK_EQ_INT(state_of(ctx, "bogus.test", MAILSRV_SERVICE_IMAPS, &st, &dnssec), MAILSRV_SRV_STATE_BOGUS);
    CHECK_EQ_INT(st, MAILSRV_STATUS_BOGUS);
    CHECK_EQ_INT(dnssec, MAILSRV_DNSSEC_BOGUS);
    CHECK_EQ_INT(state_of(ctx, "insecure.test", MAILSRV_SERVICE_IMAPS, &st, &dnssec), MAILSRV_SRV_STATE_FOUND);
    CHECK_EQ_INT(dnssec, MAILSRV_DNSSEC_INSECURE);
    /* T-SRV-02 */
    CHECK_EQ_INT(state_of(ctx, "joe@b\xc3\xbc" "cher.example", MAILSRV_SERVICE_IMAPS, &st, &dnssec),
                 MAILSRV_SRV_STATE_FOUND);
    CHECK_EQ_INT(dnssec, MAILSRV_DNSSEC_SECURE);
    mailsrv_ctx_free(ctx);
}

static void test_bad_input(void) {
    mailsrv_ctx *ctx = make_ctx(MAILSRV_DISPATCH_THREAD, "MAILSRV_TEST_NS", 10000);
    mailsrv_discovery *d = (mailsrv_discovery *)&d; /* must be reset to NULL */
    char err[128];
    CHECK_EQ_INT(mailsrv_srv_discover(ctx, "no spaces@example.com", 0, 0, &d, err, sizeof err),
                 MAILSRV_STATUS_INVALID_ARG);
    CHECK(d == NULL);
    CHECK(strlen(err) > 0);
    CHECK_EQ_INT(mailsrv_srv_discover(ctx, "user@b\xfc" "cher.example", 0, 0, &d, NULL, 0), MAILSRV_STATUS_INVALID_ARG);
    CHECK_EQ_INT(mailsrv_srv_discover(ctx, NULL, 0, 0, &d, NULL, 0), MAILSRV_STATUS_NULL_ARG);
    CHECK_EQ_INT(mailsrv_srv_discover(ctx, "example.com", 1u << 9, 0, &d, NULL, 0), MAILSRV_STATUS_INVALID_ARG);
    mailsrv_ctx_free(ctx);
}

/* Async bookkeeping shared with callbacks. */
struct calls {
    pthread_mutex_t mu;
    int n;
    mailsrv_status last_status;
    mailsrv_request_id last_id;
    int results;
};

static void on_discovery(void *ud, mailsrv_request_id id, mailsrv_status status, mailsrv_discovery *result,
                         const char *detail) {
    struct calls *c = ud;
    pthread_mutex_lock(&c->mu);
    c->n++;
    c->last_status = status;
    c->last_id = id;
    if (result) {
        c->results++;
        if (mailsrv_srv_set_state(mailsrv_discovery_find(result, MAILSRV_SERVICE_IMAPS)) != MAILSRV_SRV_STATE_FOUND)
            c->results += 1000;
    }
    pthread_mutex_unlock(&c->mu);
    (void)detail;
    mailsrv_discovery_free(result);
}

static int count(struct calls *c) {
    pthread_mutex_lock(&c->mu);
    int n = c->n;
    pthread_mutex_unlock(&c->mu);
    return n;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void test_async_thread_mode(void) {
    mailsrv_ctx *ctx = make_ctx(MAILSRV_DISPATCH_THREAD, "MAILSRV_TEST_NS", 10000);
    struct calls c = {PTHREAD_MUTEX_INITIALIZER, 0, MAILSRV_STATUS_OK, 0, 0};
    mailsrv_request_id id = 0;
    CHECK_EQ_INT(mailsrv_srv_discover_async(ctx, "example.com", MAILSRV_SERVICE_IMAPS, 0, on_discovery, &c, &id),
                 MAILSRV_STATUS_OK);
    CHECK(id != 0);
    for (int i = 0; i < 500 && count(&c) < 1; i++) sleep_ms(10);
    CHECK_EQ_INT(count(&c), 1);
    CHECK_EQ_INT(c.last_status, MAILSRV_STATUS_OK);
    CHECK_EQ_INT(c.last_id, id);
    CHECK_EQ_INT(c.results, 1);
    mailsrv_ctx_free(ctx);
    CHECK_EQ_INT(count(&c), 1);
}

static void test_async_loop_mode_with_poll(void) {
    mailsrv_ctx *ctx = make_ctx(MAILSRV_DISPATCH_LOOP, "MAILSRV_TEST_NS", 10000);
    struct calls c = {PTHREAD_MUTEX_INITIALIZER, 0, MAILSRV_STATUS_OK, 0, 0};
    int fd = mailsrv_ctx_notify_fd(ctx);
    CHECK(fd >= 0);
    mailsrv_request_id ids[3];
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(mailsrv_srv_discover_async(ctx, "example.com", 0, 0, on_discovery, &c, &ids[i]),
                     MAILSRV_STATUS_OK);
    for (int spins = 0; spins < 100 && count(&c) < 3; spins++) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 100) == 1) {
            size_t ran = 0;
            CHECK_EQ_INT(mailsrv_ctx_dispatch(ctx, &ran), MAILSRV_STATUS_OK);
        }
    }
    CHECK_EQ_INT(count(&c), 3);
    CHECK_EQ_INT(c.results, 3);
    struct pollfd p = {fd, POLLIN, 0};
    CHECK_EQ_INT(poll(&p, 1, 0), 0); /* drained */
    mailsrv_ctx_free(ctx);
}

static void test_cancel_and_free_with_pending_work(void) {
    /* The dead nameserver never answers, so requests stay pending. */
    mailsrv_ctx *ctx = make_ctx(MAILSRV_DISPATCH_LOOP, "MAILSRV_TEST_DEAD_NS", 60000);
    struct calls c = {PTHREAD_MUTEX_INITIALIZER, 0, MAILSRV_STATUS_OK, 0, 0};
    mailsrv_request_id a = 0, b = 0;
    CHECK_EQ_INT(mailsrv_srv_discover_async(ctx, "example.com", 0, 0, on_discovery, &c, &a), MAILSRV_STATUS_OK);
    CHECK_EQ_INT(mailsrv_srv_discover_async(ctx, "example.com", 0, 0, on_discovery, &c, &b), MAILSRV_STATUS_OK);
    CHECK_EQ_INT(mailsrv_cancel(ctx, a), MAILSRV_STATUS_OK);
    CHECK_EQ_INT(mailsrv_cancel(ctx, a), MAILSRV_STATUS_NOT_FOUND);
    CHECK_EQ_INT(count(&c), 0); /* loop mode: nothing runs outside dispatch */
    size_t ran = 0;
    CHECK_EQ_INT(mailsrv_ctx_dispatch(ctx, &ran), MAILSRV_STATUS_OK);
    CHECK_EQ_INT(ran, 1);
    CHECK_EQ_INT(c.last_status, MAILSRV_STATUS_CANCELLED);
    CHECK_EQ_INT(c.last_id, a);
    mailsrv_ctx_free(ctx); /* delivers SHUTDOWN to b on this thread, then returns */
    CHECK_EQ_INT(count(&c), 2);
    CHECK_EQ_INT(c.last_status, MAILSRV_STATUS_SHUTDOWN);
    CHECK_EQ_INT(c.last_id, b);
}

#ifdef MAILSRV_TEST_HOOKS
static void test_panic_boundary(void) {
    CHECK_EQ_INT(mailsrv_test_panic(), MAILSRV_STATUS_PANIC);
}
#endif

int main(void) {
    TEST(test_version_macros_match_the_library);
    TEST(test_blocking_example_com);
    TEST(test_states_nxdomain_servfail_bogus_insecure_idn);
    TEST(test_bad_input);
    TEST(test_async_thread_mode);
    TEST(test_async_loop_mode_with_poll);
    TEST(test_cancel_and_free_with_pending_work);
#ifdef MAILSRV_TEST_HOOKS
    TEST(test_panic_boundary);
#endif
    HARNESS_END();
}
