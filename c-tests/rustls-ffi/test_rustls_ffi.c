/* mailsrv's certificate check inside a rustls-ffi client (issue 9).
 *
 * A small client does its TLS with rustls-ffi (librustls built from the same rustls-ffi crate
 * mailsrv pins, see mk/rustls-ffi.mk) and installs mailsrv_rustls_verify_server_cert as its
 * server-certificate verifier. Against the testbed's dovecot (IMAPS), every case checks that
 * the verdict is the same four ways:
 *   1. the rustls-ffi handshake with mailsrv's callback installed directly (one line);
 *   2. the callback's own return value, seen through a tap that records the chain rustls
 *      hands over and then calls mailsrv's callback;
 *   3. mailsrv_cert_check() on exactly that chain;
 *   4. mailsrv_connect_with_sni() with the same address, SNI and identity.
 * The summary line "N passed, N failed" comes last. */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "rustls.h"
/* After rustls.h on purpose: mailsrv.h's forward declaration of
 * struct rustls_verify_server_cert_params must agree with rustls.h's definition. */
#include "mailsrv.h"
#include "harness.h"

/* The exported callback has exactly rustls-ffi's callback type (no cast anywhere below). */
_Static_assert(__builtin_types_compatible_p(__typeof__(&mailsrv_rustls_verify_server_cert),
                                            rustls_verify_server_cert_callback),
               "mailsrv_rustls_verify_server_cert is not a rustls_verify_server_cert_callback");

#define MAX_CHAIN 8

static mailsrv_ctx *make_ctx(void) {
    mailsrv_config *cfg = NULL;
    mailsrv_ctx *ctx = NULL;
    char err[256];
    mailsrv_config_new(&cfg);
    mailsrv_config_set_nameserver(cfg, testbed_env("MAILSRV_TEST_NS"));
    mailsrv_config_set_ca_file(cfg, testbed_env("MAILSRV_TEST_CA"));
    if (mailsrv_ctx_new(cfg, &ctx, err, sizeof err) != MAILSRV_STATUS_OK) fprintf(stderr, "  ctx: %s\n", err);
    mailsrv_config_free(cfg);
    return ctx;
}

static uint16_t imaps_port(void) { return (uint16_t)atoi(testbed_env("MAILSRV_TEST_IMAPS_PORT")); }

static const char *code_text(uint32_t r) {
    static char buf[256];
    size_t n = 0;
    rustls_error(r, buf, sizeof buf - 1, &n);
    buf[n] = 0;
    return buf;
}

/* ---------------------------------------------------------------- plumbing */

static rustls_io_result sock_read(void *userdata, uint8_t *buf, size_t n, size_t *out_n) {
    ssize_t got = read(*(int *)userdata, buf, n);
    if (got < 0) return errno;
    *out_n = (size_t)got;
    return 0;
}

static rustls_io_result sock_write(void *userdata, const uint8_t *buf, size_t n, size_t *out_n) {
    ssize_t put = write(*(int *)userdata, buf, n);
    if (put < 0) return errno;
    *out_n = (size_t)put;
    return 0;
}

static int tcp_connect(const char *addr, uint16_t port) {
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) return -1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct timeval tv = {5, 0}; /* never hang the suite */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* A rustls-ffi client config with `cb` as its verifier (ring provider, TLS 1.3 and 1.2). */
static const struct rustls_client_config *make_config(rustls_verify_server_cert_callback cb) {
    const struct rustls_crypto_provider *ring = rustls_ring_crypto_provider();
    struct rustls_client_config_builder *b = NULL;
    const struct rustls_client_config *config = NULL;
    CHECK_EQ_INT(rustls_client_config_builder_new_custom(ring, RUSTLS_DEFAULT_VERSIONS, RUSTLS_DEFAULT_VERSIONS_LEN, &b),
                 RUSTLS_RESULT_OK);
    rustls_crypto_provider_free(ring);
    if (!b) return NULL;
    CHECK_EQ_INT(rustls_client_config_builder_dangerous_set_certificate_verifier(b, cb), RUSTLS_RESULT_OK);
    CHECK_EQ_INT(rustls_client_config_builder_build(b, &config), RUSTLS_RESULT_OK);
    return config;
}

