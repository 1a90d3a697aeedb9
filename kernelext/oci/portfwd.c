/* kernelext-portfwd: the published-port forwarder of one container.
 *
 * kernelext starts it inside the container's network namespace (nsenter --net,
 * plus --user when the container has its own user namespace), with the host-side
 * sockets already bound on 127.0.0.1 by kernelext and inherited as descriptors:
 * those stay in the host's namespace, while every socket this process opens is
 * in the container's. So it
 *   - brings the namespace's loopback up (a runc restore leaves it down) and, when
 *     it forwards TCP, lets it carry big segments (see loopback_big_segments),
 *   - accepts on each inherited TCP socket and connects to 127.0.0.1:PORT inside
 *     the container; bytes move with splice(2) through one pipe per direction,
 *     never copied into user space; one epoll loop serves every connection,
 *   - relays UDP datagrams, one connected socket per client address,
 *   - exits when the container's init process exits (a pidfd), so every
 *     connection closes with the container even before kernelext cleans up;
 *     kernelext's cleanup also kills it.
 * It reports "ready PID" or "error TEXT" on stdout, then detaches into its own
 * session with stdio on /dev/null: the starter only waits for its pipes to close.
 *
 * usage: kernelext-portfwd CONTAINER_ID CONTAINER_PID [FD:PORT/tcp | FD:PORT/udp] ...
 * (the ID only names the container in process listings)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 256
#define PIPE_DEFAULT (64 * 1024) /* a new pipe's capacity */
#define PIPE_BYTES (1024 * 1024)  /* a bulk direction's pipe (the default pipe-max-size): fewer wake-ups */
#define DATAGRAM_MAX 65536
#define UDP_IDLE_S 60             /* a UDP flow without traffic for this long is dropped */
#define TICK_MS 5000
#define UNWATCHED (~0u)           /* a connection's socket not yet in the epoll set */
#define SPARE_PIPES 64            /* empty pipes kept for new connections: no pipe2 and close each */
/* Both legs of a connection are loopback, which never drops a packet: congestion control has
 * nothing to do there, but the host's default may pace (BBR: a timer per burst, about a tenth of
 * the forwarder's CPU in a bulk transfer). Reno never paces, and any user may choose it. */
#define LOOPBACK_CC "reno"
/* The largest TCP segment a loopback may carry (the kernel's GSO_MAX_SIZE, lo's tso_max_size);
 * the default is 64 KiB. Set through this attribute of Linux 6.3, which older headers lack. */
#define LOOPBACK_GSO_BYTES 524280u
#define ATTR_GSO_IPV4_MAX_SIZE 63 /* IFLA_GSO_IPV4_MAX_SIZE */

enum kind { K_TCP_LISTENER, K_UDP_LISTENER, K_UDP_FLOW, K_END, K_PIDFD };

struct tag { enum kind kind; };

struct listener { struct tag tag; int fd; unsigned short port; };

struct conn;
struct end { struct tag tag; struct conn *conn; int side; };

/* side 0: the client on the host; side 1: the service in the container.
 * pipe[d] carries bytes read from side d towards side 1-d. */
struct conn {
    struct end end[2];
    int fd[2], pipe[2][2];
    size_t pending[2];
    bool eof[2], shut[2], grown[2], closed;
    unsigned interest[2];
    struct conn *next_dead;
};

struct flow {
    struct tag tag;
    struct listener *listener;
    int fd;
    struct sockaddr_in peer;
    time_t last;
    struct flow *next;
};

static int epfd;
static struct conn *dead_conns;
static struct flow *flows;
static char datagram[DATAGRAM_MAX];
static struct tag pidfd_tag = {K_PIDFD};
static int spare_pipes[SPARE_PIPES][2];
static int spares;

static void fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("error ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    exit(1);
}

static void watch(int fd, unsigned events, struct tag *tag, int op) {
    struct epoll_event ev = {.events = events, .data.ptr = tag};
    epoll_ctl(epfd, op, fd, &ev);
}

