/*
 * loadgen: a small closed-loop HTTPS load generator for kvmock's benchmarks.
 *
 * T worker threads share C keep-alive TLS connections (C/T each, driven by one
 * epoll loop per thread, non-blocking OpenSSL). Every connection does one full
 * TLS handshake, then sends the same request again and again (HTTP/1.1, one
 * request in flight per connection), reads the Content-Length-framed answer,
 * checks its status and records its latency in a log-linear histogram.
 * Requests that complete during the warm-up are not counted.
 *
 * Placeholders in the path: {seq} is replaced by a run-wide counter (from
 * --seq-start), {rand} by a random number below --rand-max; both are printed
 * as 7 zero-padded digits so that names sort like numbers.
 *
 * Output: human-readable lines on stderr and one machine-readable line on
 * stdout:
 *   RESULT ok=N errors=N conn_errors=N reconnects=N seconds=S rps=R
 *          mean_ms=.. p50_ms=.. p90_ms=.. p99_ms=.. max_ms=..
 * Exit status: 0 when every counted response had the expected status and at
 * least one was counted; 1 otherwise; 2 on bad usage or set-up failure.
 *
 * Build: cc -O2 -o loadgen loadgen.c -lssl -lcrypto -lpthread
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- options --------------------------------------------------------------------- */

struct opts {
    const char *host;        /* address to connect to */
    int port;
    const char *sni;         /* TLS server name and certificate name to verify */
    const char *host_header; /* Host: header; default sni:port */
    const char *cafile;      /* verify against this CA; without it, no verification */
    int plain;               /* plain HTTP instead of TLS */
    const char *method;
    const char *path;
    const char *token;
    char *body;
    size_t body_len;
    const char *extra_header;
    int expect;
    int conns;
    int threads;
    double duration;
    double warmup;
    long long count;         /* stop after this many requests (0: by time) */
    long long seq_start;
    long long rand_max;
    double timeout;          /* per request, seconds */
    int quiet;
};

static struct opts O = {
    .host = "127.0.0.1",
    .port = 0,
    .sni = "localhost",
    .method = "GET",
    .path = "/healthz",
    .expect = 200,
    .conns = 1,
    .threads = 1,
    .duration = 5,
    .warmup = 1,
    .rand_max = 1,
    .timeout = 30,
};

/* ---- time and histogram ------------------------------------------------------------ */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Microsecond values: exact below 128 us, then 64 sub-buckets per power of two
 * (relative error below 1.6 %), up to 2^42 us. */
#define H_LINEAR 128
#define H_SUB 64
#define H_BUCKETS (H_LINEAR + (42 - 7) * H_SUB)

struct hist {
    uint64_t b[H_BUCKETS];
    uint64_t n;
    uint64_t sum_us;
    uint64_t max_us;
};

static int h_index(uint64_t us)
{
    if (us < H_LINEAR)
        return (int)us;
    int msb = 63 - __builtin_clzll(us); /* >= 7 */
    if (msb >= 42)
        return H_BUCKETS - 1;
    int shift = msb - 6;
    return H_LINEAR + (msb - 7) * H_SUB + (int)((us >> shift) - H_SUB);
}

/* Upper bound of a bucket (the value reported for percentiles: conservative). */
static double h_upper(int i)
{
    if (i < H_LINEAR)
        return i + 1;
    int msb = (i - H_LINEAR) / H_SUB + 7;
    int sub = (i - H_LINEAR) % H_SUB;
    int shift = msb - 6;
    return (double)((uint64_t)(H_SUB + sub + 1) << shift);
}

static void h_add(struct hist *h, uint64_t us)
{
    h->b[h_index(us)]++;
    h->n++;
    h->sum_us += us;
    if (us > h->max_us)
        h->max_us = us;
}

static void h_merge(struct hist *into, const struct hist *from)
{
    for (int i = 0; i < H_BUCKETS; i++)
        into->b[i] += from->b[i];
    into->n += from->n;
    into->sum_us += from->sum_us;
    if (from->max_us > into->max_us)
        into->max_us = from->max_us;
}

