/*
 * The messaging phase of the XMPP load generator, in C (bench/xmpp/gen.ts
 * logs the users in, then hands their sockets over as fds 3, 4, ...).
 * Node.js needs ~40 µs of CPU per message sent and received here, so at
 * 20,000 msg/s a Node generator fills its core and its own queueing shows up
 * in the latencies it measures; this needs a fraction of that.
 *
 *   pump PERIOD_MS MESSAGES DOMAIN COUNT SPIN [SM_EVERY] [room=JID senders=S] [pick=local|cross] [warm=MS,SHARE]
 *        < "users\ntargets\n[groups\n][h\nsent\n]T0_EPOCH_MS\n"
 *
 * stdin: line 1, the global index of the user on each fd; line 2, the online
 * users to pick recipients from. With SM_EVERY (stream management, XEP-0198,
 * enabled by gen.ts at login) two more: each fd's count of stanzas received
 * and of stanzas sent since <enabled/>. With its fds set up it prints "READY" and
 * waits for line 3, T0: the schedule starts only once every pump is ready, so
 * no pump starts late and fires the messages it missed in one burst. Each user
 * sends MESSAGES chat messages, one every PERIOD_MS from a random phase after
 * T0, to random online users, with
 * its send time (ms since the epoch) in the body; every <body> received gives
 * a latency. stdout: "P sent received done" every second; when stdin closes,
 * "R sent received errors cpu_seconds busy_seconds", "S server_r client_r
 * bad_a failed" (stream management), then "L" and every latency in ms.
 *
 * With pick=local or pick=cross (bench:xmpp --recipients), a line after the
 * targets gives every user's group (by global index: the worker that owns
 * it), and each sender picks its recipients among the online users of its
 * own group (local) or of the others (cross).
 *
 * With warm=MS,SHARE (bench:xmpp --warmup; not in room mode) the messaging
 * starts MS before T0 at SHARE of the rate: each sender sends round(MS /
 * PERIOD_MS × SHARE) messages (at least one) spread over [T0 − MS, T0), to
 * random recipients as after T0, stream management included. They are not
 * measured: their body is "w", which gives no latency, and "sent", "received"
 * and the busy time count from T0 on. They let V8 compile the messaging path
 * (and the server's queues and buffers grow) before the measured phase, as
 * in a server that has been running; "W sent received" reports them.
 *
 * With room=JID (bench/muc, XEP-0045): every fd is an occupant of that room
 * (gen.ts joined them); only the users whose global index is below S send,
 * MESSAGES groupchat messages each, one every PERIOD_MS, to the room, with
 * "send-time seq" in the body, seq = round × S + index: unique per room
 * message. Each fd keeps a bitmap of the seqs it received, so that each of
 * the S × MESSAGES room messages is counted once per occupant: "U" reports
 * the duplicates, and the latencies are the first arrivals only.
 *
 * Stream management as a client does it: every stanza read (message,
 * presence, iq) counts, found by the same pass over the '<'s that finds the
 * bodies; a server <r/> is answered once the read that brought it has been
 * scanned, with <a h/> from a buffer on the stack. With SM_EVERY > 0 an <r/>
 * goes with every SM_EVERY-th message, in the same write (Conversations asks
 * after every message with an id: SM_EVERY 1), and each <a/> of the server
 * must give exactly the count sent before the <r/> it answers: the stream is
 * ordered and Switchboard answers at once, so anything else is a miscount
 * (bad_a). On stop each connection acknowledges and closes its stream.
 *
 * SPIN 1: poll without sleeping (epoll_wait with no timeout, sched_yield when
 * nothing came). A sleeping generator must be woken and scheduled for every
 * delivery, and that wait lands in the latencies it measures; spinning costs
 * the whole core, so busy_seconds counts only the CPU time of the turns that
 * did work.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sched.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#define FD0 3
#define CAP 65536

typedef struct {
  int fd;
  long user;
  double phase;
  char *buf; /* unparsed tail of what was read: at most CAP bytes */
  size_t len;
  /* XEP-0198, both counters modulo 2^32 (§4) since <enabled/>: */
  uint32_t h;   /* stanzas received */
  uint32_t out; /* stanzas sent */
  uint32_t base; /* out at hand-over: our k-th <r/> follows stanza base + k × SM_EVERY */
  uint32_t asked, answered, unasked; /* our <r/>s, the server's <a/>s, messages since our last <r/> */
  int ack_due; /* the server asked (<r/>): answer after this read */
  unsigned char *seen; /* room mode: a bit per room message seq received */
} conn_t;

