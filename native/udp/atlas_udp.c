/*
 * atlas_udp: the node's UDP socket with batched system calls (Linux), for src/transport/udp/.
 *
 * Why: node:dgram makes one `sendmsg` per datagram, through a SendWrap and a callback, and one JS
 * callback per received datagram; on this kind of machine that was the top self-time item of the
 * bulk and request profiles (bench/RESULTS.md, "Issue 17 levers"). Here:
 *   - sendBatch() sends what the JS side staged during a turn with one `sendmmsg`; runs of
 *     packets to one address with one size (the last may be shorter) become one UDP GSO message
 *     (UDP_SEGMENT): the kernel walks its stack once per run instead of once per packet;
 *   - received datagrams are read with `recvmmsg` into one arena shared by every socket of the
 *     process (the callback is synchronous, so one arena suffices), with UDP GRO: the kernel hands
 *     over runs of coalesced datagrams, each with its segment size. One JS call per batch.
 * Sends never block: what the kernel refuses (EAGAIN: send buffer full) is dropped and counted,
 * like a loss on the path; QUIC's recovery resends it.
 *
 * JS interface (all synchronous):
 *   init(arena: Buffer, meta: Buffer)          the shared receive arena and its per-message records
 *   open(family 4|6, host, port, ipv6Only, rcvbuf, sndbuf, onRecv(count)) -> handle
 *   localPort(handle) -> port
 *   encodeAddr(family 4|6, host, port, out: Buffer(SA_LEN)) -> sockaddr length (0: not an address)
 *   sendBatch(handle, data: Buffer, meta: Buffer, count) -> packets handed to the kernel
 *   stats(handle) -> [sendCalls, gsoRuns, dropped, recvCalls, recvDatagrams]
 *   expectReply(us)                            busy-poll for up to `us` µs the next time the loop
 *                                              would sleep, until any event is ready (armed until then)
 *   spinStats() -> [busy polls, busy polls an event ended]
 *   close(handle)
 * Record layouts are fixed below (SEND_REC, RECV_REC) and mirrored in src/transport/udp/native.ts.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <node_api.h>
#include <sched.h>
#include <sys/epoll.h>
#include <time.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

/* A send record: u32 offset, u16 length, u8 sockaddr length, u8 unused, then the sockaddr. */
#define SA_LEN 28
#define SEND_REC 36
/* A receive record: u32 offset, u32 length, u32 segment size (0: one datagram), u16 port,
 * u8 family (4|6), u8 text length, 16 address bytes (IPv4 in the first 4), then the address as
 * text (inet_ntop, as dgram's rinfo.address), at most 46 bytes. */
#define RECV_REC 80
#define RECV_TEXT 32
#define MAX_TEXT 46

#define BATCH 32        /* messages per sendmmsg / recvmmsg */
#define RECV_SLOT 65536 /* bytes per received message (a GRO run is at most 64 KiB) */
#define MAX_GSO_SEGS 64
#define MAX_GSO_BYTES 65000
#define RECV_ROUNDS 8 /* recvmmsg calls per readable event before yielding to the loop */

static uint8_t *arena = NULL;
static uint8_t *recv_meta = NULL;
static size_t arena_len = 0;
static napi_ref arena_ref = NULL, meta_ref = NULL;

typedef struct {
  int fd;
  int gso; /* 1 until the kernel refuses UDP_SEGMENT */
  int closed;
  int holders; /* the JS handle and the uv handle: freed when both let go */
  uv_poll_t poll;
  napi_env env;
  napi_ref self;
  napi_ref on_recv;
  napi_async_context ctx;
  double send_calls, gso_runs, dropped, recv_calls, recv_datagrams;
} udp_t;

