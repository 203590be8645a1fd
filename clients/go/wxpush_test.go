package wxpush_test

// The Go client against the real wxpushd and wxpush-mock, started by
// tests/clients/harness.py of the wxpushd tree ($WX_SRCDIR).

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"wxpushd/wxpush"
)

const subscribe = "/cgi-bin/message/template/subscribe"

// harness is the harness process: the daemon and the mock, and commands for them.
type harness struct {
	cmd     *exec.Cmd
	in      io.WriteCloser
	out     *bufio.Scanner
	mu      sync.Mutex
	Socket  string            `json:"socket"`
	Appid   string            `json:"appid"`
	Call    string            `json:"call_path"`
	Has     map[string]bool   `json:"methods"`
	Planned map[string]string `json:"planned"`
	Fake    string            `json:"fake"`
}

var H *harness

func TestMain(m *testing.M) {
	src := os.Getenv("WX_SRCDIR")
	if src == "" {
		src = filepath.Join("..", "..")
	}
	py := os.Getenv("WX_PYTHON")
	if py == "" {
		py = "/usr/bin/python3"
	}
	H = &harness{cmd: exec.Command(py, filepath.Join(src, "tests", "clients", "harness.py"))}
	H.cmd.Env = append(os.Environ(), "PYTHONPATH="+filepath.Join(src, "tests", "integration"))
	H.cmd.Stderr = os.Stderr
	H.in, _ = H.cmd.StdinPipe()
	stdout, _ := H.cmd.StdoutPipe()
	if err := H.cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "harness:", err)
		os.Exit(1)
	}
	H.out = bufio.NewScanner(stdout)
	if !H.out.Scan() || json.Unmarshal(H.out.Bytes(), H) != nil {
		fmt.Fprintln(os.Stderr, "harness did not start")
		os.Exit(1)
	}
	code := m.Run()
	H.in.Close()
	H.cmd.Wait()
	os.Exit(code)
}

func (h *harness) do(t *testing.T, op string, args map[string]interface{}) map[string]interface{} {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if args == nil {
		args = map[string]interface{}{}
	}
	args["op"] = op
	b, _ := json.Marshal(args)
	h.in.Write(append(b, '\n'))
	var ans map[string]interface{}
	if !h.out.Scan() || json.Unmarshal(h.out.Bytes(), &ans) != nil {
		t.Fatalf("harness: no answer to %s", op)
	}
	if ans["ok"] != true {
		t.Fatalf("harness: %v", ans["error"])
	}
	return ans
}

func (h *harness) sends(t *testing.T) int {
	return int(h.do(t, "sends", nil)["n"].(float64))
}

func (h *harness) fault(t *testing.T, count int, kv ...interface{}) {
	a := map[string]interface{}{"path": subscribe, "count": count}
	a[kv[0].(string)] = kv[1]
	h.do(t, "fault", a)
}

func message(over map[string]interface{}) map[string]interface{} {
	m := map[string]interface{}{"appid": H.Appid, "touser": "oUSER_openid_0001",
		"template_id": "TEMPLATE_id_0001", "scene": 1000, "title": "订阅通知",
		"data": map[string]interface{}{"content": map[string]interface{}{"value": "您好, wxpushd!"}}}
	for k, v := range over {
		m[k] = v
	}
	return m
}

func client(o wxpush.Options) *wxpush.Client {
	o.Socket = H.Socket
	return wxpush.New(o)
}

// wantError checks that err is a *wxpush.Error with this code and returns it.
func wantError(t *testing.T, err error, code string) *wxpush.Error {
	t.Helper()
	var e *wxpush.Error
	if !errors.As(err, &e) {
		t.Fatalf("got %v, want a *wxpush.Error %s", err, code)
	}
	if e.Code != code {
		t.Fatalf("got code %q (%v), want %q", e.Code, e, code)
	}
	return e
}

var bg = context.Background()

func TestPing(t *testing.T) {
	c := client(wxpush.Options{})
	defer c.Close()
	r, err := c.Ping(bg)
	if err != nil || r.Protocol != 1 || r.Version == "" {
		t.Fatalf("ping: %+v, %v", r, err)
	}
}

func TestStatus(t *testing.T) {
	c := client(wxpush.Options{})
	defer c.Close()
	r, err := c.Status(bg, H.Appid)
	if err != nil {
		t.Fatal(err)
	}
	creds := r["credentials"].([]interface{})
	if len(creds) != 1 || creds[0].(map[string]interface{})["appid"] != H.Appid {
		t.Fatalf("status: %v", r)
	}
}