/* This thread's CPU time: what a spinning pump's working turns cost. */
static double cpu_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static unsigned long long rng = 88172645463325252ULL;
static unsigned long long next_rand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static double *lat, *at_ms;
static size_t nlat, caplat;
static long sent, received, errors;
/* warm=: the measured schedule's start; messages sent before it and their deliveries (not measured). */
static double t0 = 0;
static long warm_sent, warm_received;
/* Stream management: SM_EVERY, or -1 when off; the server's <r/>s answered, ours sent, wrong <a/>s, <failed/>s. */
static long sm_every = -1, sm_server_r, sm_client_r, sm_bad_a, sm_failed;
/* Room mode: the room's JID (NULL: chat messages between users), its senders, seqs per room (S × MESSAGES), duplicates. */
static const char *room;
static long room_senders, room_seqs, dups;
#define SM_NS "urn:xmpp:sm:3"
#define SM_R "<r xmlns='" SM_NS "'/>"

static void record(double ms, double t) {
  if (nlat == caplat) {
    caplat = caplat ? caplat * 2 : 65536;
    lat = realloc(lat, caplat * sizeof *lat);
    at_ms = realloc(at_ms, caplat * sizeof *at_ms);
    if (!lat || !at_ms) abort();
  }
  at_ms[nlat] = t;
  lat[nlat++] = ms;
  received++;
}

static long *read_line_longs(FILE *in, size_t *n) {
  size_t cap = 1024, k = 0;
  long *v = malloc(cap * sizeof *v);
  int c;
  long x = 0;
  int have = 0;
  while ((c = fgetc(in)) != EOF && c != '\n') {
    if (c >= '0' && c <= '9') {
      x = x * 10 + (c - '0');
      have = 1;
    } else if (have) {
      if (k == cap) v = realloc(v, (cap *= 2) * sizeof *v);
      v[k++] = x;
      x = 0;
      have = 0;
    }
  }
  if (have) {
    if (k == cap) v = realloc(v, (cap *= 2) * sizeof *v);
    v[k++] = x;
  }
  *n = k;
  return v;
}

/* Is the tag at p (its length tl, up to the '>') named `name`? */
static int tag_is(const char *p, size_t tl, const char *name, size_t k) {
  return tl >= k && memcmp(p, name, k) == 0 && (tl == k || p[k] == ' ' || p[k] == '/' || p[k] == '\t' || p[k] == '\n' || p[k] == '\r');
}

/* The server's <a h/> (from '<' to '>'): it answers our oldest unanswered <r/>. */
static void sm_answer(conn_t *c, const char *lt, const char *gt) {
  const char *q = memmem(lt, (size_t)(gt - lt), " h=", 3);
  uint32_t h = q ? (uint32_t)strtoul(q + 4, NULL, 10) : 0;
  c->answered++;
  if (!q || c->answered > c->asked || h != (uint32_t)(c->base + c->answered * (uint32_t)sm_every)) sm_bad_a++;
}

/*
 * One pass over the '<'s of c's buffer: each stanza's start tag is counted
 * (and an error stanza noted), each <body>…</body> gives a latency, stream
 * management's <r/>, <a/> and <failed/> are handled; keeps the tail from an
 * element not complete yet.
 */