#define CHECK(call)                                                                                \
  do {                                                                                             \
    if ((call) != napi_ok) {                                                                       \
      napi_throw_error(env, NULL, "atlas_udp: N-API call failed: " #call);                         \
      return NULL;                                                                                 \
    }                                                                                              \
  } while (0)

static napi_value throw_errno(napi_env env, int err, const char *what) {
  const char *code = err == EADDRINUSE      ? "EADDRINUSE"
                     : err == EACCES        ? "EACCES"
                     : err == EADDRNOTAVAIL ? "EADDRNOTAVAIL"
                     : err == EAFNOSUPPORT  ? "EAFNOSUPPORT"
                     : err == EINVAL        ? "EINVAL"
                                            : "EIO";
  char msg[160];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_throw_error(env, code, msg);
  return NULL;
}

/* The call's arguments (up to `argc`), the first of which must be a socket handle. */
static int handle_args(napi_env env, napi_callback_info info, size_t argc, napi_value *argv, udp_t **out) {
  void *p = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_external(env, argv[0], &p) != napi_ok || !p) {
    napi_throw_type_error(env, NULL, "atlas_udp: not a socket handle");
    return 0;
  }
  *out = p;
  return 1;
}

static int make_addr(int family, const char *host, int port, struct sockaddr_storage *ss, socklen_t *len) {
  memset(ss, 0, sizeof *ss);
  if (family == 4) {
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &a->sin_addr) != 1) return 0;
    *len = sizeof *a;
  } else {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1) return 0;
    *len = sizeof *a;
  }
  return 1;
}

static napi_value js_init(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  void *a, *m;
  size_t al, ml;
  CHECK(napi_get_buffer_info(env, argv[0], &a, &al));
  CHECK(napi_get_buffer_info(env, argv[1], &m, &ml));
  if (al < (size_t)BATCH * RECV_SLOT || ml < (size_t)BATCH * RECV_REC) {
    napi_throw_range_error(env, NULL, "atlas_udp: receive arena or records too small");
    return NULL;
  }
  if (arena_ref) napi_delete_reference(env, arena_ref);
  if (meta_ref) napi_delete_reference(env, meta_ref);
  CHECK(napi_create_reference(env, argv[0], 1, &arena_ref));
  CHECK(napi_create_reference(env, argv[1], 1, &meta_ref));
  arena = a;
  arena_len = al;
  recv_meta = m;
  napi_value r;
  CHECK(napi_create_uint32(env, BATCH, &r));
  return r;
}

