/*
 * The writer thread: socket writes off the event loop (as Redis's I/O threads).
 *
 * On loopback or a busy host a write(2) of one small message costs more than
 * everything else a message costs the event loop: the sender's write runs the
 * receiver's TCP input and wakes it. The event loop encodes each connection's
 * output into a ring shared with this thread and goes on; this thread makes
 * the system calls, on another core.
 *
 * Ring records, 8-byte aligned: u32 slot, i32 length or op, then the bytes.
 *   len >= 0   data for the slot
 *   OP_WRAP    the rest of the ring is unused: continue at 0
 *   OP_SHUT    shutdown(SHUT_WR) once the slot's data is out (a graceful end)
 *   OP_CLOSE   drop what is still queued and close the slot's descriptor
 *
 * Each slot writes to its own dup() of the connection's descriptor, so when
 * the event loop closes its own the number cannot be reused by a new
 * connection while bytes for the old one are on their way. That costs a
 * second descriptor per connection: start() raises the soft open-files limit
 * to the hard one, and open() refuses (the connection keeps libuv's writes)
 * once descriptors reach the last sixteenth of the limit, which stays free
 * for accepting connections.
 *
 * It imports no libc symbol newer than the Node.js binary's own floor (glibc
 * 2.28): a build on a new glibc must still load on an older one, so the nap
 * is the raw epoll_pwait2 system call (the glibc wrapper is 2.35), the thread
 * comes from libuv inside Node.js (pthread_create moved to GLIBC_2.34) and
 * names itself with prctl. `nm -D build/Release/sbwriter.node` shows them.
 *
 * Data a peer does not take at once is copied into the slot's queue and sent
 * when epoll says the socket is writable; later data for that slot queues
 * behind it, so each connection's bytes stay in order. written[slot] counts
 * the bytes that left (or were dropped): the event loop subtracts it from what
 * it handed over to learn a connection's backlog.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

/* epoll_pwait2 (Linux 5.11) is 441 in the generic table and on x86, arm,
 * riscv, powerpc and s390; elsewhere an unknown number gives ENOSYS and the
 * thread sleeps instead of napping. */
#ifndef SYS_epoll_pwait2
#if defined(__x86_64__) || defined(__i386__) || defined(__aarch64__) || defined(__arm__) || defined(__riscv) || \
    defined(__powerpc__) || defined(__s390__) || defined(__loongarch__)
#define SYS_epoll_pwait2 441
#else
#define SYS_epoll_pwait2 (-1)
#endif
#endif

/* The kernel's __kernel_timespec: 64-bit fields on every architecture. */
struct nap_ts {
  int64_t tv_sec;
  long long tv_nsec;
};

#define OP_WRAP (-1)
#define OP_SHUT (-2)
#define OP_CLOSE (-3)

/* Control words shared with JavaScript (Int32Array over ctl). */
enum { C_TAIL = 0, C_HEAD = 1, C_SLEEPING = 2 };

typedef struct chunk {
  struct chunk *next;
  uint32_t len, off;
  char data[];
} chunk_t;

typedef struct {
  int fd;        /* our dup, -1 when free */
  int failed;    /* a write failed: the rest is dropped */
  int shut;      /* shutdown once drained */
  int armed;     /* in the epoll set (ONESHOT: it stays there, disabled, after firing) */
  chunk_t *head, *tail;
  int next_free;
} slot_t;

typedef struct {
  char *ring;
  uint32_t size;
  int32_t *ctl;
  uint32_t *written;
  slot_t *slots;
  int nslots;
  int free_head;
  pthread_mutex_t lock; /* the free list: open() runs on the event loop, close on this thread */
  int efd, ep;
  int fd_cap; /* no dup at or above this number */
  uv_thread_t thread;
} writer_t;

static writer_t *W; /* one per process: the event loop is one thread */

static void add_written(writer_t *w, int s, uint32_t n) {
  __atomic_store_n(&w->written[s], w->written[s] + n, __ATOMIC_RELEASE);
}

static void drop_queue(writer_t *w, int s) {
  slot_t *sl = &w->slots[s];
  for (chunk_t *c = sl->head, *n; c != NULL; c = n) {
    n = c->next;
    add_written(w, s, c->len - c->off);
    free(c);
  }
  sl->head = sl->tail = NULL;
}

