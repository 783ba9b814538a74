/*
 * Descriptors between the workers of one host (src/transport/fd-channel.ts).
 *
 * node:cluster passes a socket from one process to another only over its IPC
 * channel, one descriptor per round trip: the sender waits for the
 * receiver's acknowledgement, which comes when the receiver's event loop next
 * reads the channel. In a login storm a worker turns every 20-30 ms, so a
 * host moved 30-50 connections a second to their owners while hundreds
 * wanted to move (docs/benchmarks.md, "Connections on their owner").
 *
 * Here each worker listens on a Unix SOCK_SEQPACKET socket in the host's
 * private directory; a sender connects once per peer and sends each message
 * as one packet, with at most one descriptor (SCM_RIGHTS). Nothing waits for
 * an answer: a receiver takes every packet that arrived in one turn.
 * Seqpacket, not datagrams: an unconnected datagram socket queues only
 * net.unix.max_dgram_qlen packets (10 here), a connection as much as its
 * buffer holds.
 *
 * The listener and its accepted connections sit in an epoll set of their own,
 * and that one descriptor in libuv's loop (uv_poll): when it is readable the
 * event loop takes up to MAX_BATCH packets and calls JavaScript once with
 * them. A packet longer than MAX_MSG, or with more than one descriptor, is
 * dropped with its descriptors closed; a received descriptor is close-on-exec.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <node_api.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#define MAX_MSG 65536
#define MAX_BATCH 256

typedef struct {
  napi_env env;
  napi_ref cb;
  napi_async_context actx;
  int lfd, ep;
  int *conns; /* accepted connections, to close them at the end */
  int nconns, cap;
  uv_poll_t poll;
  unsigned char *buf;
  char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
  int closed;
} rx_t;

#define CHECK(call)                                                \
  do {                                                             \
    if ((call) != napi_ok) {                                       \
      napi_throw_error(env, NULL, "switchboard fdpass: " #call);   \
      return NULL;                                                 \
    }                                                              \
  } while (0)

/* A path argument one byte longer than sun_path holds, so that a longer string is seen as too long, not cut. */
#define PATH_ARG (sizeof(((struct sockaddr_un *)0)->sun_path) + 1)

/* The socket path in argument v, into path and a; -ENAMETOOLONG where it does not fit (or is not a string). */
static int path_arg(napi_env env, napi_value v, char *path, struct sockaddr_un *a) {
  size_t len;
  if (napi_get_value_string_utf8(env, v, path, PATH_ARG, &len) != napi_ok || len >= PATH_ARG - 1) return -ENAMETOOLONG;
  memset(a, 0, sizeof *a);
  a->sun_family = AF_UNIX;
  memcpy(a->sun_path, path, len + 1);
  return 0;
}

static void drop_conn(rx_t *r, int c) {
  epoll_ctl(r->ep, EPOLL_CTL_DEL, c, NULL);
  close(c);
  for (int i = 0; i < r->nconns; i++)
    if (r->conns[i] == c) {
      r->conns[i] = r->conns[--r->nconns];
      break;
    }
}

static void add_conn(rx_t *r, int c) {
  if (r->nconns == r->cap) {
    int cap = r->cap ? 2 * r->cap : 8;
    int *n = realloc(r->conns, cap * sizeof *n);
    if (n == NULL) {
      close(c);
      return;
    }
    r->conns = n;
    r->cap = cap;
  }
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = c};
  if (epoll_ctl(r->ep, EPOLL_CTL_ADD, c, &ev) != 0) {
    close(c);
    return;
  }
  r->conns[r->nconns++] = c;
}

/* Receives one packet from c into r->buf. >0: its length, *fd the descriptor or -1; 0: nothing more now;
 * -1: the connection ended or failed (dropped here); -2: a packet that was not ours (skipped, try again). */
static ssize_t take(rx_t *r, int c, int *fd) {
  union {
    struct cmsghdr h;
    char space[CMSG_SPACE(4 * sizeof(int))];
  } ctl;
  struct iovec iov = {.iov_base = r->buf, .iov_len = MAX_MSG};
  struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.space, .msg_controllen = sizeof ctl.space};
  ssize_t n;
  do n = recvmsg(c, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    drop_conn(r, c);
    return -1;
  }
  *fd = -1;
  int extra = 0;
  for (struct cmsghdr *h = CMSG_FIRSTHDR(&mh); h != NULL; h = CMSG_NXTHDR(&mh, h)) {
    if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS) continue;
    size_t k = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < k; i++) {
      int d;
      memcpy(&d, CMSG_DATA(h) + i * sizeof(int), sizeof d);
      if (*fd < 0) *fd = d;
      else {
        close(d);
        extra = 1;
      }
    }
  }
  /* Seqpacket: 0 bytes is the peer's end (senders here never send an empty packet). */
  if (n == 0 && *fd < 0 && !(mh.msg_flags & MSG_CTRUNC)) {
    drop_conn(r, c);
    return -1;
  }
  if (n == 0 || extra || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
    if (*fd >= 0) close(*fd);
    return -2;
  }
  return n;
}

