/*
 * Wake-ups between processes. Every child binds a Unix datagram socket
 * named after its pid in a directory that only the httpd user may enter
 * (<DefaultRuntimeDir>/mod_sse_mgr, mode 0700, made by the parent): no
 * other local user can bind a child's name first, nor send to one. A
 * publisher in any process (the parent too, as root) sends one byte to
 * the children it wakes (below). When that directory's path is too long
 * for a socket address, the names go to Linux's abstract namespace, with
 * a random word per httpd run: there they are listed in /proc/net/unix
 * and reachable by any local user (docs/security.md). A publish sends
 * only to the children that hold its targets and whose wake flag was
 * clear (the registry calls sse_wake_pid once its mutex is released).
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <unixd.h>

#include <apr_file_info.h>
#include <apr_strings.h>

#include "mod_sse_mgr_private.h"
#include "mod_sse_wake.h"

#define SSE_WAKE_MAX    256     /* children read per pass when waking */
#define SSE_WAKE_DIR    "mod_sse_mgr"

static int send_fd = -1;        /* any process: sends wake-ups */
static const char *wake_dir;    /* NULL: the abstract namespace */
static apr_uint64_t *wake_token;    /* abstract names only */

static socklen_t wake_addr(apr_uint32_t pid, struct sockaddr_un *sa)
{
    int n;

    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (wake_dir) {
        n = apr_snprintf(sa->sun_path, sizeof(sa->sun_path), "%s/%u",
                         wake_dir, pid);
        return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    }
    /* sun_path[0] == 0: Linux abstract namespace */
    n = apr_snprintf(sa->sun_path + 1, sizeof(sa->sun_path) - 1,
                     "mod_sse_mgr.%u.%016" APR_UINT64_T_HEX_FMT, pid,
                     *wake_token);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

static apr_status_t make_wake_token(void)
{
    const char *key = "mod_sse_mgr.wake_token";
    void *data = ap_retained_data_get(key);

    if (data == NULL) {
        apr_status_t rv;
        data = ap_retained_data_create(key, sizeof(*wake_token));
        rv = apr_generate_random_bytes(data, sizeof(*wake_token));
        if (rv != APR_SUCCESS) {
            return rv;
        }
    }
    wake_token = data;
    return APR_SUCCESS;
}

/* May the children (the httpd user, when we are root) pass through
 * every directory above @a dir? A checkout under a 0700 home or mktemp -d
 * directory, the demo's runtime directory, may not be. */
static int children_reach(apr_pool_t *p, const char *dir)
{
    char *path = apr_pstrdup(p, dir), *slash;
    struct stat sb;
    uid_t uid = ap_unixd_config.user_id;
    gid_t gid = ap_unixd_config.group_id;

    if (geteuid() != 0) {
        return 1;               /* the children are this user */
    }
    while ((slash = strrchr(path, '/')) != NULL && slash != path) {
        *slash = '\0';
        if (stat(path, &sb) != 0) {
            return 0;
        }
        if (!(sb.st_uid == uid ? (sb.st_mode & S_IXUSR)
              : sb.st_gid == gid ? (sb.st_mode & S_IXGRP)
              : (sb.st_mode & S_IXOTH))) {
            return 0;
        }
    }
    return 1;
}

/* The directory of the sockets: the httpd user's alone. Made (or made
 * private again) by the parent before it starts children; its path must
 * fit a socket address with a pid after it, and the children must be
 * able to reach it. */
static void make_wake_dir(apr_pool_t *pconf, server_rec *s)
{
    struct sockaddr_un sa;
    const char *dir = ap_runtime_dir_relative(pconf, SSE_WAKE_DIR);
    apr_status_t rv;

    wake_dir = NULL;
    if (dir == NULL || strlen(dir) + sizeof("/4294967295")
                       > sizeof(sa.sun_path)) {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, SSE_LOGNO(00143)
                     "DefaultRuntimeDir is too long a path for the "
                     "wake-up sockets: they go to the abstract namespace, "
                     "where any local user can reach them");
        return;
    }
    if (!children_reach(pconf, dir)) {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, SSE_LOGNO(00146)
                     "the httpd user cannot reach %s (a directory above it "
                     "is closed to it): the wake-up sockets go to the "
                     "abstract namespace, where any local user can reach "
                     "them", dir);
        return;
    }
    rv = apr_dir_make(dir, APR_FPROT_UREAD | APR_FPROT_UWRITE
                           | APR_FPROT_UEXECUTE, pconf);
    if (rv != APR_SUCCESS && !APR_STATUS_IS_EEXIST(rv)) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s, SSE_LOGNO(00144)
                     "cannot make %s for the wake-up sockets: they go to "
                     "the abstract namespace", dir);
        return;
    }
    if (chmod(dir, 0700) != 0
        || (geteuid() == 0 && chown(dir, ap_unixd_config.user_id,
                                    ap_unixd_config.group_id) != 0)) {
        ap_log_error(APLOG_MARK, APLOG_ERR, errno, s, SSE_LOGNO(00145)
                     "cannot make %s the httpd user's alone: the wake-up "
                     "sockets go to the abstract namespace", dir);
        return;
    }
    wake_dir = dir;
}

