package wxpush;

import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.math.BigInteger;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.SocketChannel;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.BiConsumer;

import org.msgpack.core.MessageBufferPacker;
import org.msgpack.core.MessageFormat;
import org.msgpack.core.MessagePack;
import org.msgpack.core.MessagePacker;
import org.msgpack.core.MessageUnpacker;

/**
 * A client for wxpushd: send WeChat messages through the daemon that holds
 * the access tokens, by MessagePack-RPC over its Unix socket
 * (docs/protocol.md of wxpushd).
 *
 * <p>One client holds one connection and pipelines every request on it; it is
 * thread-safe: share one client between threads. A lost connection (a daemon
 * restart) is replaced on the next request. Failures throw
 * {@link WxpushException}.
 */
public final class WxpushClient implements AutoCloseable {
    /** The socket used when neither the builder nor $WXPUSH_SOCKET names one. */
    public static final String DEFAULT_SOCKET = "/run/wxpushd/wxpushd.sock";
    /** Bytes; a larger answer from the daemon is a protocol error. */
    public static final int MAX_RESPONSE = 16 << 20;
    private static final Set<String> SAFE = Set.of("ping", "status", "stats", "delivery");

    private final Path socket;
    private final Duration timeout;
    private final int retries;
    private final Duration backoff;
    private final Duration maxBackoff;
    private final Duration maxRetryAfter;
    private final BiConsumer<String, Object> onNotification;
    private Connection conn;

    private WxpushClient(Builder b) {
        String s = b.socket != null ? b.socket : System.getenv("WXPUSH_SOCKET");
        this.socket = Path.of(s != null && !s.isEmpty() ? s : DEFAULT_SOCKET);
        this.timeout = b.timeout;
        this.retries = b.retries;
        this.backoff = b.backoff;
        this.maxBackoff = b.maxBackoff;
        this.maxRetryAfter = b.maxRetryAfter;
        this.onNotification = b.onNotification;
    }

    /** A builder with the defaults: 35 s timeout, no retries. */
    public static Builder builder() {
        return new Builder();
    }

    /** A client with the defaults. */
    public static WxpushClient create() {
        return builder().build();
    }

    /** The client's settings. */
    public static final class Builder {
        private String socket;
        private Duration timeout = Duration.ofSeconds(35);
        private int retries;
        private Duration backoff = Duration.ofMillis(200);
        private Duration maxBackoff = Duration.ofSeconds(5);
        private Duration maxRetryAfter = Duration.ofSeconds(10);
        private BiConsumer<String, Object> onNotification;

        /** The daemon's socket; default $WXPUSH_SOCKET, else {@link #DEFAULT_SOCKET}. */
        public Builder socket(String path) { this.socket = path; return this; }

        /** How long to wait for each answer. */
        public Builder timeout(Duration d) { this.timeout = d; return this; }

        /** How many times a retryable error is retried. */
        public Builder retries(int n) { this.retries = n; return this; }

        /** The first wait between retries, doubled each time up to maxBackoff (with jitter). */
        public Builder backoff(Duration first, Duration max) {
            this.backoff = first;
            this.maxBackoff = max;
            return this;
        }

        /** A retry_after longer than this is thrown at once, not waited for. */
        public Builder maxRetryAfter(Duration d) { this.maxRetryAfter = d; return this; }

        /** Called on the reader thread for the daemon's notifications (method, params). */
        public Builder onNotification(BiConsumer<String, Object> f) { this.onNotification = f; return this; }

        public WxpushClient build() { return new WxpushClient(this); }
    }

    /** Options of one request; null fields take the client's settings. */
    public static final class Options {
        Duration timeout;
        Integer retries;
        String idempotencyKey;
        Long notAfter;
        boolean watch;

        public static Options create() { return new Options(); }

        public Options timeout(Duration d) { this.timeout = d; return this; }

        public Options retries(int n) { this.retries = n; return this; }