func TestSend(t *testing.T) {
	c := client(wxpush.Options{})
	defer c.Close()
	n := H.sends(t)
	r, err := c.Send(bg, message(nil))
	if err != nil || r.Errcode != 0 || r.Attempts != 1 {
		t.Fatalf("send: %+v, %v", r, err)
	}
	if H.sends(t) != n+1 {
		t.Fatal("the mock did not get one send")
	}
}

func TestErrors(t *testing.T) {
	c := client(wxpush.Options{})
	defer c.Close()
	_, err := c.Send(bg, message(map[string]interface{}{"title": "xxxxxxxxxxxxxxxx"}))
	if e := wantError(t, err, "invalid_request"); e.Field != "title" || e.Retryable {
		t.Fatalf("%+v", e)
	}
	_, err = c.Send(bg, message(map[string]interface{}{"appid": "wxnotconfigured00"}))
	wantError(t, err, "unknown_appid")
	wantError(t, c.Request(bg, "no_such_method", nil, nil), "unknown_method")
	H.fault(t, 1, "errcode", 43101)
	_, err = c.Send(bg, message(nil), wxpush.WithRetries(3))
	if e := wantError(t, err, "wechat"); e.Errcode != 43101 || e.Retryable || e.Errmsg == "" {
		t.Fatalf("%+v", e)
	}
}

func TestRetryAfterOverBudget(t *testing.T) {
	H.fault(t, 1, "errcode", 45011)
	n := H.sends(t)
	c := client(wxpush.Options{Retries: 3, MaxRetryAfter: time.Nanosecond})
	defer c.Close()
	t0 := time.Now()
	_, err := c.Send(bg, message(nil))
	e := wantError(t, err, "wechat")
	if e.Errcode != 45011 || !e.Retryable || e.RetryAfter < 1 || e.RetryAfter > 60 {
		t.Fatalf("%+v", e)
	}
	if time.Since(t0) > 5*time.Second || H.sends(t) != n {
		t.Fatal("retry_after over the budget was waited for")
	}
}

func TestRetries(t *testing.T) {
	c := client(wxpush.Options{})
	defer c.Close()
	H.fault(t, 4, "errcode", -1)
	_, err := c.Send(bg, message(nil))
	if e := wantError(t, err, "wechat"); e.Errcode != -1 || !e.Retryable {
		t.Fatalf("%+v", e)
	}
	H.fault(t, 4, "errcode", -1)
	n := H.sends(t)
	r, err := c.Send(bg, message(nil), wxpush.WithRetries(2))
	if err != nil || r.Errcode != 0 || H.sends(t) != n+1 {
		t.Fatalf("send with retries: %+v, %v", r, err)
	}
}

func TestTimeoutThenUsable(t *testing.T) {
	c := client(wxpush.Options{})
	defer c.Close()
	H.fault(t, 1, "delay_ms", 1500)
	t0 := time.Now()
	_, err := c.Send(bg, message(nil), wxpush.WithTimeout(300*time.Millisecond))
	wantError(t, err, "timeout")
	if time.Since(t0) > 1400*time.Millisecond {
		t.Fatal("the timeout was not kept")
	}
	ctx, cancel := context.WithTimeout(bg, 100*time.Millisecond)
	defer cancel()
	H.fault(t, 1, "delay_ms", 1000)
	_, err = c.Send(ctx, message(nil))
	wantError(t, err, "timeout")
	time.Sleep(1600 * time.Millisecond) // the late answers arrive and are skipped
	if r, err := c.Ping(bg); err != nil || r.Protocol != 1 {
		t.Fatalf("ping after a timeout: %v", err)
	}
	if r, err := c.Send(bg, message(nil)); err != nil || r.Errcode != 0 {
		t.Fatalf("send after a timeout: %v", err)
	}
}

func TestPipelining(t *testing.T) {
	c := client(wxpush.Options{})
	defer c.Close()
	H.fault(t, 1, "delay_ms", 1500)
	order := make(chan string, 2)
	go func() {
		c.Send(bg, message(nil))
		order <- "send"
	}()
	time.Sleep(200 * time.Millisecond)
	c.Ping(bg)
	order <- "ping"
	if a, b := <-order, <-order; a != "ping" || b != "send" {
		t.Fatalf("order %s, %s", a, b)
	}
	n := H.sends(t)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Send(bg, message(nil)); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if H.sends(t) != n+20 {
		t.Fatal("the mock did not get 20 sends")
	}
}

