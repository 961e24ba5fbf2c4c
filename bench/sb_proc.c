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
    static pp_t pp[SB_MAX_PROCS];
    static char in[SB_MAX_PROCS];
    long long f[24], hz = sysconf(_SC_CLK_TCK);
    int n = list_procs(pp, SB_MAX_PROCS), i, grew = 1;
    double ns;

    memset(u, 0, sizeof(*u));
    for (i = 0; i < n; i++) {
        in[i] = pp[i].pid == root;
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
        if (pp[i].pid != root) {
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
