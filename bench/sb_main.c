/*
 * ssebench -- the load generator of bench/. Usage (bench/bench.py drives
 * it; every result is one "R <what> key=value ..." line on stdout):
 *
 *   ssebench hold    -p PORT -f sse|nchan -L 100,1000,... -P SERVER_PID
 *   ssebench session -p PORT -f sse|nchan -n N -k KEY -a ftFT -P SERVER_PID
 *   ssebench floor   -n N -m MSGS [-z PAYLOAD_BYTES]
 *   ssebench punct   -p PORT -n N -B BLOCKED -e HEARTBEAT_S -i WINDOW_S
 *                    -u BURST -P SERVER_PID
 *
 * hold: open listeners up to each level, then measure the server's memory
 *   and its CPU over an idle window (heartbeats on), and count streams the
 *   server ends; session: N listeners on one key, then the phases asked
 *   for (f fan-out over HTTP, F through the C API, t targeted over HTTP,
 *   T through the C API); floor: this process is the server, writing the
 *   same bytes to N sockets; punct: N listeners of which BLOCKED never
 *   read once a burst of BURST notifies filled their sockets, then the
 *   lateness of every heartbeat the others receive over WINDOW_S
 *   (sb_punct.c).
 *
 * Cluster (bench/cluster.py): -Q PORT sends every publish to that port
 *   (host B) while the listeners use -p (host A); -R PORT snapshots that
 *   Redis's INFO commandstats around set-up, an idle window and each
 *   phase ("R redis ..." lines); -P takes several pids, whose process
 *   trees' CPU is summed (both hosts and Redis).
 *
 * -z BYTES: the phases p (fan-out) and q (targeted) publish a JSON body of
 *   exactly BYTES bytes (sb_payload) over HTTP, and the floor writes the
 *   event mod_sse_mgr writes for such a body. Every listener checks each
 *   payload event whole (sb_payload_check): a truncated, altered or
 *   misrouted one counts as bad, not as delivered.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sb.h"

sb_shared_t *sb;

static pid_t kids[256];
static int nkids;

void sb_name(int i, char *buf, size_t len)
{
    snprintf(buf, len, "%s%06d", sb->o.tag, i);
}

/* ---- payloads ------------------------------------------------------- */

#define PAY_HEAD "{\"t\":\""
#define PAY_MID  "\",\"pad\":\""
#define PAY_TAIL "\"}"

static char pad_char(size_t j)
{
    return (char)('a' + j % 26);
}

/* The JSON body of a payload phase, exactly len bytes and already
 * compact (so mod_sse_mgr carries it byte for byte):
 * {"t":"<tag>","pad":"abc...z abc..."}; the tag says whose it is (m<K>:
 * fan-out message K; p<i>.<ns>: the completion of listener i sent at ns).
 * Returns len, or -1 when the tag leaves no room. */
int sb_payload(char *buf, size_t cap, const char *tag, int len)
{
    int head = snprintf(buf, cap, PAY_HEAD "%s" PAY_MID, tag);
    int pad = len - head - (int)strlen(PAY_TAIL), j;

    if (head < 0 || pad < 0 || (size_t)len + 1 > cap) {
        return -1;
    }
    for (j = 0; j < pad; j++) {
        buf[head + j] = pad_char((size_t)j);
    }
    memcpy(buf + head + pad, PAY_TAIL, strlen(PAY_TAIL) + 1);
    return len;
}

/* Is p..p+len a whole payload of `want` bytes, every byte as sent? Gives
 * its tag. 0 when it is, -1 when not. */