static void free_slot(writer_t *w, int s) {
  pthread_mutex_lock(&w->lock);
  w->slots[s].next_free = w->free_head;
  w->free_head = s;
  pthread_mutex_unlock(&w->lock);
}

static void release(writer_t *w, int s) {
  slot_t *sl = &w->slots[s];
  drop_queue(w, s);
  if (sl->armed) epoll_ctl(w->ep, EPOLL_CTL_DEL, sl->fd, NULL);
  close(sl->fd);
  sl->fd = -1;
  sl->armed = 0;
  free_slot(w, s);
}

static void arm(writer_t *w, int s) {
  slot_t *sl = &w->slots[s];
  struct epoll_event ev = {.events = EPOLLOUT | EPOLLONESHOT, .data.u32 = (uint32_t)s + 1};
  if (epoll_ctl(w->ep, sl->armed ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, sl->fd, &ev) == 0) sl->armed = 1;
}

static void enqueue(writer_t *w, int s, const char *p, uint32_t len) {
  slot_t *sl = &w->slots[s];
  chunk_t *c = malloc(sizeof *c + len);
  if (c == NULL) {
    /* Out of memory: this connection loses its output, as a failed write would. */
    sl->failed = 1;
    add_written(w, s, len);
    drop_queue(w, s);
    return;
  }
  c->next = NULL;
  c->len = len;
  c->off = 0;
  memcpy(c->data, p, len);
  if (sl->tail) sl->tail->next = c;
  else sl->head = c;
  sl->tail = c;
}

/* Sends what fits; returns bytes sent, or -1 when the connection is broken. */
static ssize_t send_some(int fd, const char *p, size_t len) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = send(fd, p + done, len - done, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      done += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    return -1;
  }
  return (ssize_t)done;
}

static void fail(writer_t *w, int s) {
  w->slots[s].failed = 1;
  drop_queue(w, s);
}

static void data(writer_t *w, int s, const char *p, uint32_t len) {
  slot_t *sl = &w->slots[s];
  if (sl->fd < 0 || sl->failed) {
    add_written(w, s, len);
    return;
  }
  if (sl->head != NULL) {
    enqueue(w, s, p, len);
    return;
  }
  ssize_t n = send_some(sl->fd, p, len);
  if (n < 0) {
    add_written(w, s, len);
    fail(w, s);
    return;
  }
  add_written(w, s, (uint32_t)n);
  if ((uint32_t)n < len) {
    enqueue(w, s, p + n, len - (uint32_t)n);
    arm(w, s);
  }
}

/* The socket is writable again: send the queue, re-arm if it still does not all fit. */
static void drain(writer_t *w, int s) {
  slot_t *sl = &w->slots[s];
  if (sl->fd < 0) return;
  while (sl->head != NULL) {
    chunk_t *c = sl->head;
    ssize_t n = send_some(sl->fd, c->data + c->off, c->len - c->off);
    if (n < 0) {
      fail(w, s);
      return;
    }
    add_written(w, s, (uint32_t)n);
    c->off += (uint32_t)n;
    if (c->off < c->len) {
      arm(w, s);
      return;
    }
    sl->head = c->next;
    if (sl->head == NULL) sl->tail = NULL;
    free(c);
  }
  if (sl->shut) shutdown(sl->fd, SHUT_WR);
}

/* While records keep coming the thread naps NAP_NS between looks at the ring
 * (what it adds to a message's latency at most) and needs no wake-up; after
 * NAP_LIMIT naps that found nothing it sleeps until the event loop kicks it. */
#define NAP_NS 200000L
#define NAP_LIMIT 10

