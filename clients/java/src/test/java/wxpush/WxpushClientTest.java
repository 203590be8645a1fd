package wxpush;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertNotNull;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.junit.AfterClass;
import org.junit.BeforeClass;
import org.junit.Test;

/**
 * The Java client against the real wxpushd and wxpush-mock, started by
 * tests/clients/harness.py of the wxpushd tree ($WX_SRCDIR).
 */
public class WxpushClientTest {
    private static final String SUBSCRIBE = "/cgi-bin/message/template/subscribe";
    private static Process harness;
    private static Writer toHarness;
    private static BufferedReader fromHarness;
    private static String info;
    private static String socket;
    private static String appid;

    @BeforeClass
    public static void startHarness() throws IOException {
        String src = System.getenv("WX_SRCDIR");
        if (src == null) {
            src = Path.of("..", "..").toAbsolutePath().normalize().toString();
        }
        String py = System.getenv().getOrDefault("WX_PYTHON", "/usr/bin/python3");
        ProcessBuilder pb = new ProcessBuilder(py, Path.of(src, "tests", "clients", "harness.py").toString());
        pb.environment().put("PYTHONPATH", Path.of(src, "tests", "integration").toString());
        pb.redirectError(ProcessBuilder.Redirect.INHERIT);
        harness = pb.start();
        toHarness = new OutputStreamWriter(harness.getOutputStream(), StandardCharsets.UTF_8);
        fromHarness = new BufferedReader(new InputStreamReader(harness.getInputStream(), StandardCharsets.UTF_8));
        info = fromHarness.readLine();
        assertNotNull("the harness started", info);
        socket = field(info, "socket");
        appid = field(info, "appid");
    }

    @AfterClass
    public static void stopHarness() throws Exception {
        toHarness.close();
        harness.waitFor(30, TimeUnit.SECONDS);
    }

    /** A string field of the harness's flat JSON answers (test code: no JSON library here). */
    private static String field(String json, String name) {
        Matcher m = Pattern.compile("\"" + name + "\": \"([^\"]*)\"").matcher(json);
        return m.find() ? m.group(1) : null;
    }

    private static synchronized String harness(String json) throws IOException {
        toHarness.write(json + "\n");
        toHarness.flush();
        String ans = fromHarness.readLine();
        assertTrue("harness: " + ans, ans != null && ans.startsWith("{\"ok\": true"));
        return ans;
    }

    private static int sends() throws IOException {
        Matcher m = Pattern.compile("\"n\": (\\d+)").matcher(harness("{\"op\": \"sends\"}"));
        assertTrue(m.find());
        return Integer.parseInt(m.group(1));
    }

    private static void fault(int count, String what) throws IOException {
        harness("{\"op\": \"fault\", \"path\": \"" + SUBSCRIBE + "\", \"count\": " + count + ", " + what + "}");
    }

    private static Map<String, Object> message(Object... over) {
        Map<String, Object> m = new HashMap<>();
        m.put("appid", appid);
        m.put("touser", "oUSER_openid_0001");
        m.put("template_id", "TEMPLATE_id_0001");
        m.put("scene", 1000);
        m.put("title", "订阅通知");
        m.put("data", Map.of("content", Map.of("value", "您好, wxpushd!")));
        for (int i = 0; i < over.length; i += 2) {
            m.put((String) over[i], over[i + 1]);
        }
        return m;
    }

    private static WxpushClient.Builder client() {
        return WxpushClient.builder().socket(socket).timeout(Duration.ofSeconds(20));
    }

    private interface Body {
        void run() throws Exception;
    }

    private static WxpushException expect(String code, Body b) throws Exception {
        try {
            b.run();
        } catch (WxpushException e) {
            assertEquals(e.toString(), code, e.getCode());
            return e;
        }
        fail("no " + code + " error");
        return null;
    }

    @Test
    public void ping() {
        try (WxpushClient c = client().build()) {
            Map<String, Object> r = c.ping();
            assertEquals(1L, r.get("protocol"));
            assertTrue(r.get("version") instanceof String);
        }
    }