static struct sockaddr_in loopback(unsigned short port) {
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return addr;
}

static void loopback_up(void) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr = {0};
    strcpy(ifr.ifr_name, "lo");
    if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
        fail("reading the loopback's flags: %s", strerror(errno));
    if (!(ifr.ifr_flags & IFF_UP)) {
        ifr.ifr_flags |= IFF_UP;
        if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
            fail("bringing the loopback up: %s", strerror(errno));
    }
    close(s);
}

/* BIG TCP on the container's loopback: the service's sends to the forwarder go in segments of up to
 * 512 KiB instead of 64 KiB, which about halves the CPU that leg costs per byte (the host's loopback,
 * towards the client, is not ours to change). Best effort: a kernel before 6.3 ignores the attribute,
 * and the request is handled before sendto returns, so nothing waits for a reply. */
static void loopback_big_segments(void) {
    struct {
        struct nlmsghdr nh;
        struct ifinfomsg ifi;
        struct rtattr attr;
        unsigned size;
    } req = {
        .nh = {.nlmsg_len = sizeof req, .nlmsg_type = RTM_NEWLINK, .nlmsg_flags = NLM_F_REQUEST},
        .ifi = {.ifi_family = AF_UNSPEC, .ifi_index = (int)if_nametoindex("lo")},
        .attr = {.rta_len = RTA_LENGTH(sizeof req.size), .rta_type = ATTR_GSO_IPV4_MAX_SIZE},
        .size = LOOPBACK_GSO_BYTES,
    };
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (s < 0)
        return;
    sendto(s, &req, sizeof req, 0, (struct sockaddr *)&kernel, sizeof kernel);
    close(s);
}

/* ----------------------------------------------------------------- TCP */
static bool take_pipe(int p[2]) {
    if (spares == 0)
        return pipe2(p, O_NONBLOCK | O_CLOEXEC) == 0;
    spares--;
    p[0] = spare_pipes[spares][0];
    p[1] = spare_pipes[spares][1];
    return true;
}

/* An empty pipe is as good as new (a grown one keeps its size); one with bytes left is closed. */
static void give_pipe(int p[2], bool empty) {
    if (empty && spares < SPARE_PIPES) {
        spare_pipes[spares][0] = p[0];
        spare_pipes[spares][1] = p[1];
        spares++;
    } else {
        close(p[0]);
        close(p[1]);
    }
}

static void close_conn(struct conn *c) {
    if (c->closed)
        return;
    c->closed = true;
    for (int d = 0; d < 2; d++) {
        close(c->fd[d]);  /* also removes it from the epoll set */
        give_pipe(c->pipe[d], c->pending[d] == 0);
    }
    c->next_dead = dead_conns;  /* freed after the current batch of events */
    dead_conns = c;
}