static void run(void *arg) {
  writer_t *w = arg;
  uint32_t head = 0, last_head = 0;
  int naps = NAP_LIMIT, can_nap = 1;
  const struct nap_ts nap = {0, NAP_NS};
  /* So that top -H and /proc/<pid>/task show which thread is which. */
  prctl(PR_SET_NAME, "sb-writer", 0, 0, 0);
  struct epoll_event evs[256];
  for (;;) {
    uint32_t tail = (uint32_t)__atomic_load_n(&w->ctl[C_TAIL], __ATOMIC_ACQUIRE);
    while (head != tail) {
      int32_t len;
      uint32_t s;
      memcpy(&s, w->ring + head, 4);
      memcpy(&len, w->ring + head + 4, 4);
      if (len == OP_WRAP) {
        head = 0;
        continue;
      }
      if (s < (uint32_t)w->nslots) {
        if (len >= 0) data(w, (int)s, w->ring + head + 8, (uint32_t)len);
        else if (len == OP_SHUT && w->slots[s].fd >= 0) {
          if (w->slots[s].head == NULL) shutdown(w->slots[s].fd, SHUT_WR);
          else w->slots[s].shut = 1;
        } else if (len == OP_CLOSE && w->slots[s].fd >= 0) release(w, (int)s);
      }
      head += 8 + (len > 0 ? ((uint32_t)len + 7u) & ~7u : 0);
      if (head >= w->size) head = 0;
    }
    __atomic_store_n(&w->ctl[C_HEAD], (int32_t)head, __ATOMIC_RELEASE);

    int k;
    if (head != last_head) {
      last_head = head;
      naps = 0;
    }
    if (naps < NAP_LIMIT && can_nap) {
      /* Busy: look again after a short nap instead of asking to be woken.
       * A wake-up costs the event loop a system call and, across cores in a
       * VM, an interprocessor interrupt: tens of microseconds, each turn. */
      k = (int)syscall(SYS_epoll_pwait2, w->ep, evs, 256, &nap, NULL, (size_t)0);
      /* A kernel before 5.11 (or one that filters the call): sleep and be woken instead. */
      if (k < 0 && errno == ENOSYS) can_nap = 0;
      if (k <= 0) naps++;
    } else {
      /* Sleep unless more came: the event loop reads C_SLEEPING after publishing its tail. */
      __atomic_store_n(&w->ctl[C_SLEEPING], 1, __ATOMIC_SEQ_CST);
      int timeout = (uint32_t)__atomic_load_n(&w->ctl[C_TAIL], __ATOMIC_SEQ_CST) != head ? 0 : -1;
      k = epoll_wait(w->ep, evs, 256, timeout);
      __atomic_store_n(&w->ctl[C_SLEEPING], 0, __ATOMIC_SEQ_CST);
      naps = 0;
    }
    for (int i = 0; i < k; i++) {
      uint32_t id = evs[i].data.u32;
      if (id == 0) {
        uint64_t junk;
        if (read(w->efd, &junk, sizeof junk) < 0) { /* nothing to reset */ }
        continue;
      }
      drain(w, (int)id - 1);
    }
  }
}

/* ---- N-API ------------------------------------------------------------ */

#define CHECK(call)                                                  \
  do {                                                               \
    if ((call) != napi_ok) {                                         \
      napi_throw_error(env, NULL, "switchboard writer: " #call);     \
      return NULL;                                                   \
    }                                                                \
  } while (0)

static napi_value throw_errno(napi_env env, const char *what) {
  char msg[160];
  snprintf(msg, sizeof msg, "switchboard writer: %s: %s", what, strerror(errno));
  napi_throw_error(env, NULL, msg);
  return NULL;
}

/* start(ringBytes, slots) -> { ring: ArrayBuffer, ctl: ArrayBuffer, written: ArrayBuffer } */
static napi_value start(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint32_t size, nslots;
  CHECK(napi_get_value_uint32(env, argv[0], &size));
  CHECK(napi_get_value_uint32(env, argv[1], &nslots));
  if (W != NULL) {
    napi_throw_error(env, NULL, "switchboard writer: already started");
    return NULL;
  }
  if (size < 65536 || (size & 7) != 0 || nslots == 0) {
    napi_throw_range_error(env, NULL, "switchboard writer: ring must be >= 64 KiB and a multiple of 8; slots > 0");
    return NULL;
  }
  writer_t *w = calloc(1, sizeof *w);
  w->size = size;
  w->ring = aligned_alloc(64, size + 64);
  w->ctl = aligned_alloc(64, 64);
  w->written = calloc(nslots, sizeof *w->written);
  w->slots = calloc(nslots, sizeof *w->slots);
  if (!w->ring || !w->ctl || !w->written || !w->slots) {
    napi_throw_error(env, NULL, "switchboard writer: out of memory");
    return NULL;
  }
  memset(w->ctl, 0, 64);
  w->nslots = (int)nslots;
  for (int i = 0; i < w->nslots; i++) {
    w->slots[i].fd = -1;
    w->slots[i].next_free = i + 1 < w->nslots ? i + 1 : -1;
  }
  w->free_head = 0;
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    if (rl.rlim_cur < rl.rlim_max) {
      rl.rlim_cur = rl.rlim_max;
      setrlimit(RLIMIT_NOFILE, &rl);
      getrlimit(RLIMIT_NOFILE, &rl);
    }
    rlim_t lim = rl.rlim_cur > (rlim_t)0x7fffffff ? (rlim_t)0x7fffffff : rl.rlim_cur;
    rlim_t reserve = lim / 16 > 64 ? lim / 16 : 64;
    w->fd_cap = lim > reserve ? (int)(lim - reserve) : 0;
  }
  pthread_mutex_init(&w->lock, NULL);
  w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  w->ep = epoll_create1(EPOLL_CLOEXEC);
  if (w->efd < 0 || w->ep < 0) return throw_errno(env, "eventfd/epoll");
  struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 0};
  epoll_ctl(w->ep, EPOLL_CTL_ADD, w->efd, &ev);
  int err = uv_thread_create(&w->thread, run, w);
  if (err != 0) {
    errno = -err;
    return throw_errno(env, "thread");
  }
  W = w;

  /* Never freed: the thread and the buffers live as long as the process. */
  napi_value out, ring, ctl, written;
  CHECK(napi_create_object(env, &out));
  CHECK(napi_create_external_arraybuffer(env, w->ring, size, NULL, NULL, &ring));
  CHECK(napi_create_external_arraybuffer(env, w->ctl, 64, NULL, NULL, &ctl));
  CHECK(napi_create_external_arraybuffer(env, w->written, nslots * sizeof *w->written, NULL, NULL, &written));
  CHECK(napi_set_named_property(env, out, "ring", ring));
  CHECK(napi_set_named_property(env, out, "ctl", ctl));
  CHECK(napi_set_named_property(env, out, "written", written));
  return out;
}