/* Connects to addr:port and runs the rustls-ffi handshake with SNI `sni`; `userdata` goes to
 * the verifier callback. Returns the handshake's rustls_result (RUSTLS_RESULT_OK once done);
 * on success also reads the IMAP greeting into `greeting`. */
static uint32_t handshake(rustls_verify_server_cert_callback cb, void *userdata, const char *addr, const char *sni,
                          char *greeting, size_t greeting_len) {
    if (greeting_len) greeting[0] = 0;
    const struct rustls_client_config *config = make_config(cb);
    if (!config) return RUSTLS_RESULT_GENERAL;
    struct rustls_connection *conn = NULL;
    uint32_t result = rustls_client_connection_new(config, sni, &conn);
    rustls_client_config_free(config); /* the connection keeps its own reference */
    if (result != RUSTLS_RESULT_OK) return result;
    rustls_connection_set_userdata(conn, userdata);
    int fd = tcp_connect(addr, imaps_port());
    if (fd < 0) {
        fprintf(stderr, "  cannot connect to %s:%u\n", addr, imaps_port());
        rustls_connection_free(conn);
        return RUSTLS_RESULT_IO;
    }
    size_t n = 0;
    while (result == RUSTLS_RESULT_OK && rustls_connection_is_handshaking(conn)) {
        while (rustls_connection_wants_write(conn))
            if (rustls_connection_write_tls(conn, sock_write, &fd, &n) != 0) result = RUSTLS_RESULT_IO;
        if (result != RUSTLS_RESULT_OK || !rustls_connection_is_handshaking(conn)) break;
        if (rustls_connection_read_tls(conn, sock_read, &fd, &n) != 0 || n == 0) {
            result = RUSTLS_RESULT_UNEXPECTED_EOF;
            break;
        }
        result = rustls_connection_process_new_packets(conn);
    }
    /* Send the alert (or the last handshake flight) before closing. */
    while (rustls_connection_wants_write(conn) && rustls_connection_write_tls(conn, sock_write, &fd, &n) == 0 && n)
        ;
    /* On success, the IMAP greeting proves the session is usable. */
    size_t have = 0;
    while (result == RUSTLS_RESULT_OK && greeting_len > 1 && !memchr(greeting, '\n', have)) {
        uint32_t r = rustls_connection_read(conn, (uint8_t *)greeting + have, greeting_len - 1 - have, &n);
        if (r == RUSTLS_RESULT_OK) {
            have += n;
            greeting[have] = 0;
            if (have + 1 >= greeting_len) break;
            continue;
        }
        if (r != RUSTLS_RESULT_PLAINTEXT_EMPTY) break;
        if (rustls_connection_read_tls(conn, sock_read, &fd, &n) != 0 || n == 0) break;
        if (rustls_connection_process_new_packets(conn) != RUSTLS_RESULT_OK) break;
    }
    rustls_connection_free(conn);
    close(fd);
    return result;
}

/* ---------------------------------------------------------------- the tap */

/* Records the chain rustls hands to the verifier, then lets mailsrv's callback decide. */
struct tap {
    mailsrv_rustls_verifier *verifier;
    uint8_t *der[MAX_CHAIN];
    size_t len[MAX_CHAIN];
    size_t n;
    char server_name[256];
    uint32_t code;
    int calls;
};