    @Test
    public void status() {
        try (WxpushClient c = client().build()) {
            List<?> creds = (List<?>) c.status(appid).get("credentials");
            assertEquals(1, creds.size());
            assertEquals(appid, ((Map<?, ?>) creds.get(0)).get("appid"));
            assertTrue(c.status(null).get("credentials") instanceof List);
        }
    }

    @Test
    public void send() throws Exception {
        try (WxpushClient c = client().build()) {
            int n = sends();
            Map<String, Object> r = c.send(message());
            assertEquals(0L, r.get("errcode"));
            assertEquals(1L, r.get("attempts"));
            assertEquals(n + 1, sends());
        }
    }

    @Test
    public void typedErrors() throws Exception {
        try (WxpushClient c = client().build()) {
            WxpushException e = expect("invalid_request", () -> c.send(message("title", "x".repeat(16))));
            assertEquals("title", e.getField());
            assertFalse(e.isRetryable());
            expect("unknown_appid", () -> c.send(message("appid", "wxnotconfigured00")));
            expect("unknown_method", () -> c.request("no_such_method", null, WxpushClient.Options.create()));
            fault(1, "\"errcode\": 43101");
            e = expect("wechat", () -> c.send(message(), WxpushClient.Options.create().retries(3)));
            assertEquals(Integer.valueOf(43101), e.getErrcode());
            assertFalse(e.isRetryable());
            assertNotNull(e.getErrmsg());
        }
    }

    @Test
    public void retryAfterOverBudget() throws Exception {
        fault(1, "\"errcode\": 45011");
        int n = sends();
        try (WxpushClient c = client().retries(3).maxRetryAfter(Duration.ZERO).build()) {
            long t0 = System.nanoTime();
            WxpushException e = expect("wechat", () -> c.send(message()));
            assertEquals(Integer.valueOf(45011), e.getErrcode());
            assertTrue(e.isRetryable());
            assertTrue(e.getRetryAfter() >= 1 && e.getRetryAfter() <= 60);
            assertTrue(System.nanoTime() - t0 < 5_000_000_000L);
            assertEquals(n, sends());
        }
    }

    @Test
    public void retries() throws Exception {
        try (WxpushClient c = client().build()) {
            fault(4, "\"errcode\": -1");
            WxpushException e = expect("wechat", () -> c.send(message()));
            assertEquals(Integer.valueOf(-1), e.getErrcode());
            assertTrue(e.isRetryable());
            fault(4, "\"errcode\": -1");
            int n = sends();
            assertEquals(0L, c.send(message(), WxpushClient.Options.create().retries(2)).get("errcode"));
            assertEquals(n + 1, sends());
        }
    }

    @Test
    public void timeoutThenUsable() throws Exception {
        try (WxpushClient c = client().build()) {
            fault(1, "\"delay_ms\": 1500");
            long t0 = System.nanoTime();
            expect("timeout", () -> c.send(message(), WxpushClient.Options.create().timeout(Duration.ofMillis(300))));
            assertTrue(System.nanoTime() - t0 < 1_400_000_000L);
            Thread.sleep(1600); // the late answer arrives and is skipped
            assertEquals(1L, c.ping().get("protocol"));
            assertEquals(0L, c.send(message()).get("errcode"));
        }
    }