int sb_payload_check(const char *p, size_t len, int want, const char **tag,
                     size_t *tag_len)
{
    size_t hl = strlen(PAY_HEAD), ml = strlen(PAY_MID),
           tl = strlen(PAY_TAIL), j;
    const char *t, *q, *pad;

    if (want <= 0 || len != (size_t)want || len < hl + ml + tl
        || memcmp(p, PAY_HEAD, hl) != 0
        || memcmp(p + len - tl, PAY_TAIL, tl) != 0) {
        return -1;
    }
    t = p + hl;
    q = memchr(t, '"', len - hl - tl);
    if (q == NULL || (size_t)(p + len - q) < ml + tl
        || memcmp(q, PAY_MID, ml) != 0) {
        return -1;
    }
    pad = q + ml;
    for (j = 0; pad + j < p + len - tl; j++) {
        if (pad[j] != pad_char(j)) {
            return -1;
        }
    }
    *tag = t;
    *tag_len = (size_t)(q - t);
    return 0;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: ssebench hold|session|floor|punct [-p port]\n"
            "  [-f sse|nchan] [-B blocked] [-e heartbeat_s] [-u burst]\n"
            "  [-n listeners] [-L level,level,...] [-m msgs] [-k key]\n"
            "  [-x prefix] [-t tag] [-P server_pid] [-w workers]\n"
            "  [-b source_base] [-c pub_conns] [-d pub_depth]\n"
            "  [-i idle_s] [-H hold_s] [-s stall_s] [-C cap_s]\n"
            "  [-M msg_timeout_s] [-a phases] [-z payload_bytes]\n"
            "  [-Q publish_port] [-R redis_port] (-P pid,pid,...: CPU of\n"
            "  every tree summed)\n");
    exit(2);
}

static int parse_levels(sb_opts_t *o, const char *s)
{
    char *copy = strdup(s), *tok, *save = NULL;

    o->nlevels = 0;
    for (tok = strtok_r(copy, ",", &save); tok && o->nlevels < SB_MAX_LEVELS;
         tok = strtok_r(NULL, ",", &save)) {
        o->levels[o->nlevels++] = atoi(tok);
    }
    free(copy);
    return o->nlevels;
}

static void parse_pids(sb_opts_t *o, const char *s)
{
    char *copy = strdup(s), *tok, *save = NULL;

    o->npids = 0;
    for (tok = strtok_r(copy, ",", &save); tok && o->npids < 8;
         tok = strtok_r(NULL, ",", &save)) {
        o->pids[o->npids++] = atoi(tok);
    }
    o->server_pid = o->npids ? o->pids[0] : 0;
    free(copy);
}

static void parse(int argc, char **argv, sb_opts_t *o)
{
    int ch;

    memset(o, 0, sizeof(*o));
    o->msgs = 10;
    o->src_base = 1;
    o->pub_conns = 4;
    o->pub_depth = 1;
    o->idle_s = 20;
    o->hold_s = 60;
    o->stall_s = 15;
    o->cap_s = 60;
    o->msg_timeout_s = 10;
    strcpy(o->phases, "ft");
    strcpy(o->prefix, "/sse/");
    strcpy(o->tag, "b");
    o->burst = 400;
    while ((ch = getopt(argc, argv,
                        "p:f:n:L:m:k:x:t:P:w:b:c:d:i:H:s:C:M:a:B:e:u:z:"
                        "Q:R:"))
           != -1) {
        switch (ch) {
        case 'p': o->port = atoi(optarg); break;
        case 'f': o->flavor = strcmp(optarg, "nchan") ? SB_FL_SSE
                                                      : SB_FL_NCHAN; break;
        case 'n': o->n = atoi(optarg); break;
        case 'L': parse_levels(o, optarg); break;
        case 'm': o->msgs = atoi(optarg); break;
        case 'k': snprintf(o->key, sizeof(o->key), "%s", optarg); break;
        case 'x': snprintf(o->prefix, sizeof(o->prefix), "%s", optarg);
                  break;
        case 't': snprintf(o->tag, sizeof(o->tag), "%s", optarg); break;
        case 'P': parse_pids(o, optarg); break;
        case 'Q': o->pub_port = atoi(optarg); break;
        case 'R': o->redis_port = atoi(optarg); break;
        case 'w': o->workers = atoi(optarg); break;
        case 'b': o->src_base = atoi(optarg); break;
        case 'c': o->pub_conns = atoi(optarg); break;
        case 'd': o->pub_depth = atoi(optarg); break;
        case 'i': o->idle_s = atoi(optarg); break;
        case 'H': o->hold_s = atoi(optarg); break;
        case 's': o->stall_s = atoi(optarg); break;
        case 'C': o->cap_s = atoi(optarg); break;
        case 'M': o->msg_timeout_s = atoi(optarg); break;
        case 'B': o->blocked = atoi(optarg); break;
        case 'e': o->hb_s = atoi(optarg); break;
        case 'u': o->burst = atoi(optarg); break;
        case 'z': o->payload = atoi(optarg); break;
        case 'a': snprintf(o->phases, sizeof(o->phases), "%s", optarg);
                  break;
        default: usage();
        }
    }
}

