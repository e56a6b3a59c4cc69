/* A client that keeps its own TLS stack (OpenSSL) and uses mailsrv for discovery, verdicts
 * and refresh (issue 15, points 1 and 3): OpenSSL makes the probe (SNI = mail domain) and
 * the reconnect (SNI = target) and hands mailsrv the chains; mailsrv runs STARTTLS to the
 * go-ahead and OpenSSL takes the plain fd over; mailsrv connects over a socket the client
 * opened, with a pinned key; the ASK_USER dialog (reason, authenticity, decline) with the
 * history kept in the client's own store (export/import) and saved asynchronously.
 * Runs against the testbed (MAILSRV_TEST_*). Linked with -lssl -lcrypto. */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "mailsrv.h"
#include "harness.h"

#define DAY 86400ULL
#define NOW 1800000000ULL

static uint16_t port_of(const char *name) {
    char var[64];
    snprintf(var, sizeof var, "MAILSRV_TEST_%s_PORT", name);
    return (uint16_t)atoi(testbed_env(var));
}

static int tcp_connect(const char *addr, uint16_t port) {
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) return -1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static mailsrv_ctx *new_ctx(int with_ca, uint32_t dispatch) {
    mailsrv_config *cfg = NULL;
    mailsrv_ctx *ctx = NULL;
    char err[256];
    mailsrv_config_new(&cfg);
    mailsrv_config_set_nameserver(cfg, testbed_env("MAILSRV_TEST_NS"));
    mailsrv_config_set_trust_anchor_file(cfg, testbed_env("MAILSRV_TEST_ANCHOR"));
    if (with_ca) mailsrv_config_set_ca_file(cfg, testbed_env("MAILSRV_TEST_CA"));
    mailsrv_config_set_dispatch(cfg, dispatch);
    mailsrv_status st = mailsrv_ctx_new(cfg, &ctx, err, sizeof err);
    mailsrv_config_free(cfg);
    if (st != MAILSRV_STATUS_OK) fprintf(stderr, "  ctx_new: %s\n", err);
    return ctx;
}

/* OpenSSL's client: with `verify`, the path is validated against the test CA (no name
 * check: OpenSSL cannot read SRV-IDs). */
static SSL_CTX *client_ctx(int verify) {
    SSL_CTX *c = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
    if (verify) {
        SSL_CTX_load_verify_locations(c, testbed_env("MAILSRV_TEST_CA"), NULL);
        SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(c, SSL_VERIFY_NONE, NULL);
    }
    return c;
}

/* One handshake with `sni` to addr:port; the chain the server sent goes into `chains` as
 * chain `which`. Returns 1 when the handshake succeeded. */
static int openssl_chain(SSL_CTX *c, const char *addr, uint16_t port, const char *sni,
                         mailsrv_peer_chains *chains, uint32_t which) {
    int fd = tcp_connect(addr, port);
    if (fd < 0) return 0;
    SSL *ssl = SSL_new(c);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, sni);
    int ok = SSL_connect(ssl) == 1;
    if (ok) {
        STACK_OF(X509) *sk = SSL_get_peer_cert_chain(ssl);
        for (int i = 0; sk && i < sk_X509_num(sk); i++) {
            unsigned char *der = NULL;
            int len = i2d_X509(sk_X509_value(sk, i), &der);
            if (len > 0) CHECK_EQ_INT(mailsrv_peer_chains_add_cert(chains, which, der, (size_t)len), MAILSRV_STATUS_OK);
            OPENSSL_free(der);
        }
        SSL_shutdown(ssl);
    }
    SSL_free(ssl);
    close(fd);
    return ok;
}

