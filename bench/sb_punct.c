/*
 * ssebench punct: heartbeat punctuality with blocked streams.
 *
 * N listeners; every (N / B)-th one (B of them) opens its stream with a
 * 2 KB SO_RCVBUF, listens on one key and, once ready, is never read again
 * (sb_worker.c). The others listen on nothing: the server writes them
 * heartbeats only. A burst of notify-listeners on the key fills the B
 * sockets, so the server holds those streams blocked (a deadline Timeout
 * ahead, beside everybody's heartbeats). Then, over a window of -i
 * seconds, every heartbeat a reading stream receives gives its lateness:
 * arrival - (the stream's previous arrival + the heartbeat period -e).
 * The server's CPU over the window: utime + stime of its children
 * (/proc/<pid>/stat) and every thread's schedstat.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "sb.h"

/* One request on a blocking keep-alive connection; its status, or -1.
 * The answer is a head with Content-Length (the module's JSON). */
static int roundtrip(int fd, const char *req, size_t len)
{
    char buf[8192], *end, *cl;
    size_t have = 0;
    long body;
    ssize_t n;

    if (write(fd, req, len) != (ssize_t)len) {
        return -1;
    }
    for (;;) {
        n = read(fd, buf + have, sizeof(buf) - 1 - have);
        if (n <= 0) {
            return -1;
        }
        have += (size_t)n;
        buf[have] = '\0';
        if ((end = strstr(buf, "\r\n\r\n")) == NULL) {
            if (have == sizeof(buf) - 1) {
                return -1;
            }
            continue;
        }
        cl = strcasestr(buf, "\r\nContent-Length:");
        body = cl && cl < end ? atol(cl + 17) : 0;
        if ((long)(have - (size_t)(end + 4 - buf)) >= body) {
            return atoi(buf + 9);
        }
        if (have == sizeof(buf) - 1) {
            return -1;
        }
    }
}

/* The burst: notify-listeners on the blocked streams' key, one after
 * another on one connection. Returns how many were answered 200. */
static int burst(int *first_bad)
{
    struct sockaddr_in sa;
    struct timeval tv = { 10, 0 };
    char req[512];
    int fd, len, k, ok = 0, one = 1, st;

    *first_bad = 0;
    fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)sb->o.port);
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        perror("ssebench: burst connect");
        return 0;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    len = snprintf(req, sizeof(req), "POST %snotify-listeners/%s HTTP/1.1"
                   "\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n",
                   sb->o.prefix, sb->o.key);
    for (k = 0; k < sb->o.burst; k++) {
        st = roundtrip(fd, req, (size_t)len);
        if (st == 200) {
            ok++;
        }
        else if (*first_bad == 0) {
            *first_bad = st;
        }
        if (st < 0) {
            break;
        }
    }
    close(fd);
    return ok;
}

/* Server sockets on the port with bytes the client has not taken
 * (Send-Q > 0), and the largest such queue: the blocked streams as the
 * kernel sees them. */
static void send_queues(int *count, long *max_q)
{
    char cmd[160], line[512];
    FILE *p;
    long rq, sq;

    *count = 0;
    *max_q = 0;
    snprintf(cmd, sizeof(cmd), "ss -tnH state established "
             "'( sport = :%d )' 2>/dev/null", sb->o.port);
    if ((p = popen(cmd, "r")) == NULL) {
        *count = -1;
        return;
    }
    while (fgets(line, sizeof(line), p)) {
        if (sscanf(line, "%ld %ld", &rq, &sq) == 2 && sq > 0) {
            (*count)++;
            *max_q = sq > *max_q ? sq : *max_q;
        }
    }
    pclose(p);
}

void sb_punct(void)
{
    const sb_opts_t *o = &sb->o;
    sb_usage_t u1, u2;
    sb_stats_t st;
    int64_t *all, t0, t1;
    long total = 0, w, i, over100 = 0, over1s = 0, none = 0, reading = 0;
    int ok, bad, q_count, q_count2;
    long q_max, q_max2;
    double secs;

    __atomic_store_n(&sb->target, o->n, __ATOMIC_RELEASE);
    secs = wait_settled(o->n, -1);
    printf("R setup n=%d ready=%d failed=%d secs=%.2f workers=%d "
           "replaced=%d\n", o->n, SB_GET(sb->ready), SB_GET(sb->failed),
           secs, o->workers, SB_GET(sb->replaced));
    fflush(stdout);
    idle_for(1, -1);
    t0 = sb_now();
    ok = burst(&bad);
    t1 = sb_now();
    idle_for(1, -1);
    send_queues(&q_count, &q_max);
    printf("R burst notifies=%d answered_200=%d first_bad=%d secs=%.2f "
           "blocked=%d send_q_nonempty=%d send_q_max=%ld\n", o->burst, ok,
           bad, (double)(t1 - t0) / 1e9, o->blocked, q_count, q_max);
    fflush(stdout);
    /* a heartbeat period for the streams to settle after the burst */
    idle_for(o->hb_s, -1);
    sb_usage_read(o->server_pid, &u1);
    t0 = sb_now();
    __atomic_store_n(&sb->measuring, 1, __ATOMIC_RELEASE);
    idle_for(o->idle_s, -1);
    __atomic_store_n(&sb->measuring, 0, __ATOMIC_RELEASE);
    t1 = sb_now();
    sb_usage_read(o->server_pid, &u2);
    idle_for(0.2, -1);          /* the workers' last samples */
    send_queues(&q_count2, &q_max2);
    all = malloc(sizeof(*all) * (size_t)(sb->late_cap * o->workers + 1));
    for (w = 0; all && w < o->workers; w++) {
        long k = __atomic_load_n(&sb->late_n[w], __ATOMIC_ACQUIRE);
        memcpy(all + total, sb->late + w * sb->late_cap,
               sizeof(*all) * (size_t)k);
        total += k;
    }
    for (i = 0; i < total; i++) {
        over100 += all[i] > 100000000LL;
        over1s += all[i] > 1000000000LL;
    }
    for (i = 0; i < o->n; i++) {
        if (!sb_is_blocked((int)i) && sb->lst[i].state == SB_L_READY) {
            reading++;
            none += sb->late_cnt[i] == 0;
        }
    }
    sb_stats_of(all, total, &st);
    printf("R punct n=%d blocked=%d hb_s=%d window_s=%.2f reading=%ld "
           "samples=%ld expected=%.0f no_sample=%ld late_p50_ms=%.3f "
           "late_p99_ms=%.3f late_max_ms=%.3f late_mean_ms=%.3f "
           "early_min_ms=%.3f over_100ms=%ld over_1s=%ld "
           "cpu_tick_ms=%.0f cpu_sched_ms=%.1f cpu_pct_core=%.1f "
           "procs=%d send_q_nonempty_after=%d dropped=%d bad=%d "
           "missed=%d\n", o->n, o->blocked, o->hb_s,
           (double)(t1 - t0) / 1e9, reading, total,
           (double)reading * (double)(t1 - t0) / 1e9 / o->hb_s, none,
           st.p50 / 1e6, st.p99 / 1e6, st.max / 1e6, st.mean / 1e6,
           total ? (double)all[0] / 1e6 : 0.0, over100, over1s,
           u2.tick_ms - u1.tick_ms, u2.cpu_ms - u1.cpu_ms,
           100.0 * (u2.tick_ms - u1.tick_ms) / ((double)(t1 - t0) / 1e6),
           u2.procs, q_count2, SB_GET(sb->dropped), SB_GET(sb->bad),
           SB_GET(sb->missed));
    fflush(stdout);
    free(all);
}
