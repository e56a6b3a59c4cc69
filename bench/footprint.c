/* Footprint: RSS of a process before and after mailsrv_ctx_new (a context at rest), after
 * one discovery, and after N more (per-request growth).
 *
 *   footprint NS ANCHOR DOMAIN N      -> one JSON line, kB */
#define _POSIX_C_SOURCE 200809L
#include <mailsrv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long rss_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) v = atol(line + 6);
    if (f) fclose(f);
    return v;
}

int main(int argc, char **argv) {
    if (argc != 5) { fprintf(stderr, "usage: footprint NS ANCHOR DOMAIN N\n"); return 2; }
    int n = atoi(argv[4]);
    char err[256];
    long base = rss_kb();
    mailsrv_config *cfg = NULL;
    mailsrv_ctx *ctx = NULL;
    mailsrv_config_new(&cfg);
    mailsrv_config_set_nameserver(cfg, argv[1]);
    mailsrv_config_set_trust_anchor_file(cfg, argv[2]);
    if (mailsrv_ctx_new(cfg, &ctx, err, sizeof err) != MAILSRV_STATUS_OK) { fprintf(stderr, "%s\n", err); return 1; }
    mailsrv_config_free(cfg);
    long at_rest = rss_kb();
    mailsrv_discovery *d = NULL;
    if (mailsrv_srv_discover(ctx, argv[3], 0, 0, &d, err, sizeof err) != MAILSRV_STATUS_OK) { fprintf(stderr, "%s\n", err); return 1; }
    mailsrv_discovery_free(d);
    long after_one = rss_kb();
    for (int i = 0; i < n; i++) {
        d = NULL;
        if (mailsrv_srv_discover(ctx, argv[3], 0, 0, &d, err, sizeof err) != MAILSRV_STATUS_OK) { fprintf(stderr, "%s\n", err); return 1; }
        mailsrv_discovery_free(d);
    }
    long after_n = rss_kb();
    mailsrv_ctx_free(ctx);
    printf("{\"rss_base_kb\": %ld, \"rss_ctx_rest_kb\": %ld, \"rss_after_1_kb\": %ld, \"rss_after_n_kb\": %ld, \"n\": %d}\n",
           base, at_rest, after_one, after_n, n);
    return 0;
}