static void own_probe_and_reconnect_give_the_verdict(void) {
    const char *mail = testbed_env("MAILSRV_TEST_MAIL_ADDR");
    uint16_t port = port_of("IMAPS");
    for (int names_only = 0; names_only <= 1; names_only++) {
        /* names-only: OpenSSL validates the paths, mailsrv (no CA configured) the names. */
        mailsrv_ctx *ctx = new_ctx(!names_only, MAILSRV_DISPATCH_THREAD);
        SSL_CTX *c = client_ctx(names_only);
        mailsrv_peer_chains *chains = NULL;
        CHECK_EQ_INT(mailsrv_peer_chains_new(&chains), MAILSRV_STATUS_OK);
        CHECK(openssl_chain(c, mail, port, "hosted.test", chains, 0));
        CHECK(openssl_chain(c, mail, port, "mail.example.net", chains, 1));
        CHECK(mailsrv_peer_chains_len(chains, 0) >= 1);
        mailsrv_authenticity *a = NULL;
        char err[256];
        mailsrv_status st = mailsrv_verify_srv_authenticity_with_chains(
            ctx, "hosted.test", MAILSRV_SERVICE_IMAPS, "mail.example.net", port,
            names_only ? MAILSRV_FLAG_NAMES_ONLY : 0, chains, &a, err, sizeof err);
        CHECK_EQ_INT(st, MAILSRV_STATUS_OK);
        if (a) {
            CHECK_EQ_INT(mailsrv_authenticity_verdict(a), MAILSRV_VERDICT_AUTHENTIC);
            CHECK_EQ_INT(mailsrv_authenticity_evidence(a), MAILSRV_EVIDENCE_PROBE_SRV_ID);
            const mailsrv_binding *b = mailsrv_authenticity_binding(a);
            CHECK(b != NULL);
            if (b) CHECK_EQ_STR(mailsrv_binding_sni(b), "hosted.test");
        }
        mailsrv_authenticity_free(a);
        mailsrv_peer_chains_free(chains);
        SSL_CTX_free(c);
        mailsrv_ctx_free(ctx);
    }
}

static void starttls_plain_fd_then_openssl(void) {
    mailsrv_ctx *ctx = new_ctx(1, MAILSRV_DISPATCH_THREAD);
    mailsrv_connect_opts *o = NULL;
    CHECK_EQ_INT(mailsrv_connect_opts_new("mail.example.net", port_of("IMAP"), MAILSRV_SECURITY_STARTTLS_IMAP, &o),
                 MAILSRV_STATUS_OK);
    mailsrv_connect_opts_add_address(o, testbed_env("MAILSRV_TEST_MAIL_ADDR"), NULL, 0);
    mailsrv_plain_socket *p = NULL;
    char err[256];
    CHECK_EQ_INT(mailsrv_connect_starttls_plain(ctx, o, &p, err, sizeof err), MAILSRV_STATUS_OK);
    mailsrv_connect_opts_free(o);
    if (!p) {
        fprintf(stderr, "  %s\n", err);
        mailsrv_ctx_free(ctx);
        return;
    }
    CHECK(strncmp(mailsrv_plain_socket_greeting(p), "* OK", 4) == 0);
    int fd = mailsrv_plain_socket_take_fd(p);
    CHECK(fd >= 0);
    CHECK_EQ_INT(mailsrv_plain_socket_take_fd(p), -1);
    mailsrv_plain_socket_free(p);
    SSL_CTX *c = client_ctx(1);
    SSL *ssl = SSL_new(c);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, "mail.example.net");
    SSL_set1_host(ssl, "mail.example.net");
    CHECK_EQ_INT(SSL_connect(ssl), 1);
    const char cmd[] = "a CAPABILITY\r\n";
    CHECK_EQ_INT(SSL_write(ssl, cmd, (int)strlen(cmd)), (int)strlen(cmd));
    char buf[4096] = {0};
    size_t got = 0;
    while (got < sizeof buf - 1 && !strstr(buf, "a OK")) {
        int n = SSL_read(ssl, buf + got, (int)(sizeof buf - 1 - got));
        if (n <= 0) break;
        got += (size_t)n;
        buf[got] = 0;
    }
    CHECK(strstr(buf, "* CAPABILITY") != NULL);
    CHECK(strstr(buf, "a OK") != NULL);
    SSL_shutdown(ssl);
    SSL_free(ssl);
    SSL_CTX_free(c);
    close(fd);
    mailsrv_ctx_free(ctx);
}