static uint32_t tap_verify(void *userdata, const struct rustls_verify_server_cert_params *params) {
    struct tap *t = userdata;
    t->calls++;
    t->n = 0;
    if (params->end_entity_cert_der.len) {
        t->der[0] = malloc(params->end_entity_cert_der.len);
        memcpy(t->der[0], params->end_entity_cert_der.data, params->end_entity_cert_der.len);
        t->len[0] = params->end_entity_cert_der.len;
        t->n = 1;
    }
    size_t k = rustls_slice_slice_bytes_len(params->intermediate_certs_der);
    for (size_t i = 0; i < k && t->n < MAX_CHAIN; i++) {
        struct rustls_slice_bytes s = rustls_slice_slice_bytes_get(params->intermediate_certs_der, i);
        t->der[t->n] = malloc(s.len ? s.len : 1);
        if (s.len) memcpy(t->der[t->n], s.data, s.len);
        t->len[t->n++] = s.len;
    }
    size_t sn = params->server_name.len < sizeof t->server_name - 1 ? params->server_name.len : sizeof t->server_name - 1;
    memcpy(t->server_name, params->server_name.data, sn);
    t->server_name[sn] = 0;
    t->code = mailsrv_rustls_verify_server_cert(t->verifier, params);
    return t->code;
}

static void tap_clear(struct tap *t) {
    for (size_t i = 0; i < t->n; i++) free(t->der[i]);
    t->n = 0;
}

/* ---------------------------------------------------------------- cases */

struct scenario {
    const char *name;
    const char *addr; /* dovecot's local address: selects the certificate with the SNI */
    const char *sni;
    const char *srv_service, *srv_domain; /* SRV-ID, or NULL */
    const char *dns_id;                    /* DNS-ID, or NULL */
    mailsrv_status want_status;            /* mailsrv_cert_check / connect_with_sni */
    uint32_t want_code;                    /* the callback / the rustls-ffi handshake */
};

static const struct scenario scenarios[] = {
    /* SNI = the mail domain: dovecot sends srvid-multi-example-com (SRV-IDs only). */
    {"srv-id for the mail domain", "127.0.0.1", "example.com", "imaps", "example.com", NULL, MAILSRV_STATUS_OK,
     RUSTLS_RESULT_OK},
    /* rustls passes server_name "example.com"; it is not taken as a DNS-ID (T-SRVID-13). */
    {"sni is not an identity", "127.0.0.1", "example.com", NULL, NULL, "example.com", MAILSRV_STATUS_NAME_MISMATCH,
     RUSTLS_RESULT_CERT_NOT_VALID_FOR_NAME},
    {"provider dns-id vs srv-id cert", "127.0.0.1", "example.com", NULL, NULL, "mail.example.net",
     MAILSRV_STATUS_NAME_MISMATCH, RUSTLS_RESULT_CERT_NOT_VALID_FOR_NAME},
    {"other service's srv-id", "127.0.20.4", "example.com", "pop3s", "example.com", NULL, MAILSRV_STATUS_NAME_MISMATCH,
     RUSTLS_RESULT_CERT_NOT_VALID_FOR_NAME},
    /* SNI = the provider: dnsid-mail-example-net names only the provider. */
    {"provider-only cert for the mail domain", "127.0.0.1", "mail.example.net", "imaps", "example.com", NULL,
     MAILSRV_STATUS_NAME_MISMATCH, RUSTLS_RESULT_CERT_NOT_VALID_FOR_NAME},
    {"provider cert for the provider", "127.0.0.1", "mail.example.net", NULL, NULL, "mail.example.net",
     MAILSRV_STATUS_OK, RUSTLS_RESULT_OK},
    {"expired", "127.0.20.1", "mail.example.net", NULL, NULL, "mail.example.net", MAILSRV_STATUS_CERT_EXPIRED,
     RUSTLS_RESULT_CERT_EXPIRED},
    {"wrong name", "127.0.20.2", "mail.example.net", NULL, NULL, "mail.example.net", MAILSRV_STATUS_NAME_MISMATCH,
     RUSTLS_RESULT_CERT_NOT_VALID_FOR_NAME},
    {"untrusted issuer", "127.0.20.3", "mail.example.net", NULL, NULL, "mail.example.net",
     MAILSRV_STATUS_UNKNOWN_ISSUER, RUSTLS_RESULT_CERT_UNKNOWN_ISSUER},
    /* Names matter only on a trusted chain (T-AUTH-11): untrusted wins over the mismatch. */
    {"untrusted and wrong identity", "127.0.20.3", "example.com", "imaps", "example.com", NULL,
     MAILSRV_STATUS_UNKNOWN_ISSUER, RUSTLS_RESULT_CERT_UNKNOWN_ISSUER},
    {"cn only", "127.0.20.5", "mail.example.net", NULL, NULL, "mail.example.net", MAILSRV_STATUS_NAME_MISMATCH,
     RUSTLS_RESULT_CERT_NOT_VALID_FOR_NAME},
};