/* open(fd) -> slot, or -1 when every slot is taken */
static napi_value open_slot(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  writer_t *w = W;
  int s = -1;
  if (w != NULL) {
    pthread_mutex_lock(&w->lock);
    s = w->free_head;
    if (s >= 0) w->free_head = w->slots[s].next_free;
    pthread_mutex_unlock(&w->lock);
  }
  if (s >= 0) {
    int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (d >= w->fd_cap) {
      close(d);
      d = -1;
    }
    if (d < 0) {
      free_slot(w, s);
      s = -1;
    } else {
      slot_t *sl = &w->slots[s];
      sl->failed = sl->shut = sl->armed = 0;
      sl->head = sl->tail = NULL;
      __atomic_store_n(&w->written[s], 0, __ATOMIC_RELEASE);
      /* Published to the writer by the ring record that first names this slot. */
      sl->fd = d;
    }
  }
  CHECK(napi_create_int32(env, s, &out));
  return out;
}

/* kick(): wake the sleeping writer */
static napi_value kick(napi_env env, napi_callback_info info) {
  (void)info;
  uint64_t one = 1;
  if (W != NULL && write(W->efd, &one, sizeof one) < 0 && errno != EAGAIN) return throw_errno(env, "eventfd write");
  return NULL;
}

/*
 * threadCpuNs(): the calling thread's CPU time in ns (CLOCK_THREAD_CPUTIME_ID), for benchmarks. Exact when
 * read (the kernel brings a running thread's figure up to date for it), unlike /proc's schedstat, which
 * moves at scheduler ticks and sleeps only (docs/benchmarks.md, "Archives", sessions 16-17).
 */
static napi_value thread_cpu_ns(napi_env env, napi_callback_info info) {
  (void)info;
  struct timespec ts;
  napi_value out;
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) return throw_errno(env, "clock_gettime");
  CHECK(napi_create_double(env, (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec, &out));
  return out;
}

/* fdpass.c: descriptors between the workers of a host. */
napi_status fdpass_define(napi_env env, napi_value exports);

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"start", NULL, start, NULL, NULL, NULL, napi_default, NULL},
      {"open", NULL, open_slot, NULL, NULL, NULL, napi_default, NULL},
      {"kick", NULL, kick, NULL, NULL, NULL, napi_default, NULL},
      {"threadCpuNs", NULL, thread_cpu_ns, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  if (fdpass_define(env, exports) != napi_ok) return NULL;
  return exports;
}