static apr_status_t close_fd(void *data)
{
    int *fd = data;

    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
    return APR_SUCCESS;
}

static apr_status_t make_send_socket(apr_pool_t *p)
{
    if (send_fd >= 0) {
        return APR_SUCCESS;
    }
    send_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (send_fd < 0) {
        return errno;
    }
    apr_pool_cleanup_register(p, &send_fd, close_fd, apr_pool_cleanup_null);
    return APR_SUCCESS;
}

apr_status_t sse_wake_post_config(apr_pool_t *pconf, server_rec *s)
{
    apr_status_t rv = make_wake_token();

    if (rv == APR_SUCCESS) {
        make_wake_dir(pconf, s);
        rv = make_send_socket(pconf);
    }
    if (rv == APR_SUCCESS) {
        sse_registry_set_waker(sse_wake_pid);
    }
    return rv;
}

typedef struct {
    int *fd;
    const char *path;           /* NULL: an abstract name */
} bound_t;

static apr_status_t unbind(void *data)
{
    bound_t *b = data;

    if (b->path) {
        (void)unlink(b->path);
    }
    return close_fd(b->fd);
}

apr_status_t sse_wake_bind(apr_pool_t *pchild, apr_uint32_t pid, int *fd)
{
    struct sockaddr_un sa;
    socklen_t len = wake_addr(pid, &sa);
    bound_t *b = apr_pcalloc(pchild, sizeof(*b));

    *fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (*fd < 0) {
        return errno;
    }
    b->fd = fd;
    if (sa.sun_path[0]) {
        /* a child killed with this pid before left its name behind; the
         * directory is the httpd user's alone, so it is ours to remove */
        b->path = apr_pstrdup(pchild, sa.sun_path);
        (void)unlink(b->path);
    }
    apr_pool_cleanup_register(pchild, b, unbind, apr_pool_cleanup_null);
    return bind(*fd, (struct sockaddr *)&sa, len) == 0 ? APR_SUCCESS
                                                      : errno;
}

void sse_wake_pid(apr_uint32_t pid)
{
    struct sockaddr_un sa;
    socklen_t len = wake_addr(pid, &sa);

    SSE_ASSERT(!sse_registry_lock_held());   /* no I/O under the lock */
    (void)sendto(send_fd, "w", 1, MSG_DONTWAIT, (struct sockaddr *)&sa, len);
}

void sse_wake_holders(sse_registry_t *reg, int any)
{
    apr_uint32_t pids[SSE_WAKE_MAX], from = 0;
    int i, n;

    while ((n = sse_registry_holders(reg, any, &from, pids,
                                     SSE_WAKE_MAX)) > 0) {
        for (i = 0; i < n; i++) {
            sse_wake_pid(pids[i]);
        }
    }
}