/* The rustls-ffi code the callback gives for a mailsrv status (src/ffi/rustls_verifier.rs). */
static uint32_t code_for_status(mailsrv_status st) {
    switch (st) {
    case MAILSRV_STATUS_OK: return RUSTLS_RESULT_OK;
    case MAILSRV_STATUS_CERT_EXPIRED: return RUSTLS_RESULT_CERT_EXPIRED;
    case MAILSRV_STATUS_CERT_NOT_YET_VALID: return RUSTLS_RESULT_CERT_NOT_YET_VALID;
    case MAILSRV_STATUS_UNKNOWN_ISSUER: return RUSTLS_RESULT_CERT_UNKNOWN_ISSUER;
    case MAILSRV_STATUS_NAME_MISMATCH: return RUSTLS_RESULT_CERT_NOT_VALID_FOR_NAME;
    case MAILSRV_STATUS_CERT_PURPOSE: return RUSTLS_RESULT_CERT_INVALID_PURPOSE;
    case MAILSRV_STATUS_NAME_CONSTRAINT: return RUSTLS_RESULT_CERT_OTHER_ERROR;
    default: return RUSTLS_RESULT_GENERAL;
    }
}

/* A reason without its "(checked at <time>)" part: the two checks ran a moment apart. */
static const char *reason(char *text) {
    char *at = strstr(text, " (checked at ");
    if (at) *at = 0;
    return text;
}

static mailsrv_identity *make_identity(const struct scenario *s) {
    mailsrv_identity *id = NULL;
    mailsrv_identity_new(&id);
    if (s->srv_service) CHECK_EQ_INT(mailsrv_identity_add_srv_id(id, s->srv_service, s->srv_domain), MAILSRV_STATUS_OK);
    if (s->dns_id) CHECK_EQ_INT(mailsrv_identity_add_dns_id(id, s->dns_id), MAILSRV_STATUS_OK);
    return id;
}