/* Move what side d has sent towards side 1-d; false on an error that ends the connection. */
static bool pump(struct conn *c, int d) {
    int src = c->fd[d], dst = c->fd[1 - d];
    for (;;) {
        if (c->pending[d] == 0 && !c->eof[d]) {
            ssize_t n = splice(src, NULL, c->pipe[d][1], NULL, PIPE_BYTES, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (n >= PIPE_DEFAULT && !c->grown[d]) {
                /* A bulk transfer: only now a big pipe (growing every new one costs short requests). */
                fcntl(c->pipe[d][1], F_SETPIPE_SZ, PIPE_BYTES);
                c->grown[d] = true;
            }
            if (n > 0)
                c->pending[d] += (size_t)n;
            else if (n == 0)
                c->eof[d] = true;
            else if (errno != EAGAIN)
                return false;
        }
        if (c->pending[d] == 0)
            break;
        ssize_t n = splice(c->pipe[d][0], NULL, dst, NULL, c->pending[d], SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n < 0)
            return errno == EAGAIN;
        c->pending[d] -= (size_t)n;
        if (c->pending[d] > 0)
            return true;  /* the destination is full: wait until it is writable */
    }
    if (c->eof[d] && !c->shut[d]) {
        shutdown(dst, SHUT_WR);
        c->shut[d] = true;
    }
    return true;
}

static void update_interest(struct conn *c) {
    for (int s = 0; s < 2; s++) {
        unsigned want = 0;
        if (c->pending[s] == 0 && !c->eof[s])
            want |= EPOLLIN;
        if (c->pending[1 - s] > 0)
            want |= EPOLLOUT;
        if (want != c->interest[s]) {
            watch(c->fd[s], want, &c->end[s].tag, c->interest[s] == UNWATCHED ? EPOLL_CTL_ADD : EPOLL_CTL_MOD);
            c->interest[s] = want;
        }
    }
}

static void on_end(struct end *e, unsigned events) {
    struct conn *c = e->conn;
    if (c->closed)
        return;
    if ((events & EPOLLERR) || !pump(c, 0) || !pump(c, 1)) {
        close_conn(c);
        return;
    }
    if (c->shut[0] && c->shut[1]) {
        close_conn(c);
        return;
    }
    update_interest(c);
}

/* Set on the listeners too: accepted sockets inherit both options. */
static void tune(int fd) {
    int on = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, LOOPBACK_CC, sizeof LOOPBACK_CC - 1);
}

static void on_tcp_listener(struct listener *l) {
    for (;;) {
        int client = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (client < 0)
            return;  /* EAGAIN, or out of descriptors: the rest waits in the backlog */
        struct conn *c = calloc(1, sizeof *c);
        int server = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (!c || server < 0 || !take_pipe(c->pipe[0])) {
            close(client);
            if (server >= 0) close(server);
            free(c);
            continue;
        }
        if (!take_pipe(c->pipe[1])) {
            close(client); close(server); give_pipe(c->pipe[0], true);
            free(c);
            continue;
        }
        c->fd[0] = client;
        c->fd[1] = server;
        tune(server);
        /* On loopback the handshake is done when connect returns; until then the socket reads and
         * writes EAGAIN, so the connection simply waits for it like for any full buffer, and a
         * refused connection ends it with EPOLLERR (the client sees its connection close). */
        struct sockaddr_in addr = loopback(l->port);
        if (connect(server, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) {
            close(client); close(server);
            for (int d = 0; d < 2; d++) give_pipe(c->pipe[d], true);
            free(c);
            continue;
        }
        for (int s = 0; s < 2; s++) {
            c->end[s] = (struct end){{K_END}, c, s};
            c->interest[s] = UNWATCHED;
        }
        /* A client usually sends its request with its connection: pass it on now rather than after
         * an epoll round; this also adds both sockets to the epoll set. */
        on_end(&c->end[0], 0);
    }
}

/* ----------------------------------------------------------------- UDP */
static void on_udp_listener(struct listener *l, time_t now) {
    for (;;) {
        struct sockaddr_in peer;
        socklen_t len = sizeof peer;
        ssize_t n = recvfrom(l->fd, datagram, sizeof datagram, 0, (struct sockaddr *)&peer, &len);
        if (n < 0)
            return;
        struct flow *f = flows;
        while (f && !(f->listener == l && f->peer.sin_port == peer.sin_port &&
                      f->peer.sin_addr.s_addr == peer.sin_addr.s_addr))
            f = f->next;
        if (!f) {
            int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            struct sockaddr_in addr = loopback(l->port);
            if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0 || !(f = calloc(1, sizeof *f))) {
                if (fd >= 0) close(fd);
                continue;
            }
            *f = (struct flow){{K_UDP_FLOW}, l, fd, peer, now, flows};
            flows = f;
            watch(fd, EPOLLIN, &f->tag, EPOLL_CTL_ADD);
        }
        f->last = now;
        send(f->fd, datagram, (size_t)n, 0);
    }
}