/* Bounds that keep every array and descriptor count in range. */
static void check(sb_opts_t *o)
{
    if (o->nlevels) {
        o->n = o->levels[o->nlevels - 1];
    }
    if (o->n < 1 || o->n > 1000000 || o->msgs < 1
        || o->msgs > SB_MAX_MSGS / 3 || o->pub_conns < 1
        || o->pub_conns > 64 || o->pub_depth < 1
        || o->pub_depth > SB_FIFO || strlen(o->tag) > 8
        || o->blocked < 0 || o->blocked > o->n || o->hb_s < 0
        || o->burst < 1 || (o->payload && (o->payload < SB_PAY_MIN
                                           || o->payload > SB_PAY_MAX))) {
        usage();
    }
    if (o->pub_port <= 0) {
        o->pub_port = o->port;
    }
    if (o->npids == 0) {
        o->pids[0] = o->server_pid;
        o->npids = 1;
    }
    if (o->workers <= 0) {
        o->workers = (o->n + SB_FD_CAP - 1) / SB_FD_CAP;
    }
    if (o->workers > 250 || o->n / o->workers > SB_FD_CAP) {
        fprintf(stderr, "ssebench: %d listeners need more than %d "
                "workers of %d\n", o->n, o->workers, SB_FD_CAP);
        exit(2);
    }
}

#define ALIGN64(x) (((x) + 63) & ~(size_t)63)

/* One anonymous shared mapping, made before the fork: every process sees
 * it at the same address. Each array starts on a 64-byte boundary. */