static void scan(conn_t *c, double t) {
  char *b = c->buf;
  size_t at = 0, n = c->len;
  for (;;) {
    char *lt = memchr(b + at, '<', n - at);
    if (!lt) {
      at = n;
      break;
    }
    char *gt = memchr(lt, '>', n - (size_t)(lt - b));
    if (!gt) {
      at = (size_t)(lt - b);
      break;
    }
    const char *p = lt + 1;
    size_t tl = (size_t)(gt - p);
    at = (size_t)(gt - b) + 1;
    if (*p == '/') continue;
    if (tag_is(p, tl, "body", 4)) {
      char *close = memmem(gt, n - (size_t)(gt - b), "</body>", 7);
      if (!close) {
        at = (size_t)(lt - b);
        break;
      }
      char *end = NULL;
      double s = strtod(gt + 1, &end);
      at = (size_t)(close - b) + 7;
      /* A warm-up message's body is "w" (by its body, not its time: a pump behind its schedule may send it after T0). */
      if (gt[1] == 'w') {
        warm_received++;
        continue;
      }
      if (!(s > 0)) continue;
      if (c->seen != NULL) {
        /* "time seq": the first arrival of each room message counts, a second is a duplicate. */
        long q = end != NULL && end < close && *end == ' ' ? strtol(end + 1, NULL, 10) : -1;
        if (q < 0 || q >= room_seqs) {
          errors++;
          continue;
        }
        unsigned char bit = (unsigned char)(1u << (q & 7));
        if (c->seen[q >> 3] & bit) {
          dups++;
          continue;
        }
        c->seen[q >> 3] |= bit;
      }
      record(t - s, t);
    } else if (tag_is(p, tl, "message", 7) || tag_is(p, tl, "presence", 8) || tag_is(p, tl, "iq", 2)) {
      c->h++;
      const char *ty = memmem(p, tl, " type=", 6); /* one search, then the value's first letters */
      if (ty && (size_t)(ty - p) + 12 <= tl && memcmp(ty + 7, "error", 5) == 0) errors++;
    } else if (sm_every >= 0 && memmem(p, tl, SM_NS, sizeof SM_NS - 1)) {
      if (tag_is(p, tl, "r", 1)) {
        c->ack_due = 1;
        if (t >= t0) sm_server_r++; /* the warm-up's are not counted */
      } else if (tag_is(p, tl, "a", 1)) sm_answer(c, lt, gt);
      else if (tag_is(p, tl, "failed", 6)) sm_failed++;
    }
  }
  memmove(b, b + at, n - at);
  c->len = n - at;
}

/* XEP-0198 §4: <a h/> with every stanza received so far; a buffer on the stack, one write. */
static void sm_ack(conn_t *c) {
  char a[64];
  int k = snprintf(a, sizeof a, "<a xmlns='" SM_NS "' h='%u'/>", c->h);
  c->ack_due = 0;
  if (write(c->fd, a, (size_t)k) != k) errors++;
}

