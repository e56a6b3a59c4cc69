/* example_discover: what a mail client does at account setup, in C.
 *
 *   example_discover ADDRESS [NAMESERVER [TRUST_ANCHOR_FILE]]
 *
 * Discovers the IMAP/POP3/submission servers of ADDRESS, prints each service with its DNSSEC
 * state, and names the servers a client would configure. Exit status 0 when a server for
 * reading mail was found. Build: cc example_discover.c $(pkg-config --cflags --libs mailsrv) */
#include <stdio.h>

#include "mailsrv.h"

int main(int argc, char **argv) {
    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: %s ADDRESS [NAMESERVER [TRUST_ANCHOR_FILE]]\n", argv[0]);
        return 2;
    }
    mailsrv_config *cfg = NULL;
    mailsrv_ctx *ctx = NULL;
    mailsrv_discovery *d = NULL;
    char err[256];

    mailsrv_config_new(&cfg);
    if (argc > 2 && mailsrv_config_set_nameserver(cfg, argv[2]) != MAILSRV_STATUS_OK) {
        fprintf(stderr, "bad nameserver %s\n", argv[2]);
        return 2;
    }
    if (argc > 3) mailsrv_config_set_trust_anchor_file(cfg, argv[3]);
    mailsrv_status st = mailsrv_ctx_new(cfg, &ctx, err, sizeof err);
    mailsrv_config_free(cfg);
    if (st != MAILSRV_STATUS_OK) {
        fprintf(stderr, "mailsrv_ctx_new: %s: %s\n", mailsrv_status_str(st), err);
        return 1;
    }

    st = mailsrv_srv_discover(ctx, argv[1], 0, 0, &d, err, sizeof err);
    if (st != MAILSRV_STATUS_OK) {
        fprintf(stderr, "discovery failed: %s: %s\n", mailsrv_status_str(st), err);
        mailsrv_ctx_free(ctx);
        return 1;
    }
    printf("[C API] mailsrv_srv_discover(\"%s\") -> mail domain %s\n", argv[1], mailsrv_discovery_domain(d));
    for (size_t i = 0; i < mailsrv_discovery_services_len(d); i++) {
        const mailsrv_srv_set *s = mailsrv_discovery_service_get(d, i);
        printf("  %-12s %-14s DNSSEC %-13s", mailsrv_service_name(mailsrv_srv_set_service(s)),
               mailsrv_srv_state_name(mailsrv_srv_set_state(s)), mailsrv_dnssec_name(mailsrv_srv_set_dnssec(s)));
        if (mailsrv_srv_set_status(s) != MAILSRV_STATUS_OK) printf(" (%s)", mailsrv_srv_set_detail(s));
        for (size_t j = 0; j < mailsrv_srv_set_endpoints_len(s); j++) {
            const mailsrv_endpoint *e = mailsrv_srv_set_endpoint_get(s, j);
            printf(" %s:%u", mailsrv_endpoint_target(e), (unsigned)mailsrv_endpoint_port(e));
        }
        printf("\n");
    }
    const mailsrv_srv_set *read = mailsrv_discovery_preferred(d, MAILSRV_PURPOSE_ACCESS);
    const mailsrv_srv_set *send = mailsrv_discovery_preferred(d, MAILSRV_PURPOSE_SUBMISSION);
    if (read)
        printf("  -> read mail with %s at %s\n", mailsrv_service_name(mailsrv_srv_set_service(read)),
               mailsrv_endpoint_target(mailsrv_srv_set_endpoint_get(read, 0)));
    if (send)
        printf("  -> send mail with %s at %s\n", mailsrv_service_name(mailsrv_srv_set_service(send)),
               mailsrv_endpoint_target(mailsrv_srv_set_endpoint_get(send, 0)));
    int rc = read ? 0 : 1;
    mailsrv_discovery_free(d);
    mailsrv_ctx_free(ctx);
    return rc;
}