static double h_pct_ms(const struct hist *h, double p)
{
    if (h->n == 0)
        return 0;
    uint64_t want = (uint64_t)(p / 100.0 * (double)h->n + 0.999999);
    if (want < 1)
        want = 1;
    uint64_t seen = 0;
    for (int i = 0; i < H_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= want) {
            double v = h_upper(i);
            if (v > (double)h->max_us)
                v = (double)h->max_us;
            return v / 1000.0;
        }
    }
    return (double)h->max_us / 1000.0;
}

/* ---- connections -------------------------------------------------------------------- */

enum cstate { C_IDLE, C_CONNECT, C_HANDSHAKE, C_SEND, C_RECV, C_DEAD };

struct worker;

struct conn {
    struct worker *w;
    int fd;
    SSL *ssl;
    enum cstate state;
    char *req;
    size_t req_len, req_off;
    char *rbuf;
    size_t rcap, rlen, scanned;
    size_t hdr_len;
    long long content_len;
    int status;
    int close_after;
    uint64_t t0;
    int fails; /* consecutive connection failures */
};

struct worker {
    int id;
    pthread_t th;
    int ep;
    struct conn *conns;
    int nconns;
    uint64_t rng;
    struct hist h;
    uint64_t ok, errors, conn_errors, reconnects, unexpected_shown;
    uint64_t status_count[600];
};

static SSL_CTX *g_ctx;
static struct sockaddr_storage g_addr;
static socklen_t g_addrlen;
static char g_host_header[512];
static uint64_t g_t_start, g_t_measure, g_t_end;
static atomic_llong g_issued;
static atomic_int g_stop;
static char *g_req_fixed; /* the whole request when the path has no placeholder */
static size_t g_req_fixed_len;

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static void conn_close(struct conn *c)
{
    if (c->ssl != NULL) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    c->rlen = c->scanned = 0;
}

