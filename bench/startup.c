/*
 * startup: time from exec of a server to its first 200 on GET /healthz.
 *
 *   startup --port HTTP_PORT [--reps N] [--fresh DIR] [--log FILE] -- COMMAND [ARGS...]
 *
 * For each repetition: remove DIR first when --fresh is given (outside the
 * timed window), start COMMAND (its output appended to FILE, or /dev/null), then poll
 * http://127.0.0.1:PORT/healthz as fast as a connect allows (every 0.2 ms while
 * refused) until it answers 200; then stop the server with SIGTERM and wait for
 * it (that time is reported too). Prints one line per repetition and a final
 *   RESULT reps=N min_ms=.. median_ms=.. max_ms=.. stop_median_ms=..
 * Exit status 1 when the server exits or has not answered within 30 s.
 *
 * Build: cc -O2 -o startup startup.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* 1: answered 200; 0: not yet (refused, or not 200). */
static int probe(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = 0;
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
        struct timeval tv = {.tv_sec = 2};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        static const char req[] = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                  "Connection: close\r\n\r\n";
        if (write(fd, req, sizeof(req) - 1) == (ssize_t)(sizeof(req) - 1)) {
            char buf[64];
            size_t n = 0;
            while (n < 12) {
                ssize_t r = read(fd, buf + n, sizeof(buf) - n);
                if (r <= 0)
                    break;
                n += (size_t)r;
            }
            ok = n >= 12 && strncmp(buf, "HTTP/1.", 7) == 0 && strncmp(buf + 9, "200", 3) == 0;
        }
    }
    close(fd);
    return ok;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int port = 0, reps = 1, i = 1;
    const char *fresh = NULL, *log = "/dev/null";
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--fresh") == 0 && i + 1 < argc)
            fresh = argv[++i];
        else if (strcmp(argv[i], "--log") == 0 && i + 1 < argc)
            log = argv[++i];
        else if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        } else
            break;
    }
    if (port <= 0 || reps < 1 || i >= argc) {
        fprintf(stderr, "usage: startup --port HTTP_PORT [--reps N] [--fresh DIR] [--log FILE] "
                        "-- CMD [ARGS]\n");
        return 2;
    }
    double *ms = calloc((size_t)reps, sizeof(double));
    double *stop_ms = calloc((size_t)reps, sizeof(double));
    for (int r = 0; r < reps; r++) {
        if (fresh != NULL) {
            char cmd[4200];
            snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fresh);
            if (system(cmd) != 0)
                return 2;
        }
        if (probe(port)) {
            fprintf(stderr, "startup: something already answers on port %d\n", port);
            return 2;
        }
        double t0 = now_ms();
        pid_t pid = fork();
        if (pid < 0)
            return 2;
        if (pid == 0) {
            int out = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (out >= 0) {
                dup2(out, 1);
                dup2(out, 2);
            }
            execvp(argv[i], argv + i);
            _exit(127);
        }
        int up = 0, status;
        while (now_ms() - t0 < 30000) {
            if (probe(port)) {
                up = 1;
                break;
            }
            if (waitpid(pid, &status, WNOHANG) == pid) {
                fprintf(stderr, "startup: the server exited before answering (status %d)\n",
                        status);
                return 1;
            }
            usleep(200);
        }
        ms[r] = now_ms() - t0;
        double s0 = now_ms();
        kill(pid, SIGTERM);
        waitpid(pid, &status, 0);
        stop_ms[r] = now_ms() - s0;
        if (!up) {
            fprintf(stderr, "startup: no 200 on /healthz within 30 s\n");
            return 1;
        }
        printf("rep %d: %.1f ms to the first 200, %.1f ms from SIGTERM to exit (status %d)\n",
               r + 1, ms[r], stop_ms[r], WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        fflush(stdout);
    }
    qsort(ms, (size_t)reps, sizeof(double), cmp);
    qsort(stop_ms, (size_t)reps, sizeof(double), cmp);
    printf("RESULT reps=%d min_ms=%.1f median_ms=%.1f max_ms=%.1f stop_median_ms=%.1f\n", reps,
           ms[0], reps % 2 ? ms[reps / 2] : (ms[reps / 2 - 1] + ms[reps / 2]) / 2, ms[reps - 1],
           reps % 2 ? stop_ms[reps / 2] : (stop_ms[reps / 2 - 1] + stop_ms[reps / 2]) / 2);
    return 0;
}