        /** Names the message so that a repeat is recognized (send, enqueue). */
        public Options idempotencyKey(String k) { this.idempotencyKey = k; return this; }

        /** Unix time after which the outbox gives the message up (enqueue). */
        public Options notAfter(long unixSeconds) { this.notAfter = unixSeconds; return this; }

        /** Ask for a "delivery" notification at the final state (enqueue). */
        public Options watch() { this.watch = true; return this; }
    }

    private static final Options NONE = new Options();

    /** {version, protocol}. */
    public Map<String, Object> ping() {
        return request("ping", null, NONE);
    }

    /** The credentials' state; appid null means all the caller may see. */
    public Map<String, Object> status(String appid) {
        return request("status", appid == null ? Map.of() : Map.of("appid", appid), NONE);
    }

    /** The daemon's counters. */
    public Map<String, Object> stats() {
        return request("stats", null, NONE);
    }

    /** Send one message now (the protocol's send params): {errcode, errmsg, attempts}. */
    public Map<String, Object> send(Map<String, ?> message) {
        return send(message, NONE);
    }

    /** Send one message now, with options. */
    public Map<String, Object> send(Map<String, ?> message, Options o) {
        return request("send", keyed(message, o), o);
    }

    /** Queue one message in the daemon's outbox: its id once it is on disk. */
    public Object enqueue(Map<String, ?> message, Options o) {
        Map<String, Object> p = keyed(message, o);
        if (o.notAfter != null) {
            p.put("not_after", o.notAfter);
        }
        if (o.watch) {
            p.put("watch", true);
        }
        return request("enqueue", p, o).get("id");
    }

    /** Queue up to 1000 messages at once (all or none): their ids. */
    public List<?> enqueueBatch(Collection<? extends Map<String, ?>> messages, Options o) {
        List<Object> list = new ArrayList<>();
        for (Map<String, ?> m : messages) {
            list.add(keyed(m, new Options().retries(o.retries != null ? o.retries : retries)));
        }
        Object ids = request("enqueue", Map.of("messages", list), o).get("ids");
        if (!(ids instanceof List)) {
            throw new WxpushException("protocol", "enqueue answered without ids", false);
        }
        return (List<?>) ids;
    }

    /** A queued message's {id, state, attempts, created_at, updated_at, ...}. */
    public Map<String, Object> delivery(Object id) {
        return request("delivery", Map.of("id", id), NONE);
    }

    /** An allowed WeChat API with the appid's token: WeChat's answer. query and body may be null. */
    public Map<String, Object> call(String appid, String path, String method, Map<String, String> query,
            Object body) {
        Map<String, Object> p = new HashMap<>();
        p.put("appid", appid);
        p.put("path", path);
        p.put("method", method != null ? method : "GET");
        if (query != null) {
            p.put("query", query);
        }
        if (body != null) {
            p.put("body", body);
        }
        return request("call", p, NONE);
    }

    private Map<String, Object> keyed(Map<String, ?> message, Options o) {
        Map<String, Object> p = new LinkedHashMap<>(message);
        if (o.idempotencyKey != null) {
            p.put("idempotency_key", o.idempotencyKey);
        } else if (!p.containsKey("idempotency_key") && (o.retries != null ? o.retries : retries) > 0) {
            p.put("idempotency_key", "wxpush-java-" + UUID.randomUUID());
        }
        return p;
    }

