/*
 * kvmock-healthcheck: the container's HEALTHCHECK probe.
 *
 * The scratch image has no shell, curl or wget, so this tiny program, linked
 * statically in the build stage, asks kvmock itself:
 *
 *     GET /healthz HTTP/1.0   to 127.0.0.1:PORT
 *
 * PORT is the first argument, else $KVMOCK_HTTP_PORT, else 8080 (kvmock's
 * defaults and environment, docs in the README). Exit 0 when the answer's
 * status is 200, 1 otherwise (Docker's "unhealthy"). Plain sockets, numeric
 * address only (no NSS, no getaddrinfo), a 3-second timeout on every step.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static int parse_port(const char *s)
{
    char *end = NULL;
    long v;
    if (s == NULL || *s == '\0')
        return -1;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < 1 || v > 65535)
        return -1;
    return (int)v;
}

int main(int argc, char **argv)
{
    const char *arg = argc > 1 ? argv[1] : getenv("KVMOCK_HTTP_PORT");
    int port = (arg != NULL && *arg != '\0') ? parse_port(arg) : 8080;
    if (port < 0) {
        fprintf(stderr, "kvmock-healthcheck: bad port '%s'\n", arg);
        return 1;
    }

    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        perror("kvmock-healthcheck: socket");
        return 1;
    }
    struct timeval tv = {.tv_sec = 3, .tv_usec = 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));

    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        fprintf(stderr, "kvmock-healthcheck: connect 127.0.0.1:%d: %s\n", port, strerror(errno));
        close(fd);
        return 1;
    }

    char req[128];
    int n = snprintf(req, sizeof(req), "GET /healthz HTTP/1.0\r\nHost: 127.0.0.1:%d\r\n\r\n", port);
    for (int off = 0; off < n;) {
        ssize_t w = write(fd, req + off, (size_t)(n - off));
        if (w <= 0) {
            fprintf(stderr, "kvmock-healthcheck: write: %s\n", strerror(errno));
            close(fd);
            return 1;
        }
        off += (int)w;
    }

    /* "HTTP/1.x 200 ..." fits in the first bytes; read until the status line is complete. */
    char buf[64];
    size_t len = 0;
    while (len < sizeof(buf) - 1 && memchr(buf, '\n', len) == NULL) {
        ssize_t r = read(fd, buf + len, sizeof(buf) - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = '\0';

    int major, minor, status;
    if (sscanf(buf, "HTTP/%d.%d %d", &major, &minor, &status) != 3) {
        fprintf(stderr, "kvmock-healthcheck: no HTTP status line from 127.0.0.1:%d\n", port);
        return 1;
    }
    if (status != 200) {
        fprintf(stderr, "kvmock-healthcheck: GET /healthz answered %d\n", status);
        return 1;
    }
    return 0;
}