func TestIdempotencyKey(t *testing.T) {
	c := client(wxpush.Options{})
	defer c.Close()
	key := fmt.Sprintf("go-idem-%d", time.Now().UnixNano())
	n := H.sends(t)
	a, err1 := c.Send(bg, message(nil), wxpush.WithIdempotencyKey(key))
	b, err2 := c.Send(bg, message(nil), wxpush.WithIdempotencyKey(key))
	if err1 != nil || err2 != nil || *a != *b || H.sends(t) != n+1 {
		t.Fatalf("%+v %+v %v %v", a, b, err1, err2)
	}
	_, err := c.Send(bg, message(map[string]interface{}{"title": "another"}), wxpush.WithIdempotencyKey(key))
	if e := wantError(t, err, "invalid_request"); e.Field != "idempotency_key" {
		t.Fatalf("%+v", e)
	}
}

func TestRestart(t *testing.T) {
	c := client(wxpush.Options{})
	defer c.Close()
	if _, err := c.Ping(bg); err != nil {
		t.Fatal(err)
	}
	H.do(t, "restart", nil)
	if _, err := c.Ping(bg); err != nil {
		t.Fatalf("ping after a restart: %v", err)
	}
	H.do(t, "stop", nil)
	started := false
	defer func() {
		if !started {
			H.do(t, "start", nil)
		}
	}()
	_, err := c.Ping(bg)
	if e := wantError(t, err, "connect"); !e.Retryable {
		t.Fatalf("%+v", e)
	}
	r := client(wxpush.Options{Retries: 20, Backoff: 100 * time.Millisecond, MaxBackoff: 500 * time.Millisecond})
	defer r.Close()
	done := make(chan error, 1)
	go func() {
		_, err := r.Send(bg, message(nil))
		done <- err
	}()
	time.Sleep(time.Second)
	H.do(t, "start", nil)
	started = true
	if err := <-done; err != nil {
		t.Fatalf("send across the restart: %v", err)
	}
}

func TestConnectionLostDuringSend(t *testing.T) {
	// A send the daemon was carrying out when it died may have been
	// delivered: repeatable only under an idempotency key.
	for _, retryable := range []bool{false, true} {
		c := client(wxpush.Options{})
		var opts []wxpush.CallOption
		if retryable {
			opts = append(opts, wxpush.WithIdempotencyKey(fmt.Sprintf("go-lost-%d", time.Now().UnixNano())))
		}
		if _, err := c.Send(bg, message(nil)); err != nil { // a token at hand: the next send goes out at once
			t.Fatal(err)
		}
		H.fault(t, 1, "delay_ms", 1500)
		n := H.sends(t)
		done := make(chan error, 1)
		go func() {
			_, err := c.Send(bg, message(nil), opts...)
			done <- err
		}()
		time.Sleep(500 * time.Millisecond)
		H.do(t, "kill", nil)
		err := <-done
		H.do(t, "start", nil)
		c.Close()
		if e := wantError(t, err, "connect"); e.Retryable != retryable {
			t.Fatalf("retryable %v, want %v", e.Retryable, retryable)
		}
		// ... and it was: WeChat got it after the daemon died.
		for end := time.Now().Add(10 * time.Second); H.sends(t) == n && time.Now().Before(end); {
			time.Sleep(50 * time.Millisecond)
		}
		if H.sends(t) != n+1 {
			t.Fatal("WeChat did not get the send")
		}
	}
}

func TestProtocolErrors(t *testing.T) {
	// What breaks the protocol ends the connection; the next request opens another.
	c := wxpush.New(wxpush.Options{Socket: H.Fake})
	defer c.Close()
	for _, m := range []string{"test_garbage", "test_oversize", "test_malformed"} {
		wantError(t, c.Request(bg, m, nil, nil), "protocol")
		if r, err := c.Call(bg, H.Appid, H.Call, "GET", nil, nil); err != nil || r["errcode"] != int8(0) {
			t.Fatalf("after %s: %v %v", m, r, err)
		}
	}
}