static void deliver(rx_t *r) {
  napi_env env = r->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value datas, fds;
  uint32_t n = 0;
  if (napi_create_array(env, &datas) != napi_ok || napi_create_array(env, &fds) != napi_ok) goto out;
  struct epoll_event evs[64];
  int k = epoll_wait(r->ep, evs, 64, 0);
  for (int i = 0; i < k && n < MAX_BATCH; i++) {
    int c = evs[i].data.fd;
    if (c == r->lfd) {
      int a;
      while ((a = accept4(r->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) add_conn(r, a);
      continue;
    }
    while (n < MAX_BATCH) {
      int fd = -1;
      ssize_t m = take(r, c, &fd);
      if (m == -2) continue;
      if (m <= 0) break;
      napi_value b, f;
      if (napi_create_buffer_copy(env, (size_t)m, r->buf, NULL, &b) != napi_ok || napi_create_int32(env, fd, &f) != napi_ok) {
        if (fd >= 0) close(fd);
        break;
      }
      napi_set_element(env, datas, n, b);
      napi_set_element(env, fds, n, f);
      n++;
    }
  }
  if (n > 0) {
    napi_value cb, global, argv[2] = {datas, fds};
    if (napi_get_reference_value(env, r->cb, &cb) == napi_ok && napi_get_global(env, &global) == napi_ok) {
      /* The callback owns the descriptors from here. A throw is the process's uncaught exception, as any callback's. */
      if (napi_make_callback(env, r->actx, global, cb, 2, argv, NULL) == napi_pending_exception) {
        napi_value e;
        if (napi_get_and_clear_last_exception(env, &e) == napi_ok) napi_fatal_exception(env, e);
      }
    }
  }
out:
  napi_close_handle_scope(env, scope);
}

static void on_ready(uv_poll_t *p, int status, int events) {
  (void)status;
  (void)events;
  rx_t *r = p->data;
  if (!r->closed) deliver(r);
}

static void on_closed(uv_handle_t *h) {
  rx_t *r = h->data;
  free(r->buf);
  free(r->conns);
  free(r);
}

static void finalize(napi_env env, void *data, void *hint);

/* listen(path, callback(datas: Buffer[], fds: number[])) -> handle; the path is unlinked first. */
static napi_value fd_listen(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], out;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char path[PATH_ARG];
  struct sockaddr_un a;
  if (path_arg(env, argv[0], path, &a) != 0) {
    napi_throw_error(env, "ENAMETOOLONG", "switchboard fdpass: socket path too long, or not a string");
    return NULL;
  }
  napi_valuetype t;
  CHECK(napi_typeof(env, argv[1], &t));
  if (t != napi_function) {
    napi_throw_type_error(env, NULL, "switchboard fdpass: callback must be a function");
    return NULL;
  }
  uv_loop_t *loop;
  CHECK(napi_get_uv_event_loop(env, &loop));
  rx_t *r = calloc(1, sizeof *r);
  if (r == NULL || (r->buf = malloc(MAX_MSG)) == NULL) {
    free(r);
    napi_throw_error(env, "ENOMEM", "switchboard fdpass: out of memory");
    return NULL;
  }
  r->env = env;
  r->ep = -1;
  strcpy(r->path, path);
  unlink(path);
  r->lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int err = 0;
  if (r->lfd < 0 || bind(r->lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(r->lfd, 256) != 0) err = errno;
  if (err == 0 && (r->ep = epoll_create1(EPOLL_CLOEXEC)) < 0) err = errno;
  if (err == 0) {
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = r->lfd};
    if (epoll_ctl(r->ep, EPOLL_CTL_ADD, r->lfd, &ev) != 0) err = errno;
  }
  if (err == 0) {
    int e = uv_poll_init(loop, &r->poll, r->ep);
    if (e != 0) err = -e;
  }
  if (err == 0) {
    r->poll.data = r;
    int e = uv_poll_start(&r->poll, UV_READABLE, on_ready);
    if (e != 0) {
      /* An initialized handle is freed by its close callback. */
      r->closed = 1;
      close(r->lfd);
      close(r->ep);
      unlink(path);
      uv_close((uv_handle_t *)&r->poll, on_closed);
      napi_throw_error(env, NULL, "switchboard fdpass: uv_poll_start failed");
      return NULL;
    }
  }
  if (err != 0) {
    if (r->lfd >= 0) close(r->lfd);
    if (r->ep >= 0) close(r->ep);
    unlink(path);
    free(r->buf);
    free(r);
    char msg[200];
    snprintf(msg, sizeof msg, "switchboard fdpass: listen %s: %s", path, strerror(err));
    napi_throw_error(env, NULL, msg);
    return NULL;
  }
  napi_value name;
  CHECK(napi_create_reference(env, argv[1], 1, &r->cb));
  CHECK(napi_create_string_utf8(env, "switchboard:fdpass", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_async_init(env, NULL, name, &r->actx));
  CHECK(napi_create_external(env, r, finalize, NULL, &out));
  return out;
}

static void stop(napi_env env, rx_t *r) {
  if (r->closed) return;
  r->closed = 1;
  uv_poll_stop(&r->poll);
  for (int i = 0; i < r->nconns; i++) close(r->conns[i]);
  r->nconns = 0;
  close(r->lfd);
  close(r->ep);
  unlink(r->path);
  napi_delete_reference(env, r->cb);
  napi_async_destroy(env, r->actx);
  uv_close((uv_handle_t *)&r->poll, on_closed);
}

/* A handle nobody closed: its memory stays with the loop (the process is ending, or a leak the tests would see). */
static void finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)data;
  (void)hint;
}