static void share(const sb_opts_t *o)
{
    size_t n = (size_t)o->n;
    size_t head = ALIGN64(sizeof(sb_shared_t));
    size_t lst = ALIGN64(n * sizeof(sb_lst_t));
    size_t fan = ALIGN64(n * SB_MAX_MSGS * sizeof(int64_t));
    size_t tgt = ALIGN64(6 * n * sizeof(int64_t));
    long cap = o->hb_s ? (long)(n / (size_t)o->workers + 1)
                         * (o->idle_s / o->hb_s + 3) : 0;
    size_t late = ALIGN64((size_t)cap * (size_t)o->workers
                          * sizeof(int64_t));
    size_t lcnt = ALIGN64(o->hb_s ? n * sizeof(int) : 0);
    char *p = mmap(NULL, head + lst + fan + tgt + late + lcnt,
                   PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    if (p == MAP_FAILED) {
        perror("ssebench: mmap");
        exit(1);
    }
    sb = (sb_shared_t *)p;
    sb->o = *o;
    sb->lst = (sb_lst_t *)(p + head);
    sb->fan = (int64_t *)(p + head + lst);
    sb->tgt_lat = (int64_t *)(p + head + lst + fan);
    sb->tgt_at = sb->tgt_lat + 3 * n;
    sb->late_cap = cap;
    sb->late = (int64_t *)(p + head + lst + fan + tgt);
    sb->late_cnt = (int *)(p + head + lst + fan + tgt + late);
}

static void spawn(void)
{
    int w;

    for (w = 0; w < sb->o.workers; w++) {
        pid_t pid = fork();
        if (pid == 0) {
            sb_worker_run(w);
        }
        if (pid < 0) {
            perror("ssebench: fork");
            exit(1);
        }
        kids[nkids++] = pid;
    }
}

static void reap_kids(void)
{
    int i, status, tries;

    __atomic_store_n(&sb->phase, SB_PH_STOP, __ATOMIC_RELEASE);
    for (i = 0; i < nkids; i++) {
        for (tries = 0; tries < 100; tries++) {
            if (waitpid(kids[i], &status, WNOHANG) == kids[i]) {
                break;
            }
            usleep(100000);
        }
        if (tries == 100) {
            kill(kids[i], SIGKILL);
            waitpid(kids[i], &status, 0);
        }
    }
}

static void on_signal(int sig)
{
    (void)sig;
    __atomic_store_n(&sb->phase, SB_PH_STOP, __ATOMIC_RELEASE);
    _exit(3);
}

/* punct: every (n / blocked)-th listener, from 0: spread over the
 * workers and so over the server's children. */
int sb_is_blocked(int i)
{
    int stride = sb->o.blocked ? sb->o.n / sb->o.blocked : 0;

    return stride > 0 && i % stride == 0 && i / stride < sb->o.blocked;
}

void idle_for(double secs, int lfd)
{
    int64_t until = sb_now() + (int64_t)(secs * 1e9);

    while (sb_now() < until) {
        if (lfd >= 0) {
            sb_floor_accept(lfd);
        }
        sb_conn_poll(5);
    }
}

/* Where the listeners that did not settle are stuck. */
static void stall_line(int want)
{
    int count[SB_L_FAIL + 1] = { 0 }, i;

    for (i = 0; i < want && i < sb->o.n; i++) {
        count[sb->lst[i].state]++;
    }
    printf("R stall want=%d new=%d making_id=%d stream=%d listen=%d "
           "ready=%d dead=%d failed=%d\n", want, count[SB_L_NEW],
           count[SB_L_ID], count[SB_L_STREAM], count[SB_L_LISTEN],
           count[SB_L_READY], count[SB_L_DEAD], count[SB_L_FAIL]);
    fflush(stdout);
}

/* Until `want` listeners are settled, or none settles for stall_s. */
double wait_settled(int want, int lfd)
{
    int64_t t0 = sb_now(), last_change = t0;
    int seen = -1;

    for (;;) {
        int now = SB_GET(sb->ready) + SB_GET(sb->failed);
        if (now >= want) {
            break;
        }
        if (now != seen) {
            seen = now;
            last_change = sb_now();
        }
        else if (sb_now() - last_change
                 > (int64_t)sb->o.stall_s * 1000000000LL) {
            stall_line(want);
            break;
        }
        idle_for(0.005, lfd);
    }
    return (double)(sb_now() - t0) / 1e9;
}

/* ---- hold ------------------------------------------------------------ */

static void hold_level(int L, const sb_usage_t *base, int64_t *t_held)
{
    sb_usage_t u1, u2;
    long long hb0, hb1;
    double secs;
    int held;

    __atomic_store_n(&sb->target, L, __ATOMIC_RELEASE);
    secs = wait_settled(L, -1);
    *t_held = sb_now();
    idle_for(2, -1);            /* let set-up work finish */
    held = SB_GET(sb->ready) - SB_GET(sb->dropped);
    sb_usage_read(sb->o.server_pid, &u1);
    hb0 = SB_GET(sb->heartbeats);
    idle_for(sb->o.idle_s, -1);
    hb1 = SB_GET(sb->heartbeats);
    sb_usage_read(sb->o.server_pid, &u2);
    printf("R hold level=%d ready=%d failed=%d held=%d connect_s=%.2f "
           "rss_kb=%lld pss_kb=%lld base_rss_kb=%lld base_pss_kb=%lld "
           "rss_per_stream_kb=%.2f pss_per_stream_kb=%.2f procs=%d "
           "threads=%d fds=%d fds_per_stream=%.2f idle_cpu_ms=%.1f "
           "idle_s=%d hb=%lld dropped=%d reopened=%d "
           "failed_why=connect:%d,closed:%d,status:%d,early:%d,ctrl:%d\n",
           L, SB_GET(sb->ready),
           SB_GET(sb->failed), held, secs, u1.rss_kb, u1.pss_kb,
           base->rss_kb, base->pss_kb,
           held ? (double)(u1.rss_kb - base->rss_kb) / held : 0.0,
           held ? (double)(u1.pss_kb - base->pss_kb) / held : 0.0,
           u1.procs, u1.threads, u1.fds,
           held ? (double)(u1.fds - base->fds) / held : 0.0,
           u2.cpu_ms - u1.cpu_ms, sb->o.idle_s, hb1 - hb0,
           SB_GET(sb->dropped), SB_GET(sb->reopened),
           SB_GET(sb->fail_why[SB_FAIL_CONNECT]),
           SB_GET(sb->fail_why[SB_FAIL_CLOSED]),
           SB_GET(sb->fail_why[SB_FAIL_STATUS]),
           SB_GET(sb->fail_why[SB_FAIL_EARLY]),
           SB_GET(sb->fail_why[SB_FAIL_CTRL]));
    fflush(stdout);
}

static void run_hold(void)
{
    sb_usage_t base;
    int64_t t_held = 0, t_end;
    int i, top = 0;

    idle_for(1, -1);
    sb_usage_read(sb->o.server_pid, &base);
    printf("R base procs=%d threads=%d fds=%d rss_kb=%lld pss_kb=%lld\n",
           base.procs, base.threads, base.fds, base.rss_kb, base.pss_kb);
    fflush(stdout);
    for (i = 0; i < sb->o.nlevels; i++) {
        int L = sb->o.levels[i];
        hold_level(L, &base, &t_held);
        top = L;
        if (SB_GET(sb->ready) - SB_GET(sb->dropped) < L) {
            printf("R hold_stop level=%d held=%d\n", L,
                   SB_GET(sb->ready) - SB_GET(sb->dropped));
            break;
        }
    }
    t_end = t_held + (int64_t)sb->o.hold_s * 1000000000LL;
    if (sb_now() < t_end) {
        idle_for((double)(t_end - sb_now()) / 1e9, -1);
    }
    printf("R drops level=%d held=%d dropped=%d over_s=%.1f bad=%d "
           "missed=%d replaced=%d reopened=%d\n", top,
           SB_GET(sb->ready) - SB_GET(sb->dropped), SB_GET(sb->dropped),
           (double)(sb_now() - t_held) / 1e9, SB_GET(sb->bad),
           SB_GET(sb->missed), SB_GET(sb->replaced), SB_GET(sb->reopened));
    fflush(stdout);
}

/* ---- session and floor ---------------------------------------------- */

static void setup_line(double secs)
{
    printf("R setup n=%d ready=%d failed=%d secs=%.2f workers=%d "
           "replaced=%d reopened=%d\n", sb->o.n, SB_GET(sb->ready),
           SB_GET(sb->failed), secs, sb->o.workers, SB_GET(sb->replaced),
           SB_GET(sb->reopened));
    fflush(stdout);
}

static void end_line(void)
{
    printf("R end dropped=%d bad=%d missed=%d dup=%d heartbeats=%lld\n",
           SB_GET(sb->dropped), SB_GET(sb->bad), SB_GET(sb->missed),
           SB_GET(sb->dup), SB_GET(sb->heartbeats));
    fflush(stdout);
}

static void run_session(void)
{
    const char *ph = sb->o.phases;
    int msg0 = 0, rp = sb->o.redis_port;
    static sb_redis_t r0, r1, r2;
    int64_t t1;

    if (rp) {
        sb_redis_read(rp, &r0);
    }
    __atomic_store_n(&sb->target, sb->o.n, __ATOMIC_RELEASE);
    setup_line(wait_settled(sb->o.n, -1));
    if (rp) {
        idle_for(0.2, -1);      /* the last listeners' own commands */
        sb_redis_read(rp, &r1);
        sb_redis_line("setup", "listener", SB_GET(sb->ready), &r0, &r1);
    }
    t1 = sb_now();
    /* the phases measure streams in their steady state: mod_sse_mgr
     * takes a parked stream's socket over a second after it parked */
    idle_for(2.0, -1);
    if (rp) {
        sb_redis_read(rp, &r2);
        sb_redis_line("idle", "second", (double)(sb_now() - t1) / 1e9,
                      &r1, &r2);
    }
    if (strchr(ph, 'f')) {
        sb_fanout(SB_VIA_HTTP, msg0, 0);
        msg0 += sb->o.msgs;
    }
    if (strchr(ph, 'F')) {
        sb_fanout(SB_VIA_CAPI, msg0, 0);
        msg0 += sb->o.msgs;
    }
    if (strchr(ph, 'p') && sb->o.payload) {
        sb_fanout(SB_VIA_HTTP, msg0, 1);
        msg0 += sb->o.msgs;
    }
    if (strchr(ph, 't')) {
        sb_targeted(SB_VIA_HTTP, 0);
    }
    if (strchr(ph, 'T')) {
        sb_targeted(SB_VIA_CAPI, 0);
    }
    if (strchr(ph, 'q') && sb->o.payload) {
        sb_targeted(SB_VIA_HTTP, 1);
    }
    end_line();
}

static int floor_listen(void)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0
        || listen(fd, 4096) < 0
        || getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
        perror("ssebench: floor listen");
        exit(1);
    }
    sb->o.port = ntohs(sa.sin_port);
    return fd;
}

