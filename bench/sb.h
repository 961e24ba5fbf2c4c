/*
 * ssebench: the load generator of bench/ (see bench/README.md).
 *
 * One parent process (publisher, floor writer, measurer) and W worker
 * processes (listener shards, each under 15,000 descriptors, each from its
 * own 127.0.0.x source address). They share one anonymous mapping: the
 * listener table, receipt times and counters. Every socket is
 * non-blocking in an epoll loop; every buffer is bounded.
 */
#ifndef SB_H
#define SB_H

#include <stddef.h>
#include <stdint.h>

#define SB_HEAD_MAX    2048     /* response head */
#define SB_LINE_MAX    512      /* one SSE line (plus the payload, -z) */
#define SB_DATA_MAX    512      /* one event's data (plus the payload) */
#define SB_PAY_MIN     64       /* -z: the smallest payload */
#define SB_PAY_MAX     8192     /* -z: the largest (SSEMaxMessage: 16k) */
#define SB_REQ_MAX     (1024 + SB_PAY_MAX)  /* one publish request */
#define SB_BODY_MAX    4096     /* a control response's body */
#define SB_FIFO        32       /* pipelined requests per connection */
#define SB_MAX_MSGS    96       /* fan-out messages per session: three
                                   phases (f, F, p) of at most 32 */
#define SB_NAME_MAX    32
#define SB_ID_MAX      112
#define SB_FD_CAP      14000    /* listeners per worker process */
#define SB_STALE_NS    1000000000LL  /* an unanswered request this old:
                                        its connection is replaced */

/* ---- connections (sb_conn.c) ----------------------------------------- */

enum sb_role { SB_STREAM, SB_CTRL, SB_FLOORPEER };
/* SB_EV_NOTIFY, SB_EV_COMPLETED: the named events of a payload (SPEC 8) */
enum sb_ev { SB_EV_DATA, SB_EV_PING, SB_EV_COMMENT, SB_EV_OTHER,
             SB_EV_NOTIFY, SB_EV_COMPLETED };

typedef struct sb_req {
    int kind;                   /* caller's request kind */
    int idx;                    /* listener index or message number */
    int64_t t;                  /* CLOCK_MONOTONIC ns when sent */
} sb_req_t;

typedef struct sb_conn sb_conn_t;

/* What the owner of the connections is told. */
typedef struct sb_hooks {
    void (*head)(sb_conn_t *c);                 /* stream: head parsed */
    void (*event)(sb_conn_t *c, int kind, const char *data, size_t len);
    void (*response)(sb_conn_t *c, const sb_req_t *req, int status,
                     const char *body, size_t len);
    void (*closed)(sb_conn_t *c, int err);      /* before the free */
    void (*connected)(sb_conn_t *c);
} sb_hooks_t;

struct sb_conn {
    int fd;
    int role;
    int idx;                    /* listener index, or control number */
    int connected;
    int want_out;               /* EPOLLOUT registered */
    int64_t t_read;             /* ns: when the bytes being parsed came */
    /* output */
    char *out;
    size_t out_len, out_off, out_cap;
    /* response framing */
    int hstate;
    char head[SB_HEAD_MAX];
    size_t head_len;
    int status;
    int conn_close;
    long long left;             /* body or chunk bytes left */
    char szline[24];
    size_t sz_len;
    /* SSE (streams only): buffers of sb_conn_line_max bytes */
    char *line;
    size_t line_len;
    int line_long;
    char *data;
    size_t data_len;
    size_t ev_bytes;            /* the event's bytes so far, as sent */
    int has_data, ev_kind;
    /* control: pipelined requests and the current body */
    sb_req_t fifo[SB_FIFO];
    int fhead, fcount;
    char *body;
    size_t body_len;
    sb_conn_t *next_dead;
};

extern int sb_conn_rcvbuf;       /* SO_RCVBUF of new sockets; 0: none */
extern size_t sb_conn_line_max;  /* a stream's line and data buffers */
void sb_conn_init(int epfd, const sb_hooks_t *hooks);
void sb_conn_mute(sb_conn_t *c);        /* read no more from it */
sb_conn_t *sb_conn_open(int role, int idx, const char *src, int port,
                        size_t out_cap);
sb_conn_t *sb_conn_adopt(int fd, int role, int idx, size_t out_cap);
int sb_conn_send(sb_conn_t *c, const char *buf, size_t len);
int sb_conn_request(sb_conn_t *c, const char *buf, size_t len,
                    sb_req_t *req);
void sb_conn_close(sb_conn_t *c, int err);
int sb_conn_poll(int timeout_ms);
int sb_conn_stale(const sb_conn_t *c, int64_t now, int64_t age_ns);
int64_t sb_now(void);

/* ---- the server under test (sb_proc.c) ------------------------------- */

typedef struct sb_usage {
    double cpu_ms;              /* CPU time of every thread */
    double tick_ms;             /* utime + stime of the root's children */
    long long rss_kb, pss_kb;
    int procs, threads, fds;
} sb_usage_t;

int sb_usage_read(int root_pid, sb_usage_t *u);
/* the same, summed over several process trees (cluster: both hosts and
 * Redis) */
int sb_usage_read_set(const int *roots, int nroots, sb_usage_t *u);

/* ---- Redis INFO commandstats (sb_proc.c), for the cluster runs ------- */

#define SB_REDIS_CMDS 96

typedef struct sb_redis {
    int n;                      /* commands seen; -1: Redis did not answer */
    char name[SB_REDIS_CMDS][40];
    long long calls[SB_REDIS_CMDS], usec[SB_REDIS_CMDS];
} sb_redis_t;