static void on_udp_flow(struct flow *f, time_t now) {
    ssize_t n;
    while ((n = recv(f->fd, datagram, sizeof datagram, 0)) >= 0) {
        sendto(f->listener->fd, datagram, (size_t)n, 0, (struct sockaddr *)&f->peer, sizeof f->peer);
        f->last = now;
    }
}

static void expire_flows(time_t now) {
    for (struct flow **p = &flows; *p;) {
        struct flow *f = *p;
        if (now - f->last > UDP_IDLE_S) {
            close(f->fd);
            *p = f->next;
            free(f);
        } else {
            p = &f->next;
        }
    }
}

/* ---------------------------------------------------------------- main */
static void raise_fd_limit(void) {
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
        lim.rlim_cur = lim.rlim_max;
        setrlimit(RLIMIT_NOFILE, &lim);
    }
}

static void detach(void) {
    fflush(stdout);
    pid_t child = fork();
    if (child < 0)
        fail("fork: %s", strerror(errno));
    if (child > 0) {
        printf("ready %d\n", (int)child);
        exit(0);
    }
    setsid();
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    for (int fd = STDIN_FILENO; fd <= STDERR_FILENO; fd++)
        dup2(null, fd);  /* the starter reads stdout and stderr until they close */
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 3)
        fail("usage: kernelext-portfwd CONTAINER_ID CONTAINER_PID [FD:PORT/tcp|FD:PORT/udp ...]");
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();
    loopback_up();
    int pidfd = (int)syscall(SYS_pidfd_open, (pid_t)atoi(argv[2]), 0);
    if (pidfd < 0)
        fail("watching container process %s: %s", argv[2], strerror(errno));
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        fail("epoll: %s", strerror(errno));
    watch(pidfd, EPOLLIN, &pidfd_tag, EPOLL_CTL_ADD);
    bool forwards_tcp = false;
    for (int i = 3; i < argc; i++) {
        int fd, port;
        char proto[4] = "";
        if (sscanf(argv[i], "%d:%d/%3s", &fd, &port, proto) != 3 || port < 1 || port > 65535 ||
            (strcmp(proto, "tcp") && strcmp(proto, "udp")))
            fail("invalid mapping %s", argv[i]);
        struct listener *l = calloc(1, sizeof *l);
        bool tcp = strcmp(proto, "tcp") == 0;
        *l = (struct listener){{tcp ? K_TCP_LISTENER : K_UDP_LISTENER}, fd, (unsigned short)port};
        if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
            fail("inherited descriptor %d: %s", fd, strerror(errno));
        if (tcp) {
            tune(fd);
            forwards_tcp = true;
        }
        watch(fd, EPOLLIN, &l->tag, EPOLL_CTL_ADD);
    }
    if (forwards_tcp)
        loopback_big_segments();
    if (argc == 3) {  /* nothing to forward: the loopback was all there was to do */
        printf("ready 0\n");
        return 0;
    }
    detach();
    struct epoll_event events[MAX_EVENTS];
    time_t last_expiry = time(NULL);
    for (;;) {
        int n = epoll_wait(epfd, events, MAX_EVENTS, TICK_MS);
        time_t now = time(NULL);
        for (int i = 0; i < n; i++) {
            struct tag *tag = events[i].data.ptr;
            switch (tag->kind) {
            case K_PIDFD: return 0;  /* the container is gone: exiting closes every connection */
            case K_TCP_LISTENER: on_tcp_listener((struct listener *)tag); break;
            case K_UDP_LISTENER: on_udp_listener((struct listener *)tag, now); break;
            case K_UDP_FLOW: on_udp_flow((struct flow *)tag, now); break;
            case K_END: on_end((struct end *)tag, events[i].events); break;
            }
        }
        while (dead_conns) {
            struct conn *c = dead_conns;
            dead_conns = c->next_dead;
            free(c);
        }
        if (flows && now - last_expiry >= TICK_MS / 1000) {
            expire_flows(now);
            last_expiry = now;
        }
    }
}
