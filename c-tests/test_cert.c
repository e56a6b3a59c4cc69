/* mailsrv_cert_check from C, the way a client with its own TLS stack uses it: DER chain in,
 * verdict out. Certificates come from the testbed's test CA (MAILSRV_TEST_CERTS). */
#define _POSIX_C_SOURCE 200809L
#include "mailsrv.h"
#include "harness.h"

/* Reads the certificates of a PEM file into DER buffers (base64 decode, no libcrypto). */
static int b64(int c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

static size_t load_pem(const char *name, uint8_t *der[4], size_t len[4]) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.pem", testbed_env("MAILSRV_TEST_CERTS"), name);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[256];
    size_t n = 0;
    int in_cert = 0;
    unsigned acc = 0;
    int bits = 0;
    while (fgets(line, sizeof line, f) && n < 4) {
        if (strncmp(line, "-----BEGIN CERTIFICATE-----", 27) == 0) {
            in_cert = 1;
            der[n] = malloc(8192);
            len[n] = 0;
            acc = 0;
            bits = 0;
        } else if (strncmp(line, "-----END CERTIFICATE-----", 25) == 0) {
            in_cert = 0;
            n++;
        } else if (in_cert) {
            for (char *p = line; *p; p++) {
                int v = b64((unsigned char)*p);
                if (v < 0) continue;
                acc = (acc << 6) | (unsigned)v;
                bits += 6;
                if (bits >= 8) {
                    bits -= 8;
                    der[n][len[n]++] = (uint8_t)(acc >> bits);
                }
            }
        }
    }
    fclose(f);
    return n;
}

static mailsrv_status check(const char *cert, const char *service, const char *domain, const char *dns_id,
                            char *matched, size_t matched_len) {
    mailsrv_config *cfg = NULL;
    mailsrv_ctx *ctx = NULL;
    mailsrv_identity *id = NULL;
    mailsrv_cert_result *r = NULL;
    char err[512];
    uint8_t *der[4] = {0};
    size_t len[4] = {0};
    size_t n = load_pem(cert, der, len);
    CHECK(n >= 1);
    mailsrv_config_new(&cfg);
    mailsrv_config_set_nameserver(cfg, "127.0.0.1");
    mailsrv_config_set_ca_file(cfg, testbed_env("MAILSRV_TEST_CA"));
    CHECK_EQ_INT(mailsrv_ctx_new(cfg, &ctx, err, sizeof err), MAILSRV_STATUS_OK);
    mailsrv_config_free(cfg);
    mailsrv_identity_new(&id);
    if (service) CHECK_EQ_INT(mailsrv_identity_add_srv_id(id, service, domain), MAILSRV_STATUS_OK);
    if (dns_id) CHECK_EQ_INT(mailsrv_identity_add_dns_id(id, dns_id), MAILSRV_STATUS_OK);
    const uint8_t *certs[4] = {der[0], der[1], der[2], der[3]};
    mailsrv_status st = mailsrv_cert_check(ctx, certs, len, n, id, 0, &r, err, sizeof err);
    if (st == MAILSRV_STATUS_OK) {
        snprintf(matched, matched_len, "%s", mailsrv_cert_result_matched(r));
        CHECK(r != NULL);
    } else {
        snprintf(matched, matched_len, "%s", err);
        CHECK(r == NULL);
        CHECK(strlen(err) > 0);
    }
    mailsrv_cert_result_free(r);
    mailsrv_identity_free(id);
    mailsrv_ctx_free(ctx);
    for (size_t i = 0; i < n; i++) free(der[i]);
    return st;
}

static void test_srv_id_certificate(void) {
    char m[512];
    CHECK_EQ_INT(check("srvid-imaps-example-com", "imaps", "example.com", NULL, m, sizeof m), MAILSRV_STATUS_OK);
    CHECK_EQ_STR(m, "SRV-ID _imaps.example.com");
    CHECK_EQ_INT(check("srvid-imaps-example-com", NULL, NULL, "example.com", m, sizeof m),
                 MAILSRV_STATUS_NAME_MISMATCH); /* T-SRVID-13 */
}

static void test_precise_reasons(void) {
    char m[512];
    CHECK_EQ_INT(check("expired", NULL, NULL, "mail.example.net", m, sizeof m), MAILSRV_STATUS_CERT_EXPIRED);
    CHECK_EQ_INT(check("untrusted", NULL, NULL, "mail.example.net", m, sizeof m), MAILSRV_STATUS_UNKNOWN_ISSUER);
    CHECK_EQ_INT(check("wrong-name", NULL, NULL, "mail.example.net", m, sizeof m), MAILSRV_STATUS_NAME_MISMATCH);
    CHECK_EQ_INT(check("nc-srvid-outside", "imaps", "example.com", NULL, m, sizeof m), MAILSRV_STATUS_NAME_CONSTRAINT);
    CHECK(mailsrv_status_is_cert_error(MAILSRV_STATUS_CERT_EXPIRED));
}

int main(void) {
    TEST(test_srv_id_certificate);
    TEST(test_precise_reasons);
    HARNESS_END();
}