/* Checks one scenario the four ways; returns nonzero when a check failed. */
static int run_scenario(mailsrv_ctx *ctx, const struct scenario *s) {
    harness_current_failed = 0;
    mailsrv_identity *id = make_identity(s);
    mailsrv_rustls_verifier *v = NULL;
    char err[512], text[512];
    CHECK_EQ_INT(mailsrv_rustls_verifier_new(ctx, id, 0, &v, err, sizeof err), MAILSRV_STATUS_OK);
    CHECK_EQ_INT(mailsrv_rustls_verifier_last_verdict(v, text, sizeof text), MAILSRV_STATUS_NOT_FOUND);

    /* 1. mailsrv's callback installed directly: the one-line integration. */
    char greeting[256];
    uint32_t direct = handshake(mailsrv_rustls_verify_server_cert, v, s->addr, s->sni, greeting, sizeof greeting);
    CHECK_EQ_INT(direct, s->want_code);
    if (direct == RUSTLS_RESULT_OK) CHECK(strncmp(greeting, "* OK", 4) == 0);
    mailsrv_status last = mailsrv_rustls_verifier_last_verdict(v, text, sizeof text);
    CHECK_EQ_INT(last, s->want_status);

    /* 2. The same through the tap: the callback's own return value and the exact chain. */
    struct tap t;
    memset(&t, 0, sizeof t);
    t.verifier = v;
    uint32_t tapped = handshake(tap_verify, &t, s->addr, s->sni, NULL, 0);
    CHECK_EQ_INT(t.calls, 1);
    CHECK_EQ_INT(t.code, s->want_code);
    CHECK_EQ_INT(tapped, direct);
    CHECK_EQ_STR(t.server_name, s->sni); /* rustls passed the SNI; the identity decided */
    CHECK(t.n >= 1);

    /* 3. mailsrv_cert_check on exactly the chain the callback saw. */
    const uint8_t *certs[MAX_CHAIN];
    for (size_t i = 0; i < t.n; i++) certs[i] = t.der[i];
    mailsrv_cert_result *r = NULL;
    char check_err[512];
    mailsrv_status checked = mailsrv_cert_check(ctx, certs, t.len, t.n, id, 0, &r, check_err, sizeof check_err);
    CHECK_EQ_INT(checked, s->want_status);
    CHECK_EQ_INT(code_for_status(checked), t.code);
    if (checked == MAILSRV_STATUS_OK && r) CHECK_EQ_STR(text, mailsrv_cert_result_matched(r));
    else CHECK_EQ_STR(reason(text), reason(check_err)); /* the same reason, word for word */
    mailsrv_cert_result_free(r);

    /* 4. mailsrv_connect_with_sni with the same address, SNI and identity. */
    mailsrv_tls_stream *stream = NULL;
    mailsrv_status connected = mailsrv_connect_with_sni(ctx, s->addr, imaps_port(), MAILSRV_SECURITY_IMPLICIT_TLS,
                                                        s->sni, id, 0, &stream, err, sizeof err);
    CHECK_EQ_INT(connected, s->want_status);
    CHECK_EQ_INT(code_for_status(connected), direct);
    mailsrv_tls_stream_free(stream);

    printf("     %s: callback %u (%s), cert_check %d, connect %d: %s\n", s->name, (unsigned)t.code,
           code_text(t.code), (int)checked, (int)connected, text);
    tap_clear(&t);
    mailsrv_rustls_verifier_free(v);
    mailsrv_identity_free(id);
    return harness_current_failed;
}

/* Each scenario counts as one test in the summary (TEST's bookkeeping, by hand). */
static void run_scenarios(void) {
    mailsrv_ctx *ctx = make_ctx();
    for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++) {
        int failed = ctx ? run_scenario(ctx, &scenarios[i]) : 1;
        if (failed) harness_failed++;
        else harness_passed++;
        printf("%s scenario: %s\n", failed ? "FAIL" : "ok  ", scenarios[i].name);
        fflush(stdout);
    }
    mailsrv_ctx_free(ctx);
}

/* One verifier serves many connections; the expired verdict keeps its precise code. */
static void test_verifier_outlives_context_and_is_reusable(void) {
    mailsrv_ctx *ctx = make_ctx();
    mailsrv_identity *id = NULL;
    mailsrv_rustls_verifier *v = NULL;
    char text[512];
    mailsrv_identity_new(&id);
    mailsrv_identity_add_srv_id(id, "imaps", "example.com");
    CHECK_EQ_INT(mailsrv_rustls_verifier_new(ctx, id, 0, &v, NULL, 0), MAILSRV_STATUS_OK);
    mailsrv_identity_free(id); /* copied */
    mailsrv_ctx_free(ctx);     /* the verifier keeps its own trust store */
    char greeting[256];
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(handshake(mailsrv_rustls_verify_server_cert, v, "127.0.0.1", "example.com", greeting, sizeof greeting),
                     RUSTLS_RESULT_OK);
        CHECK_EQ_INT(mailsrv_rustls_verifier_last_verdict(v, text, sizeof text), MAILSRV_STATUS_OK);
        CHECK_EQ_STR(text, "SRV-ID _imaps.example.com");
    }
    CHECK_EQ_INT(handshake(mailsrv_rustls_verify_server_cert, v, "127.0.20.1", "example.com", NULL, 0),
                 RUSTLS_RESULT_CERT_EXPIRED);
    CHECK_EQ_INT(mailsrv_rustls_verifier_last_verdict(v, text, sizeof text), MAILSRV_STATUS_CERT_EXPIRED);
    CHECK(strstr(text, "expired") != NULL);
    mailsrv_rustls_verifier_free(v);
}