/* close(handle): stops listening, closes every connection to it, removes the path. */
static napi_value fd_unlisten(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  void *p;
  CHECK(napi_get_value_external(env, argv[0], &p));
  stop(env, (rx_t *)p);
  return NULL;
}

/* poll(handle): takes what has arrived now, as the loop would at its next poll (a timer that must not overtake a packet). */
static napi_value fd_poll(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  void *p;
  CHECK(napi_get_value_external(env, argv[0], &p));
  rx_t *r = p;
  if (!r->closed) deliver(r);
  return NULL;
}

/* connect(path) -> descriptor, or -errno (ENOENT, ECONNREFUSED: nobody listens; EAGAIN: its backlog is full) */
static napi_value fd_connect(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char path[PATH_ARG];
  struct sockaddr_un a;
  int r = -ENAMETOOLONG;
  if (path_arg(env, argv[0], path, &a) == 0) {
    int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s < 0) r = -errno;
    else if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
      r = -errno;
      close(s);
    } else
      r = s;
  }
  CHECK(napi_create_int32(env, r, &out));
  return out;
}

/* send(fd, data: Buffer, passFd) -> 0, or -errno (EAGAIN: the peer's buffer is full; EPIPE: it is gone). passFd -1: none. */
static napi_value fd_send(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], out;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd, pass;
  void *data;
  size_t len;
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  CHECK(napi_get_buffer_info(env, argv[1], &data, &len));
  CHECK(napi_get_value_int32(env, argv[2], &pass));
  int r;
  if (len == 0 || len > MAX_MSG) r = -EMSGSIZE;
  else {
    union {
      struct cmsghdr h;
      char space[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct iovec iov = {.iov_base = data, .iov_len = len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (pass >= 0) {
      memset(&ctl, 0, sizeof ctl);
      mh.msg_control = ctl.space;
      mh.msg_controllen = sizeof ctl.space;
      struct cmsghdr *h = CMSG_FIRSTHDR(&mh);
      h->cmsg_level = SOL_SOCKET;
      h->cmsg_type = SCM_RIGHTS;
      h->cmsg_len = CMSG_LEN(sizeof(int));
      memcpy(CMSG_DATA(h), &pass, sizeof pass);
    }
    ssize_t n;
    do n = sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    r = n < 0 ? -errno : 0;
  }
  CHECK(napi_create_int32(env, r, &out));
  return out;
}

/* closeFd(fd): a descriptor from connect(), or one received and not taken. */
static napi_value fd_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  if (fd >= 0) close(fd);
  return NULL;
}

napi_status fdpass_define(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"fdListen", NULL, fd_listen, NULL, NULL, NULL, napi_default, NULL},
      {"fdUnlisten", NULL, fd_unlisten, NULL, NULL, NULL, napi_default, NULL},
      {"fdPoll", NULL, fd_poll, NULL, NULL, NULL, napi_default, NULL},
      {"fdConnect", NULL, fd_connect, NULL, NULL, NULL, napi_default, NULL},
      {"fdSend", NULL, fd_send, NULL, NULL, NULL, napi_default, NULL},
      {"fdClose", NULL, fd_close, NULL, NULL, NULL, napi_default, NULL},
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