static void fill_recv_record(uint8_t *rec, uint32_t off, uint32_t len, uint32_t seg, struct sockaddr_storage *from) {
  memset(rec, 0, RECV_REC);
  memcpy(rec, &off, 4);
  memcpy(rec + 4, &len, 4);
  memcpy(rec + 8, &seg, 4);
  char text[INET6_ADDRSTRLEN] = "";
  uint16_t port = 0;
  if (from->ss_family == AF_INET) {
    struct sockaddr_in *a = (struct sockaddr_in *)from;
    port = ntohs(a->sin_port);
    rec[14] = 4;
    memcpy(rec + 16, &a->sin_addr, 4);
    inet_ntop(AF_INET, &a->sin_addr, text, sizeof text);
  } else if (from->ss_family == AF_INET6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)from;
    port = ntohs(a->sin6_port);
    rec[14] = 6;
    memcpy(rec + 16, &a->sin6_addr, 16);
    inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof text);
  }
  memcpy(rec + 12, &port, 2);
  size_t tl = strnlen(text, MAX_TEXT);
  rec[15] = (uint8_t)tl;
  memcpy(rec + RECV_TEXT, text, tl);
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * The wait for a reply (expectReply): one for the process. It watches the event loop's own epoll
 * descriptor (nested in an epoll set of its own: an epoll descriptor is readable while its
 * interest list has events ready), so anything the loop would wake for ends it — a datagram on
 * any socket, a thread-pool completion (libSQL's commits), a control connection — not only the
 * datagram it waits for.
 */
static struct {
  uv_prepare_t prep;
  int epfd;      /* -1 until the first socket opens */
  uint32_t us;   /* the armed budget, 0 when not armed */
  double waits, hits;
} spin = {.epfd = -1};

static void spin_disarm(void) {
  spin.us = 0;
  uv_prepare_stop(&spin.prep);
}

/*
 * Runs just before the loop polls for I/O. When the loop is about to sleep (nothing else due)
 * and a reply is expected, check for ready events without blocking for up to `us` (never past
 * the next timer): an idle CPU sleeps, and on a virtual machine a halted vCPU takes longer to
 * wake than a nearby peer takes to answer (docs/transport.md, "Busy polling"). Each check yields
 * the CPU first, so a peer sharing the core runs meanwhile. Either way the loop then polls as
 * usual — at once when something came.
 */
static void on_spin(uv_prepare_t *h) {
  int due_ms = uv_backend_timeout(h->loop); /* 0: work is due (spin once idle); -1: no timer */
  if (!spin.us || due_ms == 0) return;
  uint64_t us = spin.us;
  if (due_ms > 0 && (uint64_t)due_ms * 1000u < us) us = (uint64_t)due_ms * 1000u; /* never past a timer */
  uint64_t end = now_ns() + us * 1000u;
  spin_disarm();
  spin.waits++;
  struct epoll_event ev;
  do {
    sched_yield();
    if (epoll_wait(spin.epfd, &ev, 1, 0) > 0) {
      spin.hits++;
      return;
    }
  } while (now_ns() < end);
}

/* Set up the wait on `loop` (the first socket's; the addon serves the main thread only). */
static void spin_init(uv_loop_t *loop) {
  if (spin.epfd >= 0) return;
  int epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) return;
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = uv_backend_fd(loop)};
  if (ev.data.fd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, ev.data.fd, &ev) < 0) {
    close(epfd); /* no busy polling: expectReply does nothing */
    return;
  }
  spin.epfd = epfd;
  uv_prepare_init(loop, &spin.prep);
  uv_unref((uv_handle_t *)&spin.prep);
}

/* expectReply(us): wait for up to `us` microseconds for an event the next time the loop would sleep. */
static napi_value js_expect_reply(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint32_t us;
  CHECK(napi_get_value_uint32(env, argv[0], &us));
  if (spin.epfd < 0 || us == 0) return NULL;
  if (!spin.us) uv_prepare_start(&spin.prep, on_spin);
  if (us > spin.us) spin.us = us;
  return NULL;
}

/* spinStats() -> [waits, waits an event ended] */
static napi_value js_spin_stats(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value arr, v;
  CHECK(napi_create_array_with_length(env, 2, &arr));
  CHECK(napi_create_double(env, spin.waits, &v));
  CHECK(napi_set_element(env, arr, 0, v));
  CHECK(napi_create_double(env, spin.hits, &v));
  CHECK(napi_set_element(env, arr, 1, v));
  return arr;
}

