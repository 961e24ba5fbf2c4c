/*
 * What the server under test costs, read from /proc: the process tree
 * under its main pid (httpd's parent and children, nginx's master and
 * workers, node), summed -- CPU time (each thread's schedstat, in ns;
 * utime + stime in clock ticks where schedstat is missing), resident and
 * proportional set size (smaps_rollup), processes, threads and open
 * descriptors.
 * And the percentiles of a set of latencies.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "sb.h"

#define SB_MAX_PROCS 4096

typedef struct {
    int pid, ppid;
} pp_t;

static int read_file(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    size_t n;

    if (f == NULL) {
        return -1;
    }
    n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
    return (int)n;
}

/* Fields after the command name in /proc/<pid>/stat ("(...)" may hold
 * spaces), numbered from 3 (state) as in proc(5). */
static int stat_fields(int pid, long long *f, int upto)
{
    char path[64], buf[1024], *p;
    int i;

    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    if (read_file(path, buf, sizeof(buf)) < 0
        || (p = strrchr(buf, ')')) == NULL) {
        return -1;
    }
    p += 2;                     /* ") " */
    for (i = 3; i <= upto && *p; i++) {
        f[i] = (i == 3) ? (long long)*p : atoll(p);
        while (*p && *p != ' ') {
            p++;
        }
        while (*p == ' ') {
            p++;
        }
    }
    return i > upto ? 0 : -1;
}

static int list_procs(pp_t *pp, int cap)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    long long f[8];
    int n = 0;

    if (d == NULL) {
        return 0;
    }
    while ((e = readdir(d)) != NULL && n < cap) {
        if (!isdigit((unsigned char)e->d_name[0])) {
            continue;
        }
        pp[n].pid = atoi(e->d_name);
        if (stat_fields(pp[n].pid, f, 4) == 0 && f[3] != 'Z') {
            pp[n].ppid = (int)f[4];
            n++;
        }
    }
    closedir(d);
    return n;
}

static void add_rollup(int pid, sb_usage_t *u)
{
    char path[64], buf[4096], *p;

    snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", pid);
    if (read_file(path, buf, sizeof(buf)) < 0) {
        return;
    }
    if ((p = strstr(buf, "\nRss:")) != NULL) {
        u->rss_kb += atoll(p + 5);
    }
    if ((p = strstr(buf, "\nPss:")) != NULL) {
        u->pss_kb += atoll(p + 5);
    }
}

/* Nanoseconds on a CPU, summed over the threads alive now; -1 if the
 * kernel keeps no schedstat. */
static double task_cpu_ns(int pid)
{
    char path[64], buf[128];
    struct dirent *e;
    double sum = 0;
    DIR *d;

    snprintf(path, sizeof(path), "/proc/%d/task", pid);
    if ((d = opendir(path)) == NULL) {
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        if (!isdigit((unsigned char)e->d_name[0])) {
            continue;
        }
        snprintf(path, sizeof(path), "/proc/%d/task/%.20s/schedstat", pid,
                 e->d_name);
        if (read_file(path, buf, sizeof(buf)) < 0) {
            continue;
        }
        sum += atof(buf);
    }
    closedir(d);
    return sum;
}

static int is_root(int pid, const int *roots, int nroots)
{
    int k;

    for (k = 0; k < nroots; k++) {
        if (roots[k] == pid) {
            return 1;
        }
    }
    return 0;
}

static int count_fds(int pid)
{
    char path[64];
    struct dirent *e;
    int n = 0;
    DIR *d;

    snprintf(path, sizeof(path), "/proc/%d/fd", pid);
    if ((d = opendir(path)) == NULL) {
        return 0;
    }
    while ((e = readdir(d)) != NULL) {
        n += isdigit((unsigned char)e->d_name[0]) != 0;
    }
    closedir(d);
    return n;
}

int sb_usage_read(int root, sb_usage_t *u)
{
    return sb_usage_read_set(&root, 1, u);
}

int sb_usage_read_set(const int *roots, int nroots, sb_usage_t *u)
{
    static pp_t pp[SB_MAX_PROCS];
    static char in[SB_MAX_PROCS];
    long long f[24], hz = sysconf(_SC_CLK_TCK);
    int n = list_procs(pp, SB_MAX_PROCS), i, grew = 1;
    double ns;

    memset(u, 0, sizeof(*u));
    for (i = 0; i < n; i++) {
        int k;
        in[i] = 0;
        for (k = 0; k < nroots; k++) {
            in[i] |= roots[k] > 0 && pp[i].pid == roots[k];
        }
    }
    while (grew) {              /* descendants, to any depth */
        int j;
        grew = 0;
        for (i = 0; i < n; i++) {
            for (j = 0; !in[i] && j < n; j++) {
                if (in[j] && pp[i].ppid == pp[j].pid) {
                    in[i] = 1;
                    grew = 1;
                }
            }
        }
    }
    for (i = 0; i < n; i++) {
        if (!in[i] || stat_fields(pp[i].pid, f, 20) < 0) {
            continue;
        }
        ns = task_cpu_ns(pp[i].pid);
        u->cpu_ms += ns >= 0 ? ns / 1e6 : (double)(f[14] + f[15]) * 1e3
                                          / (double)hz;
        if (!is_root(pp[i].pid, roots, nroots)) {
            u->tick_ms += (double)(f[14] + f[15]) * 1e3 / (double)hz;
        }
        u->threads += (int)f[20];
        u->fds += count_fds(pp[i].pid);
        u->procs++;
        add_rollup(pp[i].pid, u);
    }
    return u->procs ? 0 : -1;
}

/* ---- statistics ------------------------------------------------------- */

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

/* Sorts v in place. p99 is the smallest value at or above 99 % of the
 * set (nearest rank). */