int sb_redis_read(int port, sb_redis_t *r);
void sb_redis_line(const char *phase, const char *per, double units,
                   const sb_redis_t *before, const sb_redis_t *after);

/* ---- statistics (sb_proc.c) ------------------------------------------ */

typedef struct sb_stats {
    long n;
    double p50, p99, max, mean;  /* in the unit of the input */
} sb_stats_t;

void sb_stats_of(int64_t *v, long n, sb_stats_t *st);

/* ---- the run (sb_main.c), shared by every process -------------------- */

enum sb_flavor { SB_FL_SSE, SB_FL_NCHAN, SB_FL_FLOOR };
enum sb_lstate { SB_L_NEW, SB_L_ID, SB_L_STREAM, SB_L_LISTEN, SB_L_READY,
                 SB_L_DEAD, SB_L_FAIL };
enum sb_phase { SB_PH_RUN, SB_PH_STOP };
enum sb_via { SB_VIA_HTTP, SB_VIA_CAPI, SB_VIA_FLOOR };

#define SB_MAX_LEVELS 16

typedef struct sb_opts {
    int flavor;
    int port;                   /* the server's, or the floor's own */
    int n;                      /* listeners */
    int msgs;                   /* fan-out messages per phase */
    int workers;                /* listener processes */
    int src_base;               /* first source address 127.0.0.<base> */
    int pub_conns, pub_depth;   /* targeted publisher window */
    int idle_s, hold_s, stall_s, cap_s, msg_timeout_s;
    int server_pid;             /* the first of pids */
    int pids[8], npids;         /* -P pid[,pid...]: CPU summed over these
                                   process trees (a cluster's hosts) */
    int pub_port;               /* -Q: where publishes go (cluster: the
                                   other host); default the port */
    int redis_port;             /* -R: snapshot its INFO commandstats
                                   around each phase */
    char phases[8];             /* f F t T: fan-out, targeted; HTTP, C API */
    char key[SB_NAME_MAX];
    char prefix[64];            /* SSEPrefix */
    char tag[16];               /* listener names: <tag><6 digits> */
    int levels[SB_MAX_LEVELS];
    int nlevels;
    int blocked;                /* punct: listeners that never read */
    int hb_s;                   /* punct: the server's SSEHeartbeat */
    int burst;                  /* punct: notifies that fill them */
    int payload;                /* -z: bytes of the JSON body of the
                                   payload phases (p, q; floor: all) */
} sb_opts_t;

typedef struct sb_lst {
    char id[SB_ID_MAX];
    int state;
    int reopened;               /* sent to reconnect before registered */
} sb_lst_t;

/* Why a listener failed to be set up: its stream could not connect, was
 * closed (or reset) before its head, answered other than 200, was closed
 * after its head before it was registered, or a control request (make-id,
 * listen) failed. */
enum { SB_FAIL_CONNECT, SB_FAIL_CLOSED, SB_FAIL_STATUS, SB_FAIL_EARLY,
       SB_FAIL_CTRL, SB_FAIL_KINDS };

typedef struct sb_shared {
    sb_opts_t o;
    volatile int phase;
    volatile int target;        /* listeners to have opened by now */
    volatile int fan_cur;       /* the fan-out message being published */
    int ready, failed, dropped, bad, missed, dup;
    int fail_why[SB_FAIL_KINDS];    /* failed, by why (SB_FAIL_*) */
    int replaced;               /* control connections that stalled */
    int reopened;               /* streams a server sent to reconnect
                                   (200, closed before any event), opened
                                   again at once as EventSource does
                                   after retry: */
    long long heartbeats;
    int fan_count[SB_MAX_MSGS];
    int tgt_count[3];           /* http, capi, http with a payload */
    int paychk;                 /* payloads received whole and checked */
    long long rx_bytes;         /* bytes the streams read (HTTP body,
                                   chunk framing included) */
    int ev_bytes[SB_EV_COMPLETED + 1];  /* the last event of each kind:
                                   its SSE bytes (fields and newlines) */
    sb_lst_t *lst;              /* n listeners */
    int64_t *fan;               /* n x SB_MAX_MSGS receipt times */
    int64_t *tgt_lat;           /* 3 x n: completion latency, ns */
    int64_t *tgt_at;            /* 3 x n: completion receipt time */
    /* punct: heartbeat lateness, ns, while `measuring` */
    volatile int measuring;
    long late_cap;              /* samples per worker */
    long late_n[256];           /* samples taken, per worker */
    int64_t *late;              /* workers x late_cap */
    int *late_cnt;              /* n: samples per listener */
} sb_shared_t;

extern sb_shared_t *sb;

#define SB_ADD(field, v) __atomic_add_fetch(&(field), (v), __ATOMIC_RELEASE)
#define SB_GET(field) __atomic_load_n(&(field), __ATOMIC_ACQUIRE)

void sb_name(int i, char *buf, size_t len);
int sb_is_blocked(int i);                      /* punct: never reads */
void sb_punct(void);
void idle_for(double secs, int lfd);            /* polling meanwhile */
double wait_settled(int want, int lfd);
void sb_worker_run(int w);                     /* never returns */
void sb_pub_init(int epfd);
void sb_fanout(int via, int msg0, int pay);
void sb_targeted(int via, int pay);
int sb_payload(char *buf, size_t cap, const char *tag, int len);
int sb_payload_check(const char *p, size_t len, int want,
                     const char **tag, size_t *tag_len);
int sb_floor_accept(int lfd);
void sb_floor_send(int k, const char *bytes, size_t len, int64_t *t_end);

#endif /* SB_H */