static void on_readable(uv_poll_t *poll, int status, int events) {
  udp_t *u = poll->data;
  if (u->closed || !arena || status < 0 || !(events & UV_READABLE)) return;
  napi_env env = u->env;
  if (spin.us) spin_disarm();
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  struct sockaddr_storage from[BATCH];
  char ctrl[BATCH][CMSG_SPACE(sizeof(int))];
  for (int round = 0; round < RECV_ROUNDS && !u->closed; round++) {
    for (int i = 0; i < BATCH; i++) {
      iov[i].iov_base = arena + (size_t)i * RECV_SLOT;
      iov[i].iov_len = RECV_SLOT;
      memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_name = &from[i];
      msgs[i].msg_hdr.msg_namelen = sizeof from[i];
      msgs[i].msg_hdr.msg_control = ctrl[i];
      msgs[i].msg_hdr.msg_controllen = sizeof ctrl[i];
    }
    int n = recvmmsg(u->fd, msgs, BATCH, MSG_DONTWAIT, NULL);
    u->recv_calls++;
    if (n <= 0) return; /* EAGAIN: drained; other errors (ICMP unreachable) are not fatal */
    for (int i = 0; i < n; i++) {
      uint32_t seg = 0;
      for (struct cmsghdr *c = CMSG_FIRSTHDR(&msgs[i].msg_hdr); c; c = CMSG_NXTHDR(&msgs[i].msg_hdr, c)) {
        if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
          int s;
          memcpy(&s, CMSG_DATA(c), sizeof s);
          seg = (uint32_t)s;
        }
      }
      uint32_t len = msgs[i].msg_len;
      if (seg >= len) seg = 0;
      u->recv_datagrams += seg ? (len + seg - 1) / seg : 1;
      fill_recv_record(recv_meta + (size_t)i * RECV_REC, (uint32_t)i * RECV_SLOT, len, seg, &from[i]);
    }
    napi_handle_scope scope;
    if (napi_open_handle_scope(env, &scope) != napi_ok) return;
    napi_value cb, self, argv[1], result;
    int ok = napi_get_reference_value(env, u->on_recv, &cb) == napi_ok &&
             napi_get_reference_value(env, u->self, &self) == napi_ok && napi_create_uint32(env, n, &argv[0]) == napi_ok;
    if (ok && napi_make_callback(env, u->ctx, self, cb, 1, argv, &result) == napi_pending_exception) {
      napi_value err;
      napi_get_and_clear_last_exception(env, &err);
      napi_fatal_exception(env, err);
    }
    napi_close_handle_scope(env, scope);
    if (n < BATCH) return;
  }
}

static void on_handle_gc(napi_env env, void *data, void *hint);

static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t family, port, rcvbuf, sndbuf;
  bool v6only;
  char host[64];
  size_t hl;
  CHECK(napi_get_value_int32(env, argv[0], &family));
  CHECK(napi_get_value_string_utf8(env, argv[1], host, sizeof host, &hl));
  CHECK(napi_get_value_int32(env, argv[2], &port));
  CHECK(napi_get_value_bool(env, argv[3], &v6only));
  CHECK(napi_get_value_int32(env, argv[4], &rcvbuf));
  CHECK(napi_get_value_int32(env, argv[5], &sndbuf));
  struct sockaddr_storage ss;
  socklen_t sl;
  if (!make_addr(family, host, port, &ss, &sl)) return throw_errno(env, EINVAL, "bind address");
  int fd = socket(family == 4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, errno, "socket");
  int off = v6only ? 1 : 0, one = 1;
  if (family == 6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off) < 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, e, "IPV6_V6ONLY");
  }
  /* Best effort, like dgram's recvBufferSize/sendBufferSize (the kernel caps them at rmem_max). */
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one); /* kernels without GRO leave seg at 0 */
  if (bind(fd, (struct sockaddr *)&ss, sl) < 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, e, "bind");
  }
  udp_t *u = calloc(1, sizeof *u);
  if (!u) {
    close(fd);
    return throw_errno(env, ENOMEM, "allocate");
  }
  u->fd = fd;
  u->gso = 1;
  u->env = env;
  uv_loop_t *loop;
  napi_value handle, name;
  CHECK(napi_get_uv_event_loop(env, &loop));
  u->holders = 2;
  CHECK(napi_create_external(env, u, on_handle_gc, NULL, &handle));
  CHECK(napi_create_reference(env, handle, 1, &u->self));
  CHECK(napi_create_reference(env, argv[6], 1, &u->on_recv));
  CHECK(napi_create_string_utf8(env, "atlas_udp", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_async_init(env, handle, name, &u->ctx));
  uv_poll_init(loop, &u->poll, fd);
  u->poll.data = u;
  uv_poll_start(&u->poll, UV_READABLE, on_readable);
  spin_init(loop);
  return handle;
}

static napi_value js_local_port(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], r;
  udp_t *u;
  if (!handle_args(env, info, argc, argv, &u)) return NULL;
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (getsockname(u->fd, (struct sockaddr *)&ss, &sl) < 0) return throw_errno(env, errno, "getsockname");
  int port = ss.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
                                     : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  CHECK(napi_create_int32(env, port, &r));
  return r;
}

