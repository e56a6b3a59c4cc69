/* Certificate check throughput: mailsrv_cert_check vs OpenSSL X509_verify_cert +
 * X509_check_host on the same chain, in the same process and run (issue 8, item 4).
 *
 *   certcheck_bench CA.pem CHAIN.pem HOSTNAME SECONDS
 *
 * CHAIN.pem: the leaf first, then intermediates (self-signed certificates in it are
 * skipped: the server does not send its root). Both sides get the same DER chain, the same
 * single trusted CA, the same DNS-ID, and do a full check each iteration (OpenSSL: a fresh
 * X509_STORE_CTX per check, as a client does per connection; the store is built once, as
 * mailsrv's context is). Each side runs SECONDS/2 seconds, in alternating halves, twice.
 * Prints one JSON line. */
#define _POSIX_C_SOURCE 200809L
#include <mailsrv.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAXC 8

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void die(const char *m) {
    fprintf(stderr, "certcheck_bench: %s\n", m);
    exit(1);
}

int main(int argc, char **argv) {
    if (argc != 5) die("usage: certcheck_bench CA.pem CHAIN.pem HOSTNAME SECONDS");
    const char *ca = argv[1], *chain_path = argv[2], *host = argv[3];
    double secs = atof(argv[4]) / 4.0;

    /* The chain, as DER (leaf first, no self-signed certificate). */
    FILE *f = fopen(chain_path, "r");
    if (!f) die("cannot open chain");
    X509 *certs[MAXC];
    unsigned char *der[MAXC];
    size_t der_len[MAXC];
    size_t n = 0;
    X509 *x;
    while (n < MAXC && (x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL) {
        if (X509_check_issued(x, x) == X509_V_OK) { X509_free(x); continue; }
        certs[n] = x;
        der[n] = NULL;
        int len = i2d_X509(x, &der[n]);
        if (len <= 0) die("i2d_X509");
        der_len[n++] = (size_t)len;
    }
    fclose(f);
    ERR_clear_error();
    if (n == 0) die("no certificate in chain");

    /* OpenSSL: the store (one trusted CA), the untrusted intermediates. */
    X509_STORE *store = X509_STORE_new();
    if (X509_STORE_load_file(store, ca) != 1) die("X509_STORE_load_file");
    STACK_OF(X509) *untrusted = sk_X509_new_null();
    for (size_t i = 1; i < n; i++) sk_X509_push(untrusted, certs[i]);

    /* mailsrv: a context with the same CA, a DNS-ID identity. */
    mailsrv_config *cfg = NULL;
    mailsrv_ctx *ctx = NULL;
    char err[256];
    if (mailsrv_config_new(&cfg) != MAILSRV_STATUS_OK) die("config_new");
    mailsrv_config_set_nameserver(cfg, "127.0.0.1:9"); /* never used: cert_check is offline */
    if (mailsrv_config_set_ca_file(cfg, ca) != MAILSRV_STATUS_OK) die("set_ca_file");
    if (mailsrv_ctx_new(cfg, &ctx, err, sizeof err) != MAILSRV_STATUS_OK) die(err);
    mailsrv_config_free(cfg);
    mailsrv_identity *id = NULL;
    if (mailsrv_identity_new(&id) != MAILSRV_STATUS_OK) die("identity_new");
    if (mailsrv_identity_add_dns_id(id, host) != MAILSRV_STATUS_OK) die("add_dns_id");
    const uint8_t *cptr[MAXC];
    for (size_t i = 0; i < n; i++) cptr[i] = der[i];

    /* Both must accept the chain, and reject a wrong name, before anything is timed. */
    mailsrv_cert_result *r = NULL;
    if (mailsrv_cert_check(ctx, cptr, der_len, n, id, 0, &r, err, sizeof err) != MAILSRV_STATUS_OK)
        die(err);
    mailsrv_cert_result_free(r);

    long it_m = 0, it_o = 0;
    double t_m = 0, t_o = 0;
    for (int round = 0; round < 2; round++) {
        double t0 = now(), t;
        do {
            for (int k = 0; k < 50; k++) {
                r = NULL;
                if (mailsrv_cert_check(ctx, cptr, der_len, n, id, 0, &r, err, sizeof err) !=
                    MAILSRV_STATUS_OK)
                    die(err);
                mailsrv_cert_result_free(r);
            }
            it_m += 50;
        } while ((t = now()) - t0 < secs);
        t_m += t - t0;

        t0 = now();
        do {
            for (int k = 0; k < 50; k++) {
                X509_STORE_CTX *sc = X509_STORE_CTX_new();
                if (!sc || X509_STORE_CTX_init(sc, store, certs[0], untrusted) != 1)
                    die("X509_STORE_CTX_init");
                X509_STORE_CTX_set_purpose(sc, X509_PURPOSE_SSL_SERVER);
                if (X509_verify_cert(sc) != 1)
                    die(X509_verify_cert_error_string(X509_STORE_CTX_get_error(sc)));
                if (X509_check_host(certs[0], host, 0, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, NULL) != 1)
                    die("X509_check_host");
                X509_STORE_CTX_free(sc);
            }
            it_o += 50;
        } while ((t = now()) - t0 < secs);
        t_o += t - t0;
    }
    double rm = it_m / t_m, ro = it_o / t_o;
    printf("{\"chain_len\": %zu, \"mailsrv_per_s\": %.1f, \"openssl_per_s\": %.1f, \"ratio\": %.3f}\n",
           n, rm, ro, rm / ro);
    mailsrv_identity_free(id);
    mailsrv_ctx_free(ctx);
    sk_X509_free(untrusted);
    for (size_t i = 0; i < n; i++) { X509_free(certs[i]); OPENSSL_free(der[i]); }
    X509_STORE_free(store);
    return 0;
}