    /** Any method with its params (null for none): its result map; retries as the options say. */
    public Map<String, Object> request(String method, Map<String, ?> params, Options o) {
        int tries = o.retries != null ? o.retries : retries;
        Duration limit = o.timeout != null ? o.timeout : timeout;
        long delay = backoff.toMillis();
        boolean fresh = false;
        for (int attempt = 0;; attempt++) {
            try {
                return connection().request(method, params, limit);
            } catch (WxpushException e) {
                if (e.unsent && !fresh) {
                    // The kept connection died while idle (a daemon restart):
                    // one more try on a new one, whatever the retries.
                    fresh = true;
                    attempt--;
                    continue;
                }
                if (!e.isRetryable() || attempt >= tries) {
                    throw e;
                }
                Integer ra = e.getRetryAfter();
                if (ra != null && ra > maxRetryAfter.toSeconds()) {
                    throw e;
                }
                long wait = ra != null && ra > 0 ? ra * 1000L
                        : delay / 2 + ThreadLocalRandom.current().nextLong(delay / 2 + 1);
                delay = Math.min(delay * 2, maxBackoff.toMillis());
                try {
                    Thread.sleep(wait);
                } catch (InterruptedException ie) {
                    Thread.currentThread().interrupt();
                    throw e;
                }
            }
        }
    }

    private synchronized Connection connection() {
        if (conn == null || conn.closed != null) {
            conn = new Connection(socket, onNotification);
        }
        return conn;
    }

    /** Close the connection (a later request opens a new one). */
    @Override
    public void close() {
        Connection c;
        synchronized (this) {
            c = conn;
            conn = null;
        }
        if (c != null) {
            c.fail(new WxpushException("connect", "the client was closed", false));
        }
    }

    /** One socket, its reader thread and the requests waiting on it. */
    private static final class Connection {
        private final SocketChannel ch;
        private final Map<Long, CompletableFuture<Map<String, Object>>> pending = new ConcurrentHashMap<>();
        private final BiConsumer<String, Object> onNotification;
        private final Object writeLock = new Object();
        private long msgid;
        volatile WxpushException closed;

        Connection(Path path, BiConsumer<String, Object> onNotification) {
            this.onNotification = onNotification;
            try {
                ch = SocketChannel.open(StandardProtocolFamily.UNIX);
            } catch (IOException e) {
                throw new WxpushException("connect", "no socket: " + e.getMessage(), true);
            }
            try {
                ch.connect(UnixDomainSocketAddress.of(path));
            } catch (IOException e) {
                try {
                    ch.close();
                } catch (IOException ignored) {
                    // nothing to do
                }
                throw new WxpushException("connect", "cannot connect to " + path + ": " + e.getMessage(), true);
            }
            Thread t = new Thread(this::read, "wxpush-reader");
            t.setDaemon(true);
            t.start();
        }

        Map<String, Object> request(String method, Map<String, ?> params, Duration limit) {
            CompletableFuture<Map<String, Object>> f = new CompletableFuture<>();
            long id;
            byte[] frame;
            synchronized (writeLock) {
                if (closed != null) {
                    WxpushException e = new WxpushException("connect", closed.getMessage(), true);
                    e.unsent = true;
                    throw e;
                }
                do {
                    msgid = (msgid + 1) & 0xFFFFFFFFL;
                } while (pending.containsKey(msgid));
                id = msgid;
                try (MessageBufferPacker pk = MessagePack.newDefaultBufferPacker()) {
                    pk.packArrayHeader(4).packInt(0).packLong(id).packString(method);
                    if (params == null) {
                        pk.packArrayHeader(0);
                    } else {
                        pk.packArrayHeader(1);
                        pack(pk, params);
                    }
                    frame = pk.toByteArray();
                } catch (IOException e) {
                    throw new WxpushException("invalid_request", "cannot encode: " + e.getMessage(), false);
                }
                pending.put(id, f);
                try {
                    ByteBuffer b = ByteBuffer.wrap(frame);
                    while (b.hasRemaining()) {
                        ch.write(b);
                    }
                } catch (IOException e) {
                    pending.remove(id);
                    WxpushException err = new WxpushException("connect", "connection lost: " + e.getMessage(), true);
                    fail(err);
                    WxpushException unsent = new WxpushException("connect", "connection lost: " + e.getMessage(), true);
                    unsent.unsent = true;
                    throw unsent;
                }
            }
            try {
                return f.get(limit.toMillis(), TimeUnit.MILLISECONDS);
            } catch (TimeoutException e) {
                pending.remove(id);
                throw new WxpushException("timeout", "no answer within " + limit.toMillis()
                        + " ms; the request may still be carried out", false);
            } catch (InterruptedException e) {
                pending.remove(id);
                Thread.currentThread().interrupt();
                throw new WxpushException("timeout", "interrupted; the request may still be carried out", false);
            } catch (ExecutionException e) {
                WxpushException w = (WxpushException) e.getCause();
                if (w.getCode().equals("connect")) {
                    // Written, then the connection died: only repeatable when harmless.
                    boolean again = w.isRetryable()
                            && (SAFE.contains(method) || (params != null && params.containsKey("idempotency_key")));
                    throw new WxpushException("connect", w.getMessage(), again);
                }
                throw new WxpushException(w.getCode(), w.getMessage().substring(w.getCode().length() + 2),
                        w.isRetryable(), w.getField(), w.getErrcode(), w.getErrmsg(), w.getRetryAfter());
            }
        }