static int conn_open(struct conn *c)
{
    c->fd = socket(g_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -1;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(c->fd, (struct sockaddr *)&g_addr, g_addrlen) != 0 && errno != EINPROGRESS) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET | EPOLLRDHUP, .data.ptr = c};
    if (epoll_ctl(c->w->ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    c->state = C_CONNECT;
    c->t0 = now_ns();
    return 0;
}

/* Build the request text. Returns a pointer valid until the next call on c. */
static void build_request(struct conn *c, long long ticket)
{
    if (g_req_fixed != NULL) {
        c->req = g_req_fixed;
        c->req_len = g_req_fixed_len;
        return;
    }
    char path[4096];
    size_t o = 0;
    for (const char *p = O.path; *p && o < sizeof(path) - 32; p++) {
        if (strncmp(p, "{seq}", 5) == 0) {
            o += (size_t)snprintf(path + o, sizeof(path) - o, "%07lld", O.seq_start + ticket);
            p += 4;
        } else if (strncmp(p, "{rand}", 6) == 0) {
            long long r = (long long)(xorshift(&c->w->rng) % (uint64_t)O.rand_max);
            o += (size_t)snprintf(path + o, sizeof(path) - o, "%07lld", r);
            p += 5;
        } else {
            path[o++] = *p;
        }
    }
    path[o] = '\0';
    static __thread char *buf;
    static __thread size_t cap;
    size_t need = strlen(path) + O.body_len + 1024 + (O.token ? strlen(O.token) : 0) +
                  (O.extra_header ? strlen(O.extra_header) : 0) + strlen(g_host_header);
    if (need > cap) {
        free(buf);
        cap = need;
        buf = malloc(cap);
        if (buf == NULL) {
            fprintf(stderr, "loadgen: out of memory\n");
            exit(2);
        }
    }
    int n = snprintf(buf, cap, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: kvmock-loadgen\r\n"
                     "Accept: application/json\r\n",
                     O.method, path, g_host_header);
    if (O.token)
        n += snprintf(buf + n, cap - n, "Authorization: Bearer %s\r\n", O.token);
    if (O.extra_header)
        n += snprintf(buf + n, cap - n, "%s\r\n", O.extra_header);
    if (O.body != NULL)
        n += snprintf(buf + n, cap - n, "Content-Type: application/json\r\nContent-Length: %zu\r\n",
                      O.body_len);
    n += snprintf(buf + n, cap - n, "\r\n");
    if (O.body != NULL) {
        memcpy(buf + n, O.body, O.body_len);
        n += (int)O.body_len;
    }
    c->req = buf;
    c->req_len = (size_t)n;
}

/* Start the next request on an open connection, or go idle when done. */
static int start_request(struct conn *c)
{
    if (atomic_load(&g_stop)) {
        c->state = C_IDLE;
        return 0;
    }
    long long ticket = atomic_fetch_add(&g_issued, 1);
    if (O.count > 0 && ticket >= O.count) {
        c->state = C_IDLE;
        return 0;
    }
    /* One request per connection at a time, and the same buffer until it is sent
     * (OpenSSL wants the same arguments when a write is retried). With {seq} or
     * {rand} the buffer is per thread, so copy it. */
    build_request(c, ticket);
    if (g_req_fixed == NULL) {
        char *copy = malloc(c->req_len);
        if (copy == NULL)
            return -1;
        memcpy(copy, c->req, c->req_len);
        c->req = copy;
    }
    c->req_off = 0;
    c->rlen = c->scanned = 0;
    c->hdr_len = 0;
    c->content_len = -1;
    c->status = 0;
    c->close_after = 0;
    c->state = C_SEND;
    c->t0 = now_ns();
    return 1;
}

static void free_request(struct conn *c)
{
    if (g_req_fixed == NULL && c->req != NULL)
        free(c->req);
    c->req = NULL;
}

static void conn_fail(struct conn *c, const char *why)
{
    struct worker *w = c->w;
    if (c->state == C_SEND || c->state == C_RECV)
        free_request(c);
    uint64_t t = now_ns();
    if (t >= g_t_measure && t <= g_t_end && !atomic_load(&g_stop)) {
        w->conn_errors++;
        if (w->conn_errors <= 3 && !O.quiet)
            fprintf(stderr, "loadgen: connection error: %s\n", why);
    }
    unsigned long e;
    while ((e = ERR_get_error()) != 0) {
        if (w->conn_errors <= 3 && !O.quiet && t >= g_t_measure) {
            char buf[256];
            ERR_error_string_n(e, buf, sizeof(buf));
            fprintf(stderr, "loadgen:   %s\n", buf);
        }
    }
    conn_close(c);
    c->state = C_DEAD;
    if (++c->fails > 50) {
        if (!O.quiet)
            fprintf(stderr, "loadgen: giving up on a connection after 50 failures\n");
        return;
    }
    if (atomic_load(&g_stop))
        return;
    w->reconnects++;
    if (c->fails > 3)
        usleep(10000);
    if (conn_open(c) != 0)
        c->state = C_DEAD;
}

/* Parse what has arrived. 1: a whole response is here; 0: need more; -1: bad. */
static int parse_response(struct conn *c)
{
    if (c->hdr_len == 0) {
        size_t from = c->scanned > 3 ? c->scanned - 3 : 0;
        char *end = memmem(c->rbuf + from, c->rlen - from, "\r\n\r\n", 4);
        c->scanned = c->rlen;
        if (end == NULL)
            return c->rlen > 65536 ? -1 : 0;
        c->hdr_len = (size_t)(end - c->rbuf) + 4;
        if (c->rlen < 12 || strncmp(c->rbuf, "HTTP/1.", 7) != 0)
            return -1;
        c->status = atoi(c->rbuf + 9);
        if (c->rbuf[7] == '0')
            c->close_after = 1;
        /* headers */
        char *p = memchr(c->rbuf, '\n', c->hdr_len);
        while (p != NULL && (size_t)(p + 1 - c->rbuf) < c->hdr_len - 2) {
            char *line = p + 1;
            char *eol = memchr(line, '\n', c->hdr_len - (size_t)(line - c->rbuf));
            if (eol == NULL)
                break;
            size_t ll = (size_t)(eol - line);
            if (ll > 15 && strncasecmp(line, "Content-Length:", 15) == 0)
                c->content_len = strtoll(line + 15, NULL, 10);
            else if (ll > 11 && strncasecmp(line, "Connection:", 11) == 0 &&
                     memmem(line, ll, "close", 5) != NULL)
                c->close_after = 1;
            p = eol;
        }
        if (c->content_len < 0) {
            if (c->status == 204 || c->status == 304 || (c->status >= 100 && c->status < 200))
                c->content_len = 0;
            else
                return -1; /* kvmock always sends Content-Length */
        }
    }
    return c->rlen >= c->hdr_len + (size_t)c->content_len ? 1 : 0;
}

static void finish_response(struct conn *c)
{
    struct worker *w = c->w;
    uint64_t t = now_ns();
    free_request(c);
    c->fails = 0;
    if (t < g_t_measure || t > g_t_end)
        return;
    if (c->status >= 0 && c->status < 600)
        w->status_count[c->status]++;
    if (c->status == O.expect) {
        w->ok++;
        h_add(&w->h, (t - c->t0) / 1000);
    } else {
        w->errors++;
        if (w->unexpected_shown++ < 2 && !O.quiet) {
            size_t bl = c->rlen - c->hdr_len;
            fprintf(stderr, "loadgen: unexpected status %d (expected %d): %.*s\n", c->status,
                    O.expect, (int)(bl > 300 ? 300 : bl), c->rbuf + c->hdr_len);
        }
    }
}

/* Advance a connection as far as it goes without blocking. */
static void drive(struct conn *c)
{
    for (;;) {
        switch (c->state) {
        case C_IDLE:
        case C_DEAD:
            return;
        case C_CONNECT: {
            int err = 0;
            socklen_t el = sizeof(err);
            if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err != 0) {
                if (err == EINPROGRESS)
                    return;
                conn_fail(c, err ? strerror(err) : "connect");
                return;
            }
            if (O.plain) {
                if (start_request(c) < 0)
                    { conn_fail(c, "out of memory"); return; }
                break;
            }
            c->ssl = SSL_new(g_ctx);
            if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1)
                { conn_fail(c, "SSL_new"); return; }
            SSL_set_tlsext_host_name(c->ssl, O.sni);
            if (O.cafile)
                SSL_set1_host(c->ssl, O.sni);
            SSL_set_connect_state(c->ssl);
            c->state = C_HANDSHAKE;
            break;
        }
        case C_HANDSHAKE: {
            int r = SSL_do_handshake(c->ssl);
            if (r == 1) {
                if (start_request(c) < 0)
                    { conn_fail(c, "out of memory"); return; }
                break;
            }
            int e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                return;
            { conn_fail(c, "TLS handshake"); return; }
        }
        case C_SEND: {
            if (O.plain) {
                ssize_t r = send(c->fd, c->req + c->req_off, c->req_len - c->req_off,
                                 MSG_NOSIGNAL);
                if (r < 0) {
                    if (errno == EAGAIN)
                        return;
                    { conn_fail(c, strerror(errno)); return; }
                }
                c->req_off += (size_t)r;
                if (c->req_off == c->req_len)
                    c->state = C_RECV;
                break;
            }
            int r = SSL_write(c->ssl, c->req, (int)c->req_len);
            if (r > 0) {
                c->state = C_RECV;
                break;
            }
            int e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                return;
            { conn_fail(c, "TLS write"); return; }
        }
        case C_RECV: {
            if (c->rcap - c->rlen < 16384) {
                size_t nc = c->rcap ? c->rcap * 2 : 65536;
                char *nb = realloc(c->rbuf, nc);
                if (nb == NULL)
                    { conn_fail(c, "out of memory"); return; }
                c->rbuf = nb;
                c->rcap = nc;
            }
            int r;
            if (O.plain) {
                ssize_t n = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
                if (n < 0 && errno == EAGAIN)
                    return;
                if (n <= 0)
                    { conn_fail(c, n == 0 ? "closed by server" : strerror(errno)); return; }
                r = (int)n;
            } else {
                r = SSL_read(c->ssl, c->rbuf + c->rlen, (int)(c->rcap - c->rlen));
                if (r <= 0) {
                    int e = SSL_get_error(c->ssl, r);
                    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                        return;
                    { conn_fail(c, e == SSL_ERROR_ZERO_RETURN ? "closed by server"
                                                                   : "TLS read"); return; }
                }
            }
            c->rlen += (size_t)r;
            int pr = parse_response(c);
            if (pr < 0)
                { conn_fail(c, "malformed response"); return; }
            if (pr == 0)
                break;
            finish_response(c);
            if (c->close_after) {
                conn_close(c);
                c->w->reconnects++;
                if (atomic_load(&g_stop) || conn_open(c) != 0) {
                    c->state = C_DEAD;
                    return;
                }
                return; /* wait for the connect to finish */
            }
            if (start_request(c) < 0)
                { conn_fail(c, "out of memory"); return; }
            break;
        }
        }
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    w->ep = epoll_create1(EPOLL_CLOEXEC);
    if (w->ep < 0) {
        perror("epoll_create1");
        exit(2);
    }
    for (int i = 0; i < w->nconns; i++) {
        struct conn *c = &w->conns[i];
        c->w = w;
        c->fd = -1;
        if (conn_open(c) != 0) {
            perror("loadgen: connect");
            c->state = C_DEAD;
        }
    }
    struct epoll_event evs[64];
    uint64_t timeout_ns = (uint64_t)(O.timeout * 1e9);
    uint64_t last_check = now_ns();
    for (;;) {
        uint64_t t = now_ns();
        if (t >= g_t_end)
            break;
        int active = 0;
        for (int i = 0; i < w->nconns; i++)
            active += w->conns[i].state != C_IDLE && w->conns[i].state != C_DEAD;
        if (!active)
            break;
        int n = epoll_wait(w->ep, evs, 64, 50);
        for (int i = 0; i < n; i++)
            drive(evs[i].data.ptr);
        t = now_ns();
        if (t - last_check > 200000000ull) {
            last_check = t;
            for (int i = 0; i < w->nconns; i++) {
                struct conn *c = &w->conns[i];
                if (c->state != C_IDLE && c->state != C_DEAD && t - c->t0 > timeout_ns) {
                    conn_fail(c, "request timed out");
                    drive(c);
                }
            }
        }
    }
    atomic_store(&g_stop, 1);
    for (int i = 0; i < w->nconns; i++) {
        if (w->conns[i].state == C_SEND || w->conns[i].state == C_RECV)
            free_request(&w->conns[i]);
        conn_close(&w->conns[i]);
        free(w->conns[i].rbuf);
    }
    close(w->ep);
    return NULL;
}