static int by_phase(const void *a, const void *b) {
  double x = (*(conn_t *const *)a)->phase, y = (*(conn_t *const *)b)->phase;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  if (argc < 6) {
    fprintf(stderr, "usage: pump PERIOD_MS MESSAGES DOMAIN COUNT SPIN [SM_EVERY] [room=JID senders=S] [pick=local|cross]\n");
    return 2;
  }
  int pick = 0; /* 1: local, 2: cross */
  double warm_ms = 0, warm_share = 0.25;
  for (int i = 6; i < argc; i++) {
    if (strcmp(argv[i], "pick=local") == 0) pick = 1;
    else if (strcmp(argv[i], "pick=cross") == 0) pick = 2;
    else if (strncmp(argv[i], "room=", 5) == 0) room = argv[i] + 5;
    else if (strncmp(argv[i], "senders=", 8) == 0) room_senders = atol(argv[i] + 8);
    else if (strncmp(argv[i], "warm=", 5) == 0) {
      warm_ms = atof(argv[i] + 5);
      const char *comma = strchr(argv[i], ',');
      warm_share = comma ? atof(comma + 1) : 0.25;
    }
    else sm_every = atol(argv[i]);
  }
  if (warm_ms > 0 && (room != NULL || !(warm_share > 0 && warm_share <= 1))) {
    fprintf(stderr, "pump: warm=MS,SHARE needs SHARE in (0, 1] and no room\n");
    return 2;
  }
  if (room != NULL && (room_senders <= 0 || strlen(room) > 256)) {
    fprintf(stderr, "pump: room mode needs senders=S > 0 and a room JID of at most 256 bytes\n");
    return 2;
  }
  double period = atof(argv[1]);
  long messages = atol(argv[2]);
  room_seqs = room_senders * messages;
  const char *domain = argv[3];
  size_t count = (size_t)atol(argv[4]), nusers, ntargets, nsend = 0;
  long *users = read_line_longs(stdin, &nusers);
  long *targets = read_line_longs(stdin, &ntargets);
  if (nusers != count || ntargets == 0) {
    fprintf(stderr, "pump: %zu users for %zu fds, %zu targets\n", nusers, count, ntargets);
    return 2;
  }
  /* pick: every user's group, and the targets of each group (groups are small numbers: workers). */
  size_t ngroups_of = 0;
  long *group = pick ? read_line_longs(stdin, &ngroups_of) : NULL;
  long **tg = NULL;
  size_t *ntg = NULL, ng = 0;
  if (pick) {
    long g_max = 0;
    for (size_t i = 0; i < ngroups_of; i++) {
      if (group[i] < 0 || group[i] > 255) {
        fprintf(stderr, "pump: group %ld of user %zu is not 0-255\n", group[i], i);
        return 2;
      }
      if (group[i] > g_max) g_max = group[i];
    }
    ng = (size_t)g_max + 1;
    tg = calloc(ng, sizeof *tg);
    ntg = calloc(ng, sizeof *ntg);
    for (size_t i = 0; i < ntargets; i++) {
      if (targets[i] < 0 || (size_t)targets[i] >= ngroups_of) {
        fprintf(stderr, "pump: target %ld has no group\n", targets[i]);
        return 2;
      }
      long g = group[targets[i]];
      tg[g] = realloc(tg[g], (ntg[g] + 1) * sizeof **tg);
      tg[g][ntg[g]++] = targets[i];
    }
    for (size_t i = 0; i < nusers; i++)
      if (users[i] < 0 || (size_t)users[i] >= ngroups_of || (pick == 1 && ntg[group[users[i]]] < 2) || (pick == 2 && ntg[group[users[i]]] == ntargets)) {
        fprintf(stderr, "pump: user %ld has no recipient to pick (pick=%s)\n", users[i], pick == 1 ? "local" : "cross");
        return 2;
      }
  }
  size_t nh = count, nout = count;
  long *h0 = sm_every >= 0 ? read_line_longs(stdin, &nh) : NULL;
  long *out0 = sm_every >= 0 ? read_line_longs(stdin, &nout) : NULL;
  if (nh != count || nout != count) {
    fprintf(stderr, "pump: stream-management counts for %zu and %zu of %zu fds\n", nh, nout, count);
    return 2;
  }
  /* A connection the server closed must not end the pump at its next write. */
  signal(SIGPIPE, SIG_IGN);
  rng ^= (unsigned long long)getpid() * 2654435761ULL ^ (unsigned long long)now_ms();

  int ep = epoll_create1(0);
  conn_t *conns = calloc(count, sizeof *conns);
  conn_t **order = calloc(count, sizeof *order);
  for (size_t i = 0; i < count; i++) {
    conn_t *c = &conns[i];
    c->fd = FD0 + (int)i;
    c->user = users[i];
    c->phase = (next_rand() % 1000000) / 1e6 * period;
    c->buf = malloc(CAP);
    if (h0) {
      c->h = (uint32_t)h0[i];
      c->out = c->base = (uint32_t)out0[i];
    }
    if (room != NULL && (c->seen = calloc((size_t)room_seqs / 8 + 1, 1)) == NULL) abort();
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
      perror("pump: epoll_ctl");
      return 1;
    }
    /* In a room only its senders send; every fd receives. */
    if (room == NULL || c->user < room_senders) order[nsend++] = c;
  }
  qsort(order, nsend, sizeof *order, by_phase);
  printf("READY\n");
  fflush(stdout);
  char line[64];
  if (!fgets(line, sizeof line, stdin)) return 2;
  t0 = atof(line);
  /* warm=: each sender's warm-up messages, one every warm_period from its phase (scaled) after T0 − warm_ms. */
  long warm_rounds = 0;
  double warm_period = 0;
  if (warm_ms > 0) {
    warm_rounds = (long)(warm_ms / period * warm_share + 0.5);
    if (warm_rounds < 1) warm_rounds = 1;
    warm_period = warm_ms / (double)warm_rounds;
  }
  long wround = 0;
  size_t wnext = 0;
  /* stdin closing is the stop signal. */
  fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
  struct epoll_event sev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(ep, EPOLL_CTL_ADD, 0, &sev);

  const int spin = atoi(argv[5]) != 0;
  double busy = 0;
  /* A pump with no senders (room mode) has nothing to send. */
  long round = nsend == 0 ? messages : 0;
  size_t next = 0;
  int stop = 0, reported_done = 0;
  double last_report = 0;
  char msg[512];
  struct epoll_event evs[512];
  while (!stop) {
    double t = now_ms(), c0 = spin ? cpu_ms() : 0;
    long sent0 = sent;
    for (;;) {
      int warm = wround < warm_rounds && nsend > 0;
      conn_t *c;
      if (warm) {
        c = order[wnext];
        if (t0 - warm_ms + wround * warm_period + c->phase / period * warm_period > t) break;
      } else {
        if (!(round < messages && t0 + round * period + order[next]->phase <= t)) break;
        c = order[next];
      }
      int n;
      if (room != NULL) {
        long seq = round * room_senders + c->user;
        n = snprintf(msg, sizeof msg, "<message to='%s' type='groupchat' id='g%ld'><body>%.3f %ld</body></message>", room, seq, now_ms(), seq);
      } else {
        long to;
        if (pick == 1) {
          long g = group[c->user];
          do to = tg[g][next_rand() % ntg[g]];
          while (to == c->user);
        } else if (pick == 2) {
          do to = targets[next_rand() % ntargets];
          while (group[to] == group[c->user]);
        } else {
          to = targets[next_rand() % ntargets];
          if (to == c->user) to = targets[next_rand() % ntargets];
        }
        /* Warm-up messages have ids of their own ('w'): a server may take a repeated id for a resent stanza. */
        if (warm) n = snprintf(msg, sizeof msg, "<message to='user%ld@%s' type='chat' id='w%ld'><body>w</body></message>", to, domain, wround);
        else n = snprintf(msg, sizeof msg, "<message to='user%ld@%s' type='chat' id='m%ld'><body>%.3f</body></message>", to, domain, round, now_ms());
      }
      if (sm_every >= 0) {
        c->out++;
        if (sm_every > 0 && ++c->unasked == (uint32_t)sm_every) {
          memcpy(msg + n, SM_R, sizeof SM_R - 1);
          n += (int)sizeof SM_R - 1;
          c->unasked = 0;
          c->asked++;
          if (!warm) sm_client_r++;
        }
      }
      if (write(c->fd, msg, (size_t)n) != n) errors++;
      if (warm) {
        warm_sent++;
        if (++wnext == nsend) {
          wnext = 0;
          wround++;
        }
        continue;
      }
      sent++;
      if (++next == nsend) {
        next = 0;
        round++;
      }
    }
    if (t - last_report >= 1000 || (round >= messages && !reported_done)) {
      printf("P %ld %ld %d\n", sent, received, round >= messages);
      fflush(stdout);
      last_report = t;
      reported_done = round >= messages;
    }
    int timeout = 1000;
    if (wround < warm_rounds && nsend > 0) {
      double due = t0 - warm_ms + wround * warm_period + order[wnext]->phase / period * warm_period - now_ms();
      timeout = due <= 0 ? 0 : due < 1 ? 1 : (int)due;
    } else if (round < messages) {
      double due = t0 + round * period + order[next]->phase - now_ms();
      timeout = due <= 0 ? 0 : due < 1 ? 1 : (int)due;
    }
    int k = epoll_wait(ep, evs, 512, spin ? 0 : timeout);
    if (k < 0 && errno != EINTR) break;
    double tr = now_ms();
    if (spin && k == 0) {
      if (sent != sent0 && t >= t0) busy += cpu_ms() - c0;
      sched_yield();
      continue;
    }
    for (int i = 0; i < k; i++) {
      conn_t *c = evs[i].data.ptr;
      if (c == NULL) {
        char junk[64];
        ssize_t r = read(0, junk, sizeof junk);
        if (r == 0 || (r < 0 && errno != EAGAIN)) stop = 1;
        continue;
      }
      for (;;) {
        size_t room = CAP - c->len;
        ssize_t r = read(c->fd, c->buf + c->len, room);
        if (r > 0) {
          c->len += (size_t)r;
          scan(c, tr);
          if (c->len == CAP) c->len = 0; /* no <body> in 64 KiB: not ours */
          if ((size_t)r < room) break; /* drained: spare the EAGAIN read */
          continue;
        }
        if (r == 0) {
          epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
          errors++;
        }
        break;
      }
      if (c->ack_due) sm_ack(c);
    }
    if (spin && t >= t0) busy += cpu_ms() - c0;
  }
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
  /*
   * Log off as a client does, after the figures: acknowledge what came
   * (XEP-0198), close the stream (RFC 6120 §4.4). Where the server closed the
   * connection already the write fails, and there is nothing to log off.
   */
  for (size_t i = 0; i < count; i++) {
    char bye[96];
    int k = sm_every >= 0 ? snprintf(bye, sizeof bye, "<a xmlns='" SM_NS "' h='%u'/></stream:stream>", conns[i].h) : snprintf(bye, sizeof bye, "</stream:stream>");
    ssize_t w = write(conns[i].fd, bye, (size_t)k);
    (void)w;
  }
  /* PUMP_TIMELINE=FILE: each delivery's arrival time and latency, to see where a tail comes from. */
  const char *tl = getenv("PUMP_TIMELINE");
  char tname[4096];
  snprintf(tname, sizeof tname, "%s.%d", tl ? tl : "", (int)getpid());
  FILE *tf = tl ? fopen(tname, "w") : NULL;
  if (tf) {
    for (size_t i = 0; i < nlat; i++) fprintf(tf, "%.3f %.3f\n", at_ms[i], lat[i]);
    fclose(tf);
  }
  printf("R %ld %ld %ld %.3f %.3f\nS %ld %ld %ld %ld\nU %ld\nW %ld %ld\nL", sent, received, errors, cpu, spin ? busy / 1000 : cpu, sm_server_r, sm_client_r, sm_bad_a, sm_failed, dups, warm_sent, warm_received);
  for (size_t i = 0; i < nlat; i++) printf(" %.3f", lat[i]);
  printf("\n");
  fflush(stdout);
  /* Everything back, so that a sanitized build (LeakSanitizer) reports only real leaks. */
  for (size_t i = 0; i < count; i++) {
    free(conns[i].buf);
    free(conns[i].seen);
  }
  free(conns);
  free(order);
  free(users);
  free(targets);
  for (size_t g = 0; g < ng; g++) free(tg[g]);
  free(tg);
  free(ntg);
  free(group);
  free(h0);
  free(out0);
  free(lat);
  free(at_ms);
  close(ep);
  return 0;
}