        /** Counts the bytes of one answer; too many is a protocol error. */
        private static final class Counting extends FilterInputStream {
            long n;

            Counting(InputStream in) { super(in); }

            @Override
            public int read() throws IOException {
                int c = super.read();
                count(c < 0 ? 0 : 1);
                return c;
            }

            @Override
            public int read(byte[] b, int off, int len) throws IOException {
                int r = super.read(b, off, len);
                count(Math.max(r, 0));
                return r;
            }

            private void count(int k) throws IOException {
                n += k;
                if (n > MAX_RESPONSE + 65536L) {
                    throw new TooLarge();
                }
            }
        }

        private static final class TooLarge extends IOException {
            private static final long serialVersionUID = 1L;
        }

        private void read() {
            Counting in = new Counting(Channels.newInputStream(ch));
            WxpushException err;
            try (MessageUnpacker u = MessagePack.DEFAULT_UNPACKER_CONFIG
                    .withStringSizeLimit(MAX_RESPONSE).newUnpacker(in)) {
                while (true) {
                    in.n = 0;
                    if (!u.hasNext()) {
                        err = new WxpushException("connect", "the daemon closed the connection", true);
                        break;
                    }
                    err = dispatch(unpack(u, 0));
                    if (err != null) {
                        break;
                    }
                }
            } catch (TooLarge e) {
                err = new WxpushException("protocol", "an answer over " + MAX_RESPONSE + " bytes", false);
            } catch (org.msgpack.core.MessagePackException e) {
                err = new WxpushException("protocol", "not MessagePack: " + e.getMessage(), false);
            } catch (IOException e) {
                err = closed != null ? closed : new WxpushException("connect", "connection lost: " + e.getMessage(), true);
            }
            fail(err);
        }

        /** One message from the daemon; an error if it breaks the protocol. */
        private WxpushException dispatch(Object o) {
            if (o instanceof List && ((List<?>) o).size() == 3 && Long.valueOf(2).equals(((List<?>) o).get(0))
                    && ((List<?>) o).get(1) instanceof String) {
                List<?> n = (List<?>) o;
                if (onNotification != null) {
                    try {
                        onNotification.accept((String) n.get(1), n.get(2));
                    } catch (RuntimeException ignored) {
                        // the caller's bug must not kill the reader
                    }
                }
                return null;
            }
            if (!(o instanceof List) || ((List<?>) o).size() != 4) {
                return new WxpushException("protocol", "the daemon sent something that is not a response", false);
            }
            List<?> r = (List<?>) o;
            Object err = r.get(2);
            Object res = r.get(3);
            if (!Long.valueOf(1).equals(r.get(0)) || !(r.get(1) instanceof Long) || (err == null) == (res == null)
                    || (res != null && !(res instanceof Map))) {
                return new WxpushException("protocol", "the daemon sent something that is not a response", false);
            }
            CompletableFuture<Map<String, Object>> f = pending.remove(r.get(1));
            if (f == null) {
                return null; // an answer we gave up waiting for
            }
            if (err != null) {
                f.completeExceptionally(WxpushException.fromMap(err));
            } else {
                @SuppressWarnings("unchecked")
                Map<String, Object> m = (Map<String, Object>) res;
                f.complete(m);
            }
            return null;
        }