/* ---- main ------------------------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr,
            "usage: loadgen --port P [options]\n"
            "  --host ADDR         address to connect to (127.0.0.1)\n"
            "  --sni NAME          TLS server name, verified name and Host (localhost)\n"
            "  --host-header H     Host header (default SNI:PORT)\n"
            "  --cafile FILE       verify the server against this CA (default: no verification)\n"
            "  --plain             plain HTTP, no TLS\n"
            "  -m, --method M      (GET)\n"
            "  -p, --path PATH     (/healthz); {seq} and {rand} are replaced per request\n"
            "  --token TOKEN       sent as Authorization: Bearer TOKEN\n"
            "  --token-file FILE   the same, read from FILE\n"
            "  -b, --body TEXT     request body (sent as application/json)\n"
            "  --body-file FILE    request body from FILE\n"
            "  -H, --header 'K: V' one extra header\n"
            "  -s, --expect N      expected status (200)\n"
            "  -c, --conns N       connections in total (1)\n"
            "  -t, --threads N     worker threads (1)\n"
            "  -d, --duration S    measured seconds (5)\n"
            "  -w, --warmup S      unmeasured seconds first (1)\n"
            "  -n, --count N       stop after N requests (warm-up should be 0)\n"
            "  --seq-start N       first {seq} value (0)\n"
            "  --rand-max N        {rand} is below N (1)\n"
            "  --timeout S         per-request timeout (30)\n"
            "  -q, --quiet         only the RESULT line\n");
    exit(2);
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        exit(2);
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        if (r == 0)
            break;
        n += r;
    }
    fclose(f);
    buf = realloc(buf, n + 1);
    buf[n] = '\0';
    *len = n;
    return buf;
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"host", 1, 0, 1},       {"port", 1, 0, 2},       {"sni", 1, 0, 3},
        {"host-header", 1, 0, 4}, {"cafile", 1, 0, 5},    {"plain", 0, 0, 6},
        {"method", 1, 0, 'm'},   {"path", 1, 0, 'p'},     {"token", 1, 0, 7},
        {"token-file", 1, 0, 8}, {"body", 1, 0, 'b'},     {"body-file", 1, 0, 9},
        {"header", 1, 0, 'H'},   {"expect", 1, 0, 's'},   {"conns", 1, 0, 'c'},
        {"threads", 1, 0, 't'},  {"duration", 1, 0, 'd'}, {"warmup", 1, 0, 'w'},
        {"count", 1, 0, 'n'},    {"seq-start", 1, 0, 10}, {"rand-max", 1, 0, 11},
        {"timeout", 1, 0, 12},   {"quiet", 0, 0, 'q'},    {"help", 0, 0, 'h'},
        {0, 0, 0, 0},
    };
    int ch, duration_set = 0;
    while ((ch = getopt_long(argc, argv, "m:p:b:H:s:c:t:d:w:n:qh", lo, NULL)) != -1) {
        switch (ch) {
        case 1: O.host = optarg; break;
        case 2: O.port = atoi(optarg); break;
        case 3: O.sni = optarg; break;
        case 4: O.host_header = optarg; break;
        case 5: O.cafile = optarg; break;
        case 6: O.plain = 1; break;
        case 'm': O.method = optarg; break;
        case 'p': O.path = optarg; break;
        case 7: O.token = optarg; break;
        case 8: {
            size_t l;
            char *t = read_file(optarg, &l);
            while (l > 0 && (t[l - 1] == '\n' || t[l - 1] == '\r' || t[l - 1] == ' '))
                t[--l] = '\0';
            O.token = t;
            break;
        }
        case 'b': O.body = optarg; O.body_len = strlen(optarg); break;
        case 9: O.body = read_file(optarg, &O.body_len); break;
        case 'H': O.extra_header = optarg; break;
        case 's': O.expect = atoi(optarg); break;
        case 'c': O.conns = atoi(optarg); break;
        case 't': O.threads = atoi(optarg); break;
        case 'd': O.duration = atof(optarg); duration_set = 1; break;
        case 'w': O.warmup = atof(optarg); break;
        case 'n': O.count = atoll(optarg); break;
        case 10: O.seq_start = atoll(optarg); break;
        case 11: O.rand_max = atoll(optarg); break;
        case 12: O.timeout = atof(optarg); break;
        case 'q': O.quiet = 1; break;
        default: usage();
        }
    }
    if (optind != argc || O.port <= 0 || O.conns < 1 || O.threads < 1 || O.rand_max < 1 ||
        O.duration <= 0 || O.warmup < 0)
        usage();
    if (O.count > 0 && !duration_set)
        O.duration = 3600; /* by count: an hour at most */
    if (O.threads > O.conns)
        O.threads = O.conns;
    signal(SIGPIPE, SIG_IGN);

    if (O.host_header)
        snprintf(g_host_header, sizeof(g_host_header), "%s", O.host_header);
    else
        snprintf(g_host_header, sizeof(g_host_header), "%s:%d", O.sni, O.port);

    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    char port[16];
    snprintf(port, sizeof(port), "%d", O.port);
    int gr = getaddrinfo(O.host, port, &hints, &ai);
    if (gr != 0) {
        fprintf(stderr, "loadgen: %s: %s\n", O.host, gai_strerror(gr));
        return 2;
    }
    memcpy(&g_addr, ai->ai_addr, ai->ai_addrlen);
    g_addrlen = ai->ai_addrlen;
    freeaddrinfo(ai);

    if (!O.plain) {
        g_ctx = SSL_CTX_new(TLS_client_method());
        if (g_ctx == NULL)
            return 2;
        SSL_CTX_set_min_proto_version(g_ctx, TLS1_2_VERSION);
        SSL_CTX_set_session_cache_mode(g_ctx, SSL_SESS_CACHE_OFF);
        if (O.cafile) {
            if (SSL_CTX_load_verify_locations(g_ctx, O.cafile, NULL) != 1) {
                fprintf(stderr, "loadgen: cannot load CA file %s\n", O.cafile);
                return 2;
            }
            SSL_CTX_set_verify(g_ctx, SSL_VERIFY_PEER, NULL);
        } else {
            SSL_CTX_set_verify(g_ctx, SSL_VERIFY_NONE, NULL);
        }
    }
    if (strstr(O.path, "{seq}") == NULL && strstr(O.path, "{rand}") == NULL) {
        struct conn tmp = {0};
        struct worker tw = {0};
        tmp.w = &tw;
        build_request(&tmp, 0);
        g_req_fixed = malloc(tmp.req_len);
        memcpy(g_req_fixed, tmp.req, tmp.req_len);
        g_req_fixed_len = tmp.req_len;
    }

    struct worker *ws = calloc((size_t)O.threads, sizeof(*ws));
    struct conn *cs = calloc((size_t)O.conns, sizeof(*cs));
    if (ws == NULL || cs == NULL)
        return 2;
    g_t_start = now_ns();
    g_t_measure = g_t_start + (uint64_t)(O.warmup * 1e9);
    g_t_end = g_t_measure + (uint64_t)(O.duration * 1e9);
    int given = 0;
    for (int i = 0; i < O.threads; i++) {
        ws[i].id = i;
        ws[i].rng = 0x9E3779B97F4A7C15ull ^ ((uint64_t)(i + 1) * 0xD1B54A32D192ED03ull) ^ now_ns();
        int n = O.conns / O.threads + (i < O.conns % O.threads);
        ws[i].conns = cs + given;
        ws[i].nconns = n;
        given += n;
    }
    for (int i = 0; i < O.threads; i++) {
        if (pthread_create(&ws[i].th, NULL, worker_main, &ws[i]) != 0) {
            perror("pthread_create");
            return 2;
        }
    }
    for (int i = 0; i < O.threads; i++)
        pthread_join(ws[i].th, NULL);
    uint64_t t_done = now_ns();

    struct hist h = {0};
    uint64_t ok = 0, errors = 0, cerr = 0, reconn = 0;
    uint64_t st[600] = {0};
    for (int i = 0; i < O.threads; i++) {
        h_merge(&h, &ws[i].h);
        ok += ws[i].ok;
        errors += ws[i].errors;
        cerr += ws[i].conn_errors;
        reconn += ws[i].reconnects;
        for (int s = 0; s < 600; s++)
            st[s] += ws[i].status_count[s];
    }
    uint64_t t_stop = t_done < g_t_end ? t_done : g_t_end;
    double secs = t_stop > g_t_measure ? (double)(t_stop - g_t_measure) / 1e9 : 0;
    double rps = secs > 0 ? (double)ok / secs : 0;
    double mean = h.n ? (double)h.sum_us / (double)h.n / 1000.0 : 0;
    if (!O.quiet) {
        fprintf(stderr, "loadgen: %s %s x%d conns, %d threads: %llu ok, %llu errors, "
                        "%llu connection errors in %.2f s\n",
                O.method, O.path, O.conns, O.threads, (unsigned long long)ok,
                (unsigned long long)errors, (unsigned long long)cerr, secs);
        for (int s = 0; s < 600; s++)
            if (st[s] && s != O.expect)
                fprintf(stderr, "loadgen:   status %d: %llu\n", s, (unsigned long long)st[s]);
        fprintf(stderr, "loadgen: %.1f req/s, latency mean %.3f ms, p50 %.3f, p90 %.3f, "
                        "p99 %.3f, max %.3f\n",
                rps, mean, h_pct_ms(&h, 50), h_pct_ms(&h, 90), h_pct_ms(&h, 99),
                (double)h.max_us / 1000.0);
    }
    printf("RESULT ok=%llu errors=%llu conn_errors=%llu reconnects=%llu seconds=%.3f rps=%.1f "
           "mean_ms=%.3f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f\n",
           (unsigned long long)ok, (unsigned long long)errors, (unsigned long long)cerr,
           (unsigned long long)reconn, secs, rps, mean, h_pct_ms(&h, 50), h_pct_ms(&h, 90),
           h_pct_ms(&h, 99), (double)h.max_us / 1000.0);
    fflush(stdout);
    if (g_ctx)
        SSL_CTX_free(g_ctx);
    return (ok > 0 && errors == 0 && cerr == 0) ? 0 : 1;
}