static napi_value js_encode_addr(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4], r;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t family, port;
  char host[64];
  size_t hl;
  void *out;
  size_t ol;
  CHECK(napi_get_value_int32(env, argv[0], &family));
  CHECK(napi_get_value_string_utf8(env, argv[1], host, sizeof host, &hl));
  CHECK(napi_get_value_int32(env, argv[2], &port));
  CHECK(napi_get_buffer_info(env, argv[3], &out, &ol));
  struct sockaddr_storage ss;
  socklen_t sl = 0;
  int ok = ol >= SA_LEN && make_addr(family, host, port, &ss, &sl);
  if (ok) memcpy(out, &ss, sl);
  CHECK(napi_create_uint32(env, ok ? sl : 0, &r));
  return r;
}

/* Packets i..j-1 of one run go as one GSO message when there are several and the kernel allows. */
static int run_end(uint8_t *meta, int i, int count, int gso) {
  if (!gso) return i + 1;
  uint8_t *first = meta + (size_t)i * SEND_REC;
  uint16_t size;
  memcpy(&size, first + 4, 2);
  uint32_t bytes = size;
  int j = i + 1;
  while (j < count && j - i < MAX_GSO_SEGS) {
    uint8_t *rec = meta + (size_t)j * SEND_REC;
    uint16_t len;
    memcpy(&len, rec + 4, 2);
    if (len > size || bytes + len > MAX_GSO_BYTES || rec[6] != first[6] || memcmp(rec + 8, first + 8, first[6]) != 0)
      break;
    uint8_t *prev = meta + (size_t)(j - 1) * SEND_REC;
    uint16_t plen;
    uint32_t poff, off;
    memcpy(&plen, prev + 4, 2);
    memcpy(&poff, prev, 4);
    memcpy(&off, rec, 4);
    if (plen != size || off != poff + plen) break; /* equal, back-to-back segments; the last may be shorter */
    bytes += len;
    j++;
  }
  return j;
}

static napi_value js_send_batch(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4], r;
  udp_t *u;
  if (!handle_args(env, info, argc, argv, &u)) return NULL;
  void *data, *metav;
  size_t dl, ml;
  uint32_t count;
  CHECK(napi_get_buffer_info(env, argv[1], &data, &dl));
  CHECK(napi_get_buffer_info(env, argv[2], &metav, &ml));
  CHECK(napi_get_value_uint32(env, argv[3], &count));
  uint8_t *meta = metav;
  if ((size_t)count * SEND_REC > ml) count = (uint32_t)(ml / SEND_REC);
  uint32_t sent = 0;
  int i = 0;
  while (!u->closed && i < (int)count) {
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    char ctrl[BATCH][CMSG_SPACE(sizeof(uint16_t))];
    int runs[BATCH + 1];
    int m = 0;
    runs[0] = i;
    while (m < BATCH && i < (int)count) {
      int j = run_end(meta, i, count, u->gso);
      uint8_t *rec = meta + (size_t)i * SEND_REC;
      uint32_t off, bytes = 0;
      uint16_t size;
      memcpy(&off, rec, 4);
      memcpy(&size, rec + 4, 2);
      for (int k = i; k < j; k++) {
        uint16_t len;
        memcpy(&len, meta + (size_t)k * SEND_REC + 4, 2);
        bytes += len;
      }
      if ((size_t)off + bytes > dl) { /* a record pointing outside the data: stop here */
        count = i;
        break;
      }
      memset(&msgs[m].msg_hdr, 0, sizeof msgs[m].msg_hdr);
      iov[m].iov_base = (uint8_t *)data + off; /* a run's packets are staged back to back */
      iov[m].iov_len = bytes;
      msgs[m].msg_hdr.msg_iov = &iov[m];
      msgs[m].msg_hdr.msg_iovlen = 1;
      msgs[m].msg_hdr.msg_name = rec + 8;
      msgs[m].msg_hdr.msg_namelen = rec[6];
      if (j - i > 1) {
        msgs[m].msg_hdr.msg_control = ctrl[m];
        msgs[m].msg_hdr.msg_controllen = sizeof ctrl[m];
        struct cmsghdr *c = CMSG_FIRSTHDR(&msgs[m].msg_hdr);
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        memcpy(CMSG_DATA(c), &size, sizeof size);
        u->gso_runs++;
      }
      m++;
      i = j;
      runs[m] = i;
    }
    if (m == 0) break;
    int done = sendmmsg(u->fd, msgs, m, MSG_DONTWAIT);
    u->send_calls++;
    if (done < 0) done = 0;
    for (int k = 0; k < done; k++) sent += runs[k + 1] - runs[k];
    if (done < m) {
      int e = errno;
      if (runs[done + 1] - runs[done] > 1 && (e == EIO || e == EINVAL || e == EOPNOTSUPP)) {
        u->gso = 0; /* no GSO on this path (e.g. no checksum offload): resend singly from here */
        i = runs[done];
        continue;
      }
      /* EAGAIN or a per-destination error (unreachable): drop this message, go on after it */
      u->dropped += runs[done + 1] - runs[done];
      i = runs[done + 1];
    }
  }
  CHECK(napi_create_uint32(env, sent, &r));
  return r;
}