void sb_stats_of(int64_t *v, long n, sb_stats_t *st)
{
    double sum = 0;
    long i, r;

    memset(st, 0, sizeof(*st));
    st->n = n;
    if (n <= 0) {
        return;
    }
    qsort(v, (size_t)n, sizeof(*v), cmp64);
    for (i = 0; i < n; i++) {
        sum += (double)v[i];
    }
    st->mean = sum / (double)n;
    st->p50 = (double)v[(n - 1) / 2];
    r = (long)((99 * n + 99) / 100);    /* ceil(0.99 n) */
    st->p99 = (double)v[(r < 1 ? 1 : r) - 1];
    st->max = (double)v[n - 1];
}

/* ---- Redis INFO commandstats ----------------------------------------- */

/* One blocking round trip on a connection of its own: "INFO
 * commandstats", its bulk reply parsed into (command, calls, usec).
 * Every snapshot's own INFO is counted by the next one: sb_redis_line
 * leaves "info" out. 0, or -1 (r->n = -1) when Redis did not answer. */
int sb_redis_read(int port, sb_redis_t *r)
{
    static const char cmd[] = "INFO commandstats\r\n";
    static char buf[65536];
    struct sockaddr_in sa;
    struct timeval tv = { 2, 0 };
    size_t got = 0;
    long want = -1;
    char *p, *nl;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    memset(r, 0, sizeof(*r));
    r->n = -1;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (fd < 0) {
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0
        || write(fd, cmd, sizeof(cmd) - 1) != (ssize_t)(sizeof(cmd) - 1)) {
        close(fd);
        return -1;
    }
    for (;;) {                  /* "$<len>\r\n<len bytes>\r\n" */
        ssize_t k = read(fd, buf + got, sizeof(buf) - 1 - got);
        if (k <= 0) {
            break;
        }
        got += (size_t)k;
        buf[got] = '\0';
        if (want < 0 && (nl = strstr(buf, "\r\n")) != NULL) {
            if (buf[0] != '$') {
                break;
            }
            want = atol(buf + 1) + (long)(nl + 2 - buf) + 2;
        }
        if ((want >= 0 && (long)got >= want) || got == sizeof(buf) - 1) {
            break;
        }
    }
    close(fd);
    if (want < 0 || (long)got < want) {
        return -1;
    }
    r->n = 0;
    for (p = buf; (p = strstr(p, "cmdstat_")) != NULL
                  && r->n < SB_REDIS_CMDS; p++) {
        char *colon = strchr(p, ':'), *c, *u;
        size_t len;
        if (colon == NULL) {
            break;
        }
        len = (size_t)(colon - (p + 8));
        if (len >= sizeof(r->name[0])) {
            continue;
        }
        memcpy(r->name[r->n], p + 8, len);
        r->name[r->n][len] = '\0';
        nl = strstr(colon, "\r\n");
        c = strstr(colon, "calls=");
        u = strstr(colon, "usec=");
        r->calls[r->n] = c && (!nl || c < nl) ? atoll(c + 6) : 0;
        r->usec[r->n] = u && (!nl || u < nl) ? atoll(u + 5) : 0;
        r->n++;
    }
    return 0;
}

static long long redis_of(const sb_redis_t *r, const char *name,
                          long long *usec)
{
    int i;

    for (i = 0; i < r->n; i++) {
        if (!strcmp(r->name[i], name)) {
            *usec = r->usec[i];
            return r->calls[i];
        }
    }
    *usec = 0;
    return 0;
}

/* R redis phase=<phase> per=<unit> units=<u> total=<calls> per_unit=<x>
 *   scripts=<eval/evalsha/fcall calls> calls=<cmd>:<n>,...
 *   each=<cmd>:<n/u>,...   (the "info" of the snapshots left out)
 * commandstats counts the commands a Lua script runs as well as the
 * script's own call: the client's round trips are the script calls plus
 * the commands no script ran, which commandstats cannot tell apart. Its
 * usec double-counts the same way: not reported. */
void sb_redis_line(const char *phase, const char *per, double units,
                   const sb_redis_t *a, const sb_redis_t *b)
{
    char calls[2048], each[2048];
    size_t cl = 0, el = 0;
    long long total = 0, scripts = 0;
    int i;

    if (a->n < 0 || b->n < 0) {
        printf("R redis phase=%s per=%s error=no_answer\n", phase, per);
        fflush(stdout);
        return;
    }
    calls[0] = each[0] = '\0';
    for (i = 0; i < b->n; i++) {
        long long u0, c0 = redis_of(a, b->name[i], &u0);
        long long d = b->calls[i] - c0;
        if (d <= 0 || !strcmp(b->name[i], "info")) {
            continue;
        }
        total += d;
        if (!strncmp(b->name[i], "eval", 4)
            || !strncmp(b->name[i], "fcall", 5)) {
            scripts += d;
        }
        if (cl < sizeof(calls) - 64) {
            cl += (size_t)snprintf(calls + cl, sizeof(calls) - cl, "%s%s:%lld",
                                   cl ? "," : "", b->name[i], d);
        }
        if (el < sizeof(each) - 64) {
            el += (size_t)snprintf(each + el, sizeof(each) - el, "%s%s:%.3f",
                                   el ? "," : "", b->name[i],
                                   units > 0 ? (double)d / units : 0.0);
        }
    }
    printf("R redis phase=%s per=%s units=%.3f total=%lld per_unit=%.3f "
           "scripts_per_unit=%.3f calls=%s each=%s\n", phase, per, units,
           total, units > 0 ? (double)total / units : 0.0,
           units > 0 ? (double)scripts / units : 0.0,
           cl ? calls : "-", el ? each : "-");
    fflush(stdout);
}