    @Test
    public void pipelining() throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(20);
        try (WxpushClient c = client().build()) {
            fault(1, "\"delay_ms\": 1500");
            BlockingQueue<String> order = new ArrayBlockingQueue<>(2);
            Future<?> slow = pool.submit(() -> {
                c.send(message());
                order.add("send");
            });
            Thread.sleep(200);
            c.ping();
            order.add("ping");
            slow.get();
            assertEquals("ping", order.take());
            assertEquals("send", order.take());
            int n = sends();
            List<Future<Map<String, Object>>> fs = new ArrayList<>();
            for (int i = 0; i < 20; i++) {
                fs.add(pool.submit(() -> c.send(message())));
            }
            for (Future<Map<String, Object>> f : fs) {
                assertEquals(0L, f.get().get("errcode"));
            }
            assertEquals(n + 20, sends());
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    public void idempotencyKey() throws Exception {
        try (WxpushClient c = client().build()) {
            String key = "java-idem-" + System.nanoTime();
            int n = sends();
            Map<String, Object> a = c.send(message(), WxpushClient.Options.create().idempotencyKey(key));
            Map<String, Object> b = c.send(message(), WxpushClient.Options.create().idempotencyKey(key));
            assertEquals(a, b);
            assertEquals(n + 1, sends());
            WxpushException e = expect("invalid_request",
                    () -> c.send(message("title", "another"), WxpushClient.Options.create().idempotencyKey(key)));
            assertEquals("idempotency_key", e.getField());
        }
    }

    @Test
    public void restart() throws Exception {
        ExecutorService pool = Executors.newSingleThreadExecutor();
        try (WxpushClient c = client().build();
                WxpushClient r = client().retries(20).backoff(Duration.ofMillis(100), Duration.ofMillis(500)).build()) {
            assertEquals(1L, c.ping().get("protocol"));
            harness("{\"op\": \"restart\"}");
            assertEquals(1L, c.ping().get("protocol"));
            harness("{\"op\": \"stop\"}");
            Future<Map<String, Object>> f;
            try {
                WxpushException e = expect("connect", c::ping);
                assertTrue(e.isRetryable());
                f = pool.submit(() -> r.send(message()));
                Thread.sleep(1000);
            } finally {
                harness("{\"op\": \"start\"}");
            }
            assertEquals(0L, f.get(30, TimeUnit.SECONDS).get("errcode"));
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    public void connectionLostDuringSend() throws Exception {
        // A send the daemon was carrying out when it died may have been
        // delivered: repeatable only under an idempotency key.
        ExecutorService pool = Executors.newSingleThreadExecutor();
        try {
            for (boolean retryable : new boolean[] {false, true}) {
                try (WxpushClient c = client().build()) {
                    WxpushClient.Options o = WxpushClient.Options.create();
                    if (retryable) {
                        o.idempotencyKey("java-lost-" + System.nanoTime());
                    }
                    c.send(message()); // a token at hand: the next send goes out at once
                    fault(1, "\"delay_ms\": 1500");
                    int n = sends();
                    Future<WxpushException> f = pool.submit(() -> expect("connect", () -> c.send(message(), o)));
                    Thread.sleep(500);
                    harness("{\"op\": \"kill\"}");
                    WxpushException e = f.get(10, TimeUnit.SECONDS);
                    harness("{\"op\": \"start\"}");
                    assertEquals(retryable, e.isRetryable());
                    // ... and it was: WeChat got it after the daemon died.
                    for (long end = System.nanoTime() + 10_000_000_000L; sends() == n && System.nanoTime() < end;) {
                        Thread.sleep(50);
                    }
                    assertEquals(n + 1, sends());
                }
            }
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    public void protocolErrors() throws Exception {
        // What breaks the protocol ends the connection; the next request opens another.
        try (WxpushClient c = WxpushClient.builder().socket(field(info, "fake")).build()) {
            for (String m : new String[] {"test_garbage", "test_oversize", "test_malformed"}) {
                expect("protocol", () -> c.request(m, null, WxpushClient.Options.create()));
                assertEquals(0L, c.call(appid, field(info, "call_path"), "GET", null, null).get("errcode"));
            }
        }
    }

    @Test
    public void enqueueParamsAndIdempotencyKeys() throws Exception {
        // What enqueue writes (the stand-in hands it back): notAfter, watch, the
        // caller's key, and a key of the client's own when it retries.
        String fake = field(info, "fake");
        try (WxpushClient c = WxpushClient.builder().socket(fake).build();
                WxpushClient r = WxpushClient.builder().socket(fake).retries(2).build()) {
            WxpushClient.Options none = WxpushClient.Options.create();
            c.enqueue(message(), WxpushClient.Options.create().notAfter(1900000000L).watch().idempotencyKey("k-1"));
            Map<?, ?> p = (Map<?, ?>) c.request("test_last", null, none).get("params");
            assertEquals(List.of(1900000000L, true, "k-1", "订阅通知"),
                    List.of(p.get("not_after"), p.get("watch"), p.get("idempotency_key"), p.get("title")));
            c.enqueue(message(), none);
            p = (Map<?, ?>) c.request("test_last", null, none).get("params");
            assertFalse(p.containsKey("idempotency_key") || p.containsKey("watch"));
            r.enqueue(message(), none);
            String k1 = (String) ((Map<?, ?>) r.request("test_last", null, none).get("params")).get("idempotency_key");
            r.enqueue(message(), none);
            String k2 = (String) ((Map<?, ?>) r.request("test_last", null, none).get("params")).get("idempotency_key");
            assertTrue(k1 + " " + k2, k1.startsWith("wxpush-") && !k1.equals(k2));
        }
    }

    // enqueue, delivery and call (issues #14, #16): against the daemon once it
    // has them, until then against the harness's stand-in of their contract.

    private static WxpushClient.Builder planned(String method) {
        Matcher m = Pattern.compile("\"" + method + "\": \"([^\"]*)\"")
                .matcher(info.substring(info.indexOf("\"planned\"")));
        assertTrue(m.find());
        return WxpushClient.builder().socket(m.group(1)).timeout(Duration.ofSeconds(20));
    }

    @Test
    public void enqueueAndDelivery() throws Exception {
        try (WxpushClient c = planned("enqueue").build()) {
            Object id = c.enqueue(message(),
                    WxpushClient.Options.create().notAfter(System.currentTimeMillis() / 1000 + 600));
            Map<String, Object> d = null;
            for (long end = System.nanoTime() + 20_000_000_000L; System.nanoTime() < end; Thread.sleep(100)) {
                d = c.delivery(id);
                if (!d.get("state").equals("queued") && !d.get("state").equals("sending")) {
                    break;
                }
            }
            assertEquals(id, d.get("id"));
            assertEquals("delivered", d.get("state"));
            assertTrue((Long) d.get("attempts") >= 1);
            List<?> ids = c.enqueueBatch(List.of(message(), message()), WxpushClient.Options.create());
            assertEquals(2, ids.size());
            // Delivered before the test ends: a later test's one-shot fault is its own.
            for (Object i : ids) {
                for (long end = System.nanoTime() + 20_000_000_000L; System.nanoTime() < end; Thread.sleep(100)) {
                    d = c.delivery(i);
                    if (!d.get("state").equals("queued") && !d.get("state").equals("sending")) {
                        break;
                    }
                }
                assertEquals("delivered", d.get("state"));
            }
            expect("invalid_request",
                    () -> c.enqueueBatch(List.of(message(), message("title", "")), WxpushClient.Options.create()));
        }
    }

    @Test
    public void enqueueWatch() throws Exception {
        BlockingQueue<Object> got = new ArrayBlockingQueue<>(4);
        try (WxpushClient c = planned("enqueue").onNotification((m, p) -> {
            if (m.equals("delivery")) {
                got.add(p);
            }
        }).build()) {
            Object id = c.enqueue(message(), WxpushClient.Options.create().watch());
            Object p = got.poll(20, TimeUnit.SECONDS);
            assertNotNull("a delivery notification", p);
            assertEquals(id, ((Map<?, ?>) ((List<?>) p).get(0)).get("id"));
        }
    }

    @Test
    public void call() throws Exception {
        try (WxpushClient c = planned("call").build()) {
            Map<String, Object> r = c.call(appid, field(info, "call_path"), "GET", null, null);
            assertFalse(r.containsKey("access_token"));
            try {
                c.call(appid, "/cgi-bin/token", "GET", null, null);
                fail("a token path was called");
            } catch (WxpushException e) {
                assertTrue(e.getCode(), e.getCode().equals("forbidden") || e.getCode().equals("invalid_request"));
            }
        }
    }
}