static void connect_over_own_socket_with_a_pinned_key(void) {
    mailsrv_ctx *ctx = new_ctx(1, MAILSRV_DISPATCH_THREAD);
    const char *mail = testbed_env("MAILSRV_TEST_MAIL_ADDR");
    uint16_t port = port_of("IMAPS");
    /* The key to pin (say, the one the user accepted): OpenSSL fetches the certificate,
     * mailsrv hashes its SubjectPublicKeyInfo. */
    int fd0 = tcp_connect(mail, port);
    SSL_CTX *c = client_ctx(0);
    SSL *ssl = SSL_new(c);
    SSL_set_fd(ssl, fd0);
    SSL_set_tlsext_host_name(ssl, "mail.example.net");
    uint8_t pin[32] = {0};
    if (SSL_connect(ssl) == 1) {
        X509 *leaf = SSL_get1_peer_certificate(ssl);
        unsigned char *der = NULL;
        int len = i2d_X509(leaf, &der);
        CHECK_EQ_INT(mailsrv_cert_spki_sha256(der, (size_t)len, pin), MAILSRV_STATUS_OK);
        OPENSSL_free(der);
        X509_free(leaf);
        SSL_shutdown(ssl);
    }
    SSL_free(ssl);
    SSL_CTX_free(c);
    close(fd0);

    int fd = tcp_connect(mail, port);
    CHECK(fd >= 0);
    mailsrv_connect_opts *o = NULL;
    mailsrv_connect_opts_new("mail.example.net", port, MAILSRV_SECURITY_IMPLICIT_TLS_IMAP, &o);
    CHECK_EQ_INT(mailsrv_connect_opts_set_fd(o, fd), MAILSRV_STATUS_OK);
    CHECK_EQ_INT(mailsrv_connect_opts_add_pin_sha256(o, pin, sizeof pin), MAILSRV_STATUS_OK);
    mailsrv_tls_stream *s = NULL;
    char err[256];
    CHECK_EQ_INT(mailsrv_connect(ctx, o, &s, err, sizeof err), MAILSRV_STATUS_OK);
    close(fd); /* ours: mailsrv works on its own duplicate */
    if (s) {
        const char cmd[] = "a1 NOOP\r\n";
        size_t n = 0;
        CHECK_EQ_INT(mailsrv_tls_stream_write(s, (const uint8_t *)cmd, strlen(cmd), &n), MAILSRV_STATUS_OK);
        char buf[512] = {0};
        CHECK_EQ_INT(mailsrv_tls_stream_read(s, (uint8_t *)buf, sizeof buf - 1, &n), MAILSRV_STATUS_OK);
        CHECK(strstr(buf, "a1 OK") != NULL);
    }
    mailsrv_tls_stream_free(s);
    /* A different pin: PIN_MISMATCH. */
    pin[0] ^= 0xff;
    mailsrv_connect_opts *o2 = NULL;
    mailsrv_connect_opts_new("mail.example.net", port, MAILSRV_SECURITY_IMPLICIT_TLS, &o2);
    mailsrv_connect_opts_add_address(o2, mail, NULL, 0);
    mailsrv_connect_opts_add_pin_sha256(o2, pin, sizeof pin);
    CHECK_EQ_INT(mailsrv_connect(ctx, o2, &s, err, sizeof err), MAILSRV_STATUS_PIN_MISMATCH);
    CHECK(s == NULL);
    mailsrv_connect_opts_free(o2);
    mailsrv_connect_opts_free(o);
    mailsrv_ctx_free(ctx);
}

static int saved_status = -1;

static void on_saved(void *ud, mailsrv_request_id id, mailsrv_status st, const char *detail) {
    (void)ud;
    (void)id;
    (void)detail;
    saved_status = (int)st;
}

static mailsrv_change *change_check(mailsrv_ctx *ctx, mailsrv_history *h, uint64_t now) {
    mailsrv_change *c = NULL;
    char err[256];
    mailsrv_status st = mailsrv_srv_change_check(ctx, "insecure.test", MAILSRV_SERVICE_IMAPS, "old.example.net", 993,
                                                 MAILSRV_ORIGIN_SRV, h, now, 0, 0, &c, err, sizeof err);
    CHECK_EQ_INT(st, MAILSRV_STATUS_OK);
    return c;
}