        void fail(WxpushException e) {
            synchronized (this) {
                if (closed == null) {
                    closed = e;
                }
            }
            try {
                ch.close();
            } catch (IOException ignored) {
                // closing anyway
            }
            for (Long id : new ArrayList<>(pending.keySet())) {
                CompletableFuture<Map<String, Object>> f = pending.remove(id);
                if (f != null) {
                    f.completeExceptionally(e);
                }
            }
        }

        /** A MessagePack value as Java: null, Boolean, Long/BigInteger, Double, String, byte[], List, Map. */
        private static Object unpack(MessageUnpacker u, int depth) throws IOException {
            if (depth > 64) {
                throw new org.msgpack.core.MessageFormatException("nested deeper than 64");
            }
            MessageFormat f = u.getNextFormat();
            switch (f.getValueType()) {
            case NIL:
                u.unpackNil();
                return null;
            case BOOLEAN:
                return u.unpackBoolean();
            case INTEGER:
                if (f == MessageFormat.UINT64) {
                    BigInteger b = u.unpackBigInteger();
                    return b.bitLength() < 64 ? (Object) b.longValue() : b;
                }
                return u.unpackLong();
            case FLOAT:
                return u.unpackDouble();
            case STRING:
                return u.unpackString();
            case BINARY: {
                int n = u.unpackBinaryHeader();
                if (n > MAX_RESPONSE) {
                    throw new TooLarge();
                }
                return u.readPayload(n);
            }
            case ARRAY: {
                int n = u.unpackArrayHeader();
                List<Object> l = new ArrayList<>(Math.min(n, 1024));
                for (int i = 0; i < n; i++) {
                    l.add(unpack(u, depth + 1));
                }
                return l;
            }
            case MAP: {
                int n = u.unpackMapHeader();
                Map<String, Object> m = new LinkedHashMap<>(Math.min(n, 1024) * 2);
                for (int i = 0; i < n; i++) {
                    Object k = unpack(u, depth + 1);
                    m.put(String.valueOf(k), unpack(u, depth + 1));
                }
                return m;
            }
            default:
                u.skipValue();
                return null;
            }
        }

        /** Java values (maps, lists, strings, numbers, booleans, null) as MessagePack. */
        private static void pack(MessagePacker p, Object o) throws IOException {
            if (o == null) {
                p.packNil();
            } else if (o instanceof String) {
                p.packString((String) o);
            } else if (o instanceof Boolean) {
                p.packBoolean((Boolean) o);
            } else if (o instanceof Integer || o instanceof Long || o instanceof Short || o instanceof Byte) {
                p.packLong(((Number) o).longValue());
            } else if (o instanceof BigInteger) {
                p.packBigInteger((BigInteger) o);
            } else if (o instanceof Number) {
                p.packDouble(((Number) o).doubleValue());
            } else if (o instanceof byte[]) {
                p.packBinaryHeader(((byte[]) o).length).writePayload((byte[]) o);
            } else if (o instanceof Map) {
                Map<?, ?> m = (Map<?, ?>) o;
                p.packMapHeader(m.size());
                for (Map.Entry<?, ?> e : m.entrySet()) {
                    p.packString(String.valueOf(e.getKey()));
                    pack(p, e.getValue());
                }
            } else if (o instanceof Collection) {
                Collection<?> c = (Collection<?>) o;
                p.packArrayHeader(c.size());
                for (Object x : c) {
                    pack(p, x);
                }
            } else {
                throw new IllegalArgumentException("cannot send a " + o.getClass().getName());
            }
        }
    }
}