func TestEnqueueParamsAndIdempotencyKeys(t *testing.T) {
	// What Enqueue writes (the stand-in hands it back): not_after, watch, the
	// caller's key, and a key of the client's own when it retries.
	c := wxpush.New(wxpush.Options{Socket: H.Fake})
	defer c.Close()
	r := wxpush.New(wxpush.Options{Socket: H.Fake, Retries: 2})
	defer r.Close()
	last := func(cl *wxpush.Client) map[string]interface{} {
		var out struct {
			Params map[string]interface{} `msgpack:"params"`
		}
		if err := cl.Request(bg, "test_last", nil, &out); err != nil {
			t.Fatal(err)
		}
		return out.Params
	}
	if _, err := c.Enqueue(bg, message(nil), wxpush.WithNotAfter(time.Unix(1900000000, 0)), wxpush.WithWatch(),
		wxpush.WithIdempotencyKey("k-1")); err != nil {
		t.Fatal(err)
	}
	p := last(c)
	if fmt.Sprintf("%v %v %v %v", p["not_after"], p["watch"], p["idempotency_key"], p["title"]) != "1900000000 true k-1 订阅通知" {
		t.Fatalf("params %v", p)
	}
	c.Enqueue(bg, message(nil))
	if p := last(c); p["idempotency_key"] != nil || p["watch"] != nil {
		t.Fatalf("params %v", p)
	}
	r.Enqueue(bg, message(nil))
	k1, _ := last(r)["idempotency_key"].(string)
	r.Enqueue(bg, message(nil))
	k2, _ := last(r)["idempotency_key"].(string)
	if len(k1) < 8 || k1[:7] != "wxpush-" || k1 == k2 {
		t.Fatalf("keys %q %q", k1, k2)
	}
}

// enqueue, delivery and call (issues #14, #16): against the daemon once it
// has them, until then against the harness's stand-in of their contract.
func planned(o wxpush.Options, method string) *wxpush.Client {
	o.Socket = H.Planned[method]
	return wxpush.New(o)
}

func TestEnqueueDelivery(t *testing.T) {
	c := planned(wxpush.Options{}, "enqueue")
	defer c.Close()
	id, err := c.Enqueue(bg, message(nil), wxpush.WithNotAfter(time.Now().Add(10*time.Minute)))
	if err != nil {
		t.Fatal(err)
	}
	var d *wxpush.Delivery
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if d, err = c.Delivery(bg, id); err != nil {
			t.Fatal(err)
		}
		if d.State != "queued" && d.State != "sending" {
			break
		}
	}
	if d.State != "delivered" || d.Attempts < 1 || fmt.Sprint(d.ID) != fmt.Sprint(id) {
		t.Fatalf("delivery: %+v", d)
	}
	ids, err := c.EnqueueBatch(bg, []map[string]interface{}{message(nil), message(nil)})
	if err != nil || len(ids) != 2 {
		t.Fatalf("batch: %v %v", ids, err)
	}
	// Delivered before the test ends: a later test's one-shot fault is its own.
	for _, i := range ids {
		for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
			if d, err = c.Delivery(bg, i); err != nil {
				t.Fatal(err)
			}
			if d.State != "queued" && d.State != "sending" {
				break
			}
		}
		if d.State != "delivered" {
			t.Fatalf("batch delivery: %+v", d)
		}
	}
	_, err = c.EnqueueBatch(bg, []map[string]interface{}{message(nil), message(map[string]interface{}{"title": ""})})
	wantError(t, err, "invalid_request")
}

func TestEnqueueWatch(t *testing.T) {
	got := make(chan []map[string]interface{}, 1)
	c := planned(wxpush.Options{OnNotification: func(m string, p []map[string]interface{}) {
		if m == "delivery" {
			got <- p
		}
	}}, "enqueue")
	defer c.Close()
	id, err := c.Enqueue(bg, message(nil), wxpush.WithWatch())
	if err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-got:
		if fmt.Sprint(p[0]["id"]) != fmt.Sprint(id) {
			t.Fatalf("notification %v for %v", p, id)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no delivery notification")
	}
}

func TestCall(t *testing.T) {
	c := planned(wxpush.Options{}, "call")
	defer c.Close()
	r, err := c.Call(bg, H.Appid, H.Call, "GET", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r["access_token"]; ok {
		t.Fatal("a token in the answer")
	}
	_, err = c.Call(bg, H.Appid, "/cgi-bin/token", "GET", nil, nil)
	var e *wxpush.Error
	if !errors.As(err, &e) || (e.Code != "forbidden" && e.Code != "invalid_request") {
		t.Fatalf("a token path: %v", err)
	}
}