static void ask_user_dialog_with_the_history_in_memory(void) {
    mailsrv_ctx *ctx = new_ctx(1, MAILSRV_DISPATCH_LOOP);
    uint16_t port = port_of("IMAPS");
    /* The client's account store holds the history as text: start from nothing. */
    mailsrv_history *h = NULL;
    CHECK_EQ_INT(mailsrv_history_import(NULL, 0, &h, NULL, 0), MAILSRV_STATUS_OK);
    CHECK_EQ_INT(mailsrv_history_observe(h, "insecure.test", MAILSRV_SERVICE_IMAPS, "mail.example.net", port,
                                         NOW - 8 * DAY),
                 MAILSRV_STATUS_OK);
    mailsrv_change *c = change_check(ctx, h, NOW);
    if (c) {
        CHECK_EQ_INT(mailsrv_change_decision(c), MAILSRV_DECISION_ASK_USER);
        CHECK_EQ_INT(mailsrv_change_reason(c), MAILSRV_REASON_UNVERIFIED_PERSISTED);
        const mailsrv_authenticity *a = mailsrv_change_authenticity(c);
        CHECK(a != NULL);
        if (a) {
            CHECK_EQ_INT(mailsrv_authenticity_verdict(a), MAILSRV_VERDICT_UNVERIFIED);
            CHECK_EQ_INT(mailsrv_authenticity_probe_status(a), MAILSRV_STATUS_NAME_MISMATCH);
            CHECK(mailsrv_authenticity_chain_len(a, 1) > 0);
        }
    }
    mailsrv_change_free(c);
    /* The user says no. */
    CHECK_EQ_INT(mailsrv_history_decline(h, "insecure.test", MAILSRV_SERVICE_IMAPS, "mail.example.net", port, NOW + 1),
                 MAILSRV_STATUS_OK);
    /* Kept in the client's store, read back later. */
    char *text = NULL;
    CHECK_EQ_INT(mailsrv_history_export(h, &text), MAILSRV_STATUS_OK);
    CHECK(text && strncmp(text, "mailsrv-history 2\n", 18) == 0);
    mailsrv_history *back = NULL;
    CHECK_EQ_INT(mailsrv_history_import((const uint8_t *)text, strlen(text), &back, NULL, 0), MAILSRV_STATUS_OK);
    mailsrv_string_free(text);
    c = change_check(ctx, back, NOW + DAY);
    if (c) {
        CHECK_EQ_INT(mailsrv_change_decision(c), MAILSRV_DECISION_NO_CHANGE);
        CHECK_EQ_INT(mailsrv_change_reason(c), MAILSRV_REASON_DECLINED);
    }
    mailsrv_change_free(c);
    size_t removed = 99;
    CHECK_EQ_INT(mailsrv_history_prune(back, NOW + 400 * DAY, &removed), MAILSRV_STATUS_OK);
    CHECK_EQ_INT(removed, 1);
    CHECK_EQ_INT(mailsrv_history_len(back), 0);
    /* A file, saved without blocking: the callback comes through the loop. */
    char path[256];
    snprintf(path, sizeof path, "/tmp/mailsrv-c-history-%d", (int)getpid());
    unlink(path);
    mailsrv_history *file = NULL;
    CHECK_EQ_INT(mailsrv_history_open(path, &file, NULL, 0), MAILSRV_STATUS_OK);
    mailsrv_history_observe(file, "example.com", MAILSRV_SERVICE_IMAPS, "mail.example.net", 993, NOW);
    CHECK_EQ_INT(mailsrv_history_save_async(ctx, file, on_saved, NULL, NULL), MAILSRV_STATUS_OK);
    mailsrv_history_free(file);
    struct pollfd pfd = {mailsrv_ctx_notify_fd(ctx), POLLIN, 0};
    for (int i = 0; i < 100 && saved_status < 0; i++) {
        if (poll(&pfd, 1, 100) > 0) mailsrv_ctx_dispatch(ctx, NULL);
    }
    CHECK_EQ_INT(saved_status, MAILSRV_STATUS_OK);
    /* A newer mailsrv's file: refused, and left as it is. */
    FILE *f = fopen(path, "w");
    fputs("mailsrv-history 5\n", f);
    fclose(f);
    CHECK_EQ_INT(mailsrv_history_open(path, &file, NULL, 0), MAILSRV_STATUS_UNSUPPORTED_VERSION);
    CHECK(file == NULL);
    f = fopen(path, "r");
    char line[64] = {0};
    CHECK(f && fgets(line, sizeof line, f));
    if (f) fclose(f);
    CHECK_EQ_STR(line, "mailsrv-history 5\n");
    unlink(path);
    mailsrv_history_free(back);
    mailsrv_history_free(h);
    mailsrv_ctx_free(ctx);
}

int main(void) {
    TEST(own_probe_and_reconnect_give_the_verdict);
    TEST(starttls_plain_fd_then_openssl);
    TEST(connect_over_own_socket_with_a_pinned_key);
    TEST(ask_user_dialog_with_the_history_in_memory);
    HARNESS_END();
}