static napi_value js_stats(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], arr, v;
  udp_t *u;
  if (!handle_args(env, info, argc, argv, &u)) return NULL;
  double vals[5] = {u->send_calls, u->gso_runs, u->dropped, u->recv_calls, u->recv_datagrams};
  CHECK(napi_create_array_with_length(env, 5, &arr));
  for (uint32_t k = 0; k < 5; k++) {
    CHECK(napi_create_double(env, vals[k], &v));
    CHECK(napi_set_element(env, arr, k, v));
  }
  return arr;
}

static void release(udp_t *u) {
  if (--u->holders == 0) free(u);
}

static void on_poll_closed(uv_handle_t *h) {
  release(h->data);
}

static void on_handle_gc(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  udp_t *u = data;
  if (!u->closed) { /* only at environment teardown: the socket holds its handle until close() */
    u->closed = 1;
    uv_poll_stop(&u->poll);
    close(u->fd);
    free(u);
    return;
  }
  release(u);
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  udp_t *u;
  if (!handle_args(env, info, argc, argv, &u)) return NULL;
  if (u->closed) return NULL;
  u->closed = 1;
  uv_poll_stop(&u->poll);
  close(u->fd);
  napi_async_destroy(env, u->ctx);
  napi_delete_reference(env, u->on_recv);
  napi_delete_reference(env, u->self);
  /* The handle object may outlive the socket: it only ever sees `closed` after this, and the
   * memory stays until both it and the uv handle are gone. */
  uv_close((uv_handle_t *)&u->poll, on_poll_closed);
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"init", NULL, js_init, NULL, NULL, NULL, napi_default_jsproperty, NULL},
      {"open", NULL, js_open, NULL, NULL, NULL, napi_default_jsproperty, NULL},
      {"localPort", NULL, js_local_port, NULL, NULL, NULL, napi_default_jsproperty, NULL},
      {"encodeAddr", NULL, js_encode_addr, NULL, NULL, NULL, napi_default_jsproperty, NULL},
      {"sendBatch", NULL, js_send_batch, NULL, NULL, NULL, napi_default_jsproperty, NULL},
      {"expectReply", NULL, js_expect_reply, NULL, NULL, NULL, napi_default_jsproperty, NULL},
      {"spinStats", NULL, js_spin_stats, NULL, NULL, NULL, napi_default_jsproperty, NULL},
      {"stats", NULL, js_stats, NULL, NULL, NULL, napi_default_jsproperty, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_default_jsproperty, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}