static void run_floor(void)
{
    int lfd = floor_listen();

    sb->o.server_pid = sb->o.pids[0] = getpid();
    sb->o.npids = 1;
    sb->o.pub_port = sb->o.port;
    spawn();
    __atomic_store_n(&sb->target, sb->o.n, __ATOMIC_RELEASE);
    setup_line(wait_settled(sb->o.n, lfd));
    idle_for(0.5, lfd);
    sb_fanout(SB_VIA_FLOOR, 0, sb->o.payload > 0);
    end_line();
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    struct rlimit rl;
    sb_opts_t o;
    int epfd;

    if (argc < 2 || argv[1][0] == '-') {
        usage();
    }
    parse(argc - 1, argv + 1, &o);
    if (!strcmp(mode, "floor")) {
        o.flavor = SB_FL_FLOOR;
    }
    if (!strcmp(mode, "punct") && !o.key[0]) {
        strcpy(o.key, "blocked-by-a-burst-of-notifies"); /* longer
                                                   events, fewer needed */
    }
    if (strcmp(mode, "hold") && !o.key[0]) {
        strcpy(o.key, "fan");
    }
    if (strcmp(mode, "punct")) {
        o.blocked = 0;
        o.hb_s = 0;
    }
    else if (o.hb_s < 1) {
        usage();
    }
    check(&o);
    if (!strcmp(mode, "floor") && o.n > SB_FD_CAP) {
        printf("R fanout via=floor n=%d skipped=fd_cap_%d\n", o.n,
               SB_FD_CAP);
        return 0;
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    signal(SIGPIPE, SIG_IGN);
    sb_conn_line_max = SB_LINE_MAX + (size_t)o.payload;
    share(&o);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    sb_pub_init(epfd);
    if (!strcmp(mode, "floor")) {
        run_floor();
    }
    else if (!strcmp(mode, "hold") || !strcmp(mode, "session")
             || !strcmp(mode, "punct")) {
        spawn();
        if (!strcmp(mode, "hold")) {
            run_hold();
        }
        else if (!strcmp(mode, "punct")) {
            sb_punct();
        }
        else {
            run_session();
        }
    }
    else {
        usage();
    }
    reap_kids();
    return 0;
}