/* Fails closed: no userdata on the connection, NULL arguments, bad arguments. */
static void test_misuse_fails_closed(void) {
    CHECK_EQ_INT(mailsrv_rustls_verify_server_cert(NULL, NULL), RUSTLS_RESULT_NULL_PARAMETER);
    /* A connection without rustls_connection_set_userdata: the callback gets NULL. */
    uint32_t r = handshake(mailsrv_rustls_verify_server_cert, NULL, "127.0.0.1", "example.com", NULL, 0);
    CHECK(r != RUSTLS_RESULT_OK);
    mailsrv_ctx *ctx = make_ctx();
    mailsrv_identity *empty = NULL;
    mailsrv_identity_new(&empty);
    static char sentinel;
    mailsrv_rustls_verifier *v = (mailsrv_rustls_verifier *)(void *)&sentinel; /* must become NULL */
    char err[256];
    CHECK_EQ_INT(mailsrv_rustls_verifier_new(ctx, empty, 0, &v, err, sizeof err), MAILSRV_STATUS_INVALID_ARG);
    CHECK(v == NULL);
    CHECK(strlen(err) > 0);
    mailsrv_identity_add_dns_id(empty, "mail.example.net");
    CHECK_EQ_INT(mailsrv_rustls_verifier_new(ctx, empty, 0x80000000u, &v, NULL, 0), MAILSRV_STATUS_INVALID_ARG);
    CHECK_EQ_INT(mailsrv_rustls_verifier_new(NULL, empty, 0, &v, NULL, 0), MAILSRV_STATUS_NULL_ARG);
    CHECK_EQ_INT(mailsrv_rustls_verifier_new(ctx, NULL, 0, &v, NULL, 0), MAILSRV_STATUS_NULL_ARG);
    CHECK_EQ_INT(mailsrv_rustls_verifier_new(ctx, empty, 0, NULL, NULL, 0), MAILSRV_STATUS_NULL_ARG);
    CHECK_EQ_INT(mailsrv_rustls_verifier_last_verdict(NULL, NULL, 0), MAILSRV_STATUS_NULL_ARG);
    mailsrv_rustls_verifier_free(NULL);
    mailsrv_identity_free(empty);
    mailsrv_ctx_free(ctx);
}

/* The librustls this test links is the release mailsrv.h names. */
static void test_release_matches(void) {
    struct rustls_str v = rustls_version();
    char want[64];
    snprintf(want, sizeof want, "rustls-ffi/%s/", MAILSRV_RUSTLS_FFI_VERSION);
    CHECK(v.len >= strlen(want) && memcmp(v.data, want, strlen(want)) == 0);
    char got[64];
    snprintf(got, sizeof got, "%d.%d.%d", RUSTLS_VERSION_MAJOR, RUSTLS_VERSION_MINOR, RUSTLS_VERSION_PATCH);
    CHECK_EQ_STR(got, MAILSRV_RUSTLS_FFI_VERSION);
    printf("     %.*s with %s\n", (int)v.len, v.data, mailsrv_version());
}

int main(void) {
    TEST(test_release_matches);
    run_scenarios();
    TEST(test_verifier_outlives_context_and_is_reusable);
    TEST(test_misuse_fails_closed);
    HARNESS_END();
}
