// Package wxpush is a client for wxpushd: send WeChat messages through the
// daemon that holds the access tokens. It speaks MessagePack-RPC over the
// daemon's Unix socket (docs/protocol.md of wxpushd).
//
// A Client holds one connection and pipelines every request on it; it is
// safe for concurrent use by many goroutines. A lost connection (a daemon
// restart) is replaced on the next request.
package wxpush

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	mrand "math/rand"
	"net"
	"os"
	"sync"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// DefaultSocket is used when neither Options.Socket nor $WXPUSH_SOCKET is set.
const DefaultSocket = "/run/wxpushd/wxpushd.sock"

// MaxResponse bounds one answer from the daemon, in bytes.
const MaxResponse = 16 << 20

// Error is a failed request: the daemon's error map, or one the client made
// up: "connect" (no connection, or it was lost), "protocol" (the daemon broke
// the protocol) and "timeout" (the caller's deadline passed).
type Error struct {
	Code       string `msgpack:"code"`
	Message    string `msgpack:"message"`
	Retryable  bool   `msgpack:"retryable"`
	Field      string `msgpack:"field"`       // the request field at fault, a dotted path
	Errcode    int    `msgpack:"errcode"`     // WeChat's errcode; 0 when WeChat did not answer
	Errmsg     string `msgpack:"errmsg"`      // WeChat's errmsg
	RetryAfter int    `msgpack:"retry_after"` // seconds to wait before retrying; 0 if not known

	unsent bool // failed before the request reached the daemon
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Options configure a Client; the zero value of each field means its default.
type Options struct {
	Socket        string        // default $WXPUSH_SOCKET, else DefaultSocket
	Timeout       time.Duration // per request when the context has no deadline; default 35 s
	Retries       int           // retries of retryable errors; default 0
	Backoff       time.Duration // first wait between retries, doubled each time; default 200 ms
	MaxBackoff    time.Duration // default 5 s
	MaxRetryAfter time.Duration // a longer retry_after is returned, not waited for; default 10 s
	// OnNotification is called on the reader goroutine for the daemon's
	// notifications (a watched delivery: "delivery", [{id, state, ...}]).
	OnNotification func(method string, params []map[string]interface{})
}

// Client is a wxpushd client. Its zero value is not usable: call New.
type Client struct {
	opts Options
	mu   sync.Mutex
	conn *conn
}

// New returns a client; it connects on first use.
func New(opts Options) *Client {
	if opts.Socket == "" {
		opts.Socket = os.Getenv("WXPUSH_SOCKET")
	}
	if opts.Socket == "" {
		opts.Socket = DefaultSocket
	}
	if opts.Timeout == 0 {
		opts.Timeout = 35 * time.Second
	}
	if opts.Backoff == 0 {
		opts.Backoff = 200 * time.Millisecond
	}
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = 5 * time.Second
	}
	if opts.MaxRetryAfter == 0 {
		opts.MaxRetryAfter = 10 * time.Second
	}
	return &Client{opts: opts}
}

// Close closes the connection; a later request opens a new one.
func (c *Client) Close() error {
	c.mu.Lock()
	cn := c.conn
	c.conn = nil
	c.mu.Unlock()
	if cn != nil {
		cn.fail(&Error{Code: "connect", Message: "the client was closed"})
	}
	return nil
}

type response struct {
	err    *Error
	result msgpack.RawMessage
}

// conn is one socket, its reader goroutine and the requests waiting on it.
type conn struct {
	sock    net.Conn
	wmu     sync.Mutex
	mu      sync.Mutex
	pending map[uint32]chan response
	msgid   uint32
	closed  *Error
	notify  func(string, []map[string]interface{})
}

// countingReader fails once more than MaxResponse bytes pass without a reset.
type countingReader struct {
	r io.Reader
	n int
}

func (cr *countingReader) Read(p []byte) (int, error) {
	n, err := cr.r.Read(p)
	cr.n += n
	if cr.n > MaxResponse+len(p) {
		return n, &Error{Code: "protocol", Message: "an answer over 16 MiB"}
	}
	return n, err
}

func dial(path string, notify func(string, []map[string]interface{})) (*conn, error) {
	s, err := net.Dial("unix", path)
	if err != nil {
		return nil, &Error{Code: "connect", Message: "cannot connect: " + err.Error(), Retryable: true}
	}
	cn := &conn{sock: s, pending: map[uint32]chan response{}, notify: notify}
	go cn.read()
	return cn, nil
}

// read decodes the daemon's messages and hands each answer to its waiter.
func (cn *conn) read() {
	cr := &countingReader{r: cn.sock}
	dec := msgpack.NewDecoder(bufio.NewReader(cr))
	for {
		cr.n = 0
		if e := cn.readOne(dec); e != nil {
			cn.fail(e)
			return
		}
	}
}

func (cn *conn) readOne(dec *msgpack.Decoder) *Error {
	bad := func(err error) *Error {
		var we *Error
		if errors.As(err, &we) {
			return we
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return &Error{Code: "connect", Message: "the daemon closed the connection", Retryable: true}
		}
		if _, ok := err.(net.Error); ok {
			return &Error{Code: "connect", Message: "connection lost: " + err.Error(), Retryable: true}
		}
		return &Error{Code: "protocol", Message: "not a MessagePack-RPC message: " + err.Error()}
	}
	n, err := dec.DecodeArrayLen()
	if err != nil {
		return bad(err)
	}
	typ, err := dec.DecodeInt()
	if err != nil {
		return bad(err)
	}
	if typ == 2 && n == 3 {
		method, err := dec.DecodeString()
		if err != nil {
			return bad(err)
		}
		var params []map[string]interface{}
		if err := dec.Decode(&params); err != nil {
			return bad(err)
		}
		if cn.notify != nil {
			cn.notify(method, params)
		}
		return nil
	}
	if typ != 1 || n != 4 {
		return &Error{Code: "protocol", Message: "the daemon sent something that is not a response"}
	}
	msgid, err := dec.DecodeUint32()
	if err != nil {
		return bad(err)
	}
	var r response
	if err := dec.Decode(&r.err); err != nil {
		return bad(err)
	}
	raw, err := dec.DecodeRaw()
	if err != nil {
		return bad(err)
	}
	if len(raw) != 1 || raw[0] != 0xc0 {
		r.result = raw
	}
	if (r.err == nil) == (r.result == nil) {
		return &Error{Code: "protocol", Message: "a response with both or neither of error and result"}
	}
	cn.mu.Lock()
	ch := cn.pending[msgid]
	delete(cn.pending, msgid)
	cn.mu.Unlock()
	if ch != nil { // else an answer we gave up waiting for
		ch <- r
	}
	return nil
}

// fail ends the connection: every waiting request gets e.
func (cn *conn) fail(e *Error) {
	cn.mu.Lock()
	if cn.closed == nil {
		cn.closed = e
	}
	pending := cn.pending
	cn.pending = map[uint32]chan response{}
	cn.mu.Unlock()
	cn.sock.Close()
	for _, ch := range pending {
		ch <- response{err: e}
	}
}

var safe = map[string]bool{"ping": true, "status": true, "stats": true, "delivery": true}

// request sends one request and waits for its answer or the context's end.
func (cn *conn) request(ctx context.Context, method string, params map[string]interface{}) (msgpack.RawMessage, error) {
	p := []interface{}{}
	if params != nil {
		p = append(p, params)
	}
	ch := make(chan response, 1)
	cn.mu.Lock()
	if cn.closed != nil {
		cn.mu.Unlock()
		return nil, &Error{Code: "connect", Message: cn.closed.Message, Retryable: true, unsent: true}
	}
	for {
		cn.msgid++
		if _, used := cn.pending[cn.msgid]; !used {
			break
		}
	}
	msgid := cn.msgid
	cn.pending[msgid] = ch
	cn.mu.Unlock()
	frame, err := msgpack.Marshal([]interface{}{0, msgid, method, p})
	if err != nil {
		cn.forget(msgid)
		return nil, &Error{Code: "invalid_request", Message: "cannot encode the request: " + err.Error()}
	}
	cn.wmu.Lock()
	_, err = cn.sock.Write(frame)
	cn.wmu.Unlock()
	if err != nil {
		cn.forget(msgid)
		cn.fail(&Error{Code: "connect", Message: "connection lost: " + err.Error(), Retryable: true})
		return nil, &Error{Code: "connect", Message: "connection lost: " + err.Error(), Retryable: true, unsent: true}
	}
	select {
	case r := <-ch:
		if r.err != nil {
			if r.err.Code == "connect" {
				// Written, then the connection died: only repeatable when harmless.
				_, keyed := params["idempotency_key"]
				e := *r.err
				e.Retryable = r.err.Retryable && (safe[method] || keyed)
				return nil, &e
			}
			return nil, r.err
		}
		return r.result, nil
	case <-ctx.Done():
		cn.forget(msgid)
		return nil, &Error{Code: "timeout", Message: "no answer in time (" + ctx.Err().Error() +
			"); the request may still be carried out"}
	}
}

func (cn *conn) forget(msgid uint32) {
	cn.mu.Lock()
	delete(cn.pending, msgid)
	cn.mu.Unlock()
}

func (c *Client) connection() (*conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		c.conn.mu.Lock()
		closed := c.conn.closed != nil
		c.conn.mu.Unlock()
		if !closed {
			return c.conn, nil
		}
	}
	cn, err := dial(c.opts.Socket, c.opts.OnNotification)
	if err != nil {
		return nil, err
	}
	c.conn = cn
	return cn, nil
}

// CallOption changes one request.
type CallOption func(*callOpts)

type callOpts struct {
	retries  int
	key      string
	timeout  time.Duration
	notAfter int64
	watch    bool
}

// WithRetries sets how many times a retryable error is retried.
func WithRetries(n int) CallOption { return func(o *callOpts) { o.retries = n } }

// WithIdempotencyKey names a message so that a repeat is recognized (send, enqueue).
func WithIdempotencyKey(k string) CallOption { return func(o *callOpts) { o.key = k } }

// WithTimeout bounds the wait for each answer when the context has no deadline.
func WithTimeout(d time.Duration) CallOption { return func(o *callOpts) { o.timeout = d } }

// WithNotAfter makes the outbox give a message up after t (enqueue).
func WithNotAfter(t time.Time) CallOption { return func(o *callOpts) { o.notAfter = t.Unix() } }

// WithWatch asks for a "delivery" notification at the final state (enqueue).
func WithWatch() CallOption { return func(o *callOpts) { o.watch = true } }

func (c *Client) options(opts []CallOption) callOpts {
	o := callOpts{retries: c.opts.Retries, timeout: c.opts.Timeout}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// Request calls any method and decodes its result into out (a pointer to a
// struct with msgpack tags, or to a map); retries as the options say.
func (c *Client) Request(ctx context.Context, method string, params map[string]interface{}, out interface{}, opts ...CallOption) error {
	o := c.options(opts)
	return c.request(ctx, method, params, out, o)
}

func (c *Client) request(ctx context.Context, method string, params map[string]interface{}, out interface{}, o callOpts) error {
	delay := c.opts.Backoff
	fresh := false
	for attempt := 0; ; attempt++ {
		raw, err := c.once(ctx, method, params, o.timeout)
		var ue *Error
		if errors.As(err, &ue) && ue.unsent && !fresh {
			// The kept connection died while idle (a daemon restart): one
			// more try on a new one, whatever the retries.
			fresh = true
			attempt--
			continue
		}
		if err == nil {
			if out == nil {
				return nil
			}
			if err := msgpack.Unmarshal(raw, out); err != nil {
				return &Error{Code: "protocol", Message: "unexpected result: " + err.Error()}
			}
			return nil
		}
		var we *Error
		if !errors.As(err, &we) || !we.Retryable || attempt >= o.retries {
			return err
		}
		ra := time.Duration(we.RetryAfter) * time.Second
		if ra > c.opts.MaxRetryAfter {
			return err
		}
		wait := ra
		if wait == 0 {
			wait = delay/2 + time.Duration(mrand.Int63n(int64(delay/2)+1))
		}
		if delay *= 2; delay > c.opts.MaxBackoff {
			delay = c.opts.MaxBackoff
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return err
		}
	}
}

func (c *Client) once(ctx context.Context, method string, params map[string]interface{}, timeout time.Duration) (msgpack.RawMessage, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	cn, err := c.connection()
	if err != nil {
		return nil, err
	}
	return cn.request(ctx, method, params)
}

// keyed copies a message, adding the idempotency key (a random one when
// retrying without one, so that a retry never delivers twice).
func keyed(msg map[string]interface{}, o callOpts) map[string]interface{} {
	p := make(map[string]interface{}, len(msg)+3)
	for k, v := range msg {
		p[k] = v
	}
	if o.key != "" {
		p["idempotency_key"] = o.key
	} else if _, ok := p["idempotency_key"]; !ok && o.retries > 0 {
		b := make([]byte, 16)
		rand.Read(b)
		p["idempotency_key"] = "wxpush-go-" + hex.EncodeToString(b)
	}
	return p
}

// PingResult is the answer to Ping.
type PingResult struct {
	Version  string `msgpack:"version"`
	Protocol int    `msgpack:"protocol"`
}

// SendResult is the answer to a successful Send.
type SendResult struct {
	Errcode  int    `msgpack:"errcode"`
	Errmsg   string `msgpack:"errmsg"`
	Attempts int    `msgpack:"attempts"`
}

// Delivery is the state of a queued message.
type Delivery struct {
	ID        interface{} `msgpack:"id"`
	State     string      `msgpack:"state"` // queued, sending, delivered, failed, expired
	Attempts  int         `msgpack:"attempts"`
	CreatedAt int64       `msgpack:"created_at"`
	UpdatedAt int64       `msgpack:"updated_at"`
	Errcode   int         `msgpack:"errcode"`
	Errmsg    string      `msgpack:"errmsg"`
	Code      string      `msgpack:"code"`
}

// Ping returns the daemon's version and protocol.
func (c *Client) Ping(ctx context.Context, opts ...CallOption) (*PingResult, error) {
	var r PingResult
	return &r, c.Request(ctx, "ping", nil, &r, opts...)
}

// Status returns the credentials' state; appid "" means all the caller may see.
func (c *Client) Status(ctx context.Context, appid string, opts ...CallOption) (map[string]interface{}, error) {
	p := map[string]interface{}{}
	if appid != "" {
		p["appid"] = appid
	}
	var r map[string]interface{}
	return r, c.Request(ctx, "status", p, &r, opts...)
}

// Stats returns the daemon's counters.
func (c *Client) Stats(ctx context.Context, opts ...CallOption) (map[string]interface{}, error) {
	var r map[string]interface{}
	return r, c.Request(ctx, "stats", nil, &r, opts...)
}

// Send sends one message now (the protocol's send params).
func (c *Client) Send(ctx context.Context, msg map[string]interface{}, opts ...CallOption) (*SendResult, error) {
	o := c.options(opts)
	var r SendResult
	return &r, c.request(ctx, "send", keyed(msg, o), &r, o)
}

// Enqueue queues one message in the daemon's outbox; its id once it is on disk.
func (c *Client) Enqueue(ctx context.Context, msg map[string]interface{}, opts ...CallOption) (interface{}, error) {
	o := c.options(opts)
	p := keyed(msg, o)
	if o.notAfter != 0 {
		p["not_after"] = o.notAfter
	}
	if o.watch {
		p["watch"] = true
	}
	var r struct {
		ID interface{} `msgpack:"id"`
	}
	err := c.request(ctx, "enqueue", p, &r, o)
	return r.ID, err
}

// EnqueueBatch queues up to 1000 messages at once (all or none); their ids.
func (c *Client) EnqueueBatch(ctx context.Context, msgs []map[string]interface{}, opts ...CallOption) ([]interface{}, error) {
	o := c.options(opts)
	list := make([]interface{}, len(msgs))
	for i, m := range msgs {
		list[i] = keyed(m, callOpts{retries: o.retries})
	}
	var r struct {
		IDs []interface{} `msgpack:"ids"`
	}
	err := c.request(ctx, "enqueue", map[string]interface{}{"messages": list}, &r, o)
	return r.IDs, err
}

// Delivery returns the state of a queued message.
func (c *Client) Delivery(ctx context.Context, id interface{}, opts ...CallOption) (*Delivery, error) {
	var r Delivery
	return &r, c.Request(ctx, "delivery", map[string]interface{}{"id": id}, &r, opts...)
}

// Call calls an allowed WeChat API with the appid's token; WeChat's answer.
// method is "GET" or "POST"; query and body may be nil (body: a map or a JSON string).
func (c *Client) Call(ctx context.Context, appid, path, method string, query map[string]string, body interface{}, opts ...CallOption) (map[string]interface{}, error) {
	if method == "" {
		method = "GET"
	}
	p := map[string]interface{}{"appid": appid, "path": path, "method": method}
	if query != nil {
		p["query"] = query
	}
	if body != nil {
		p["body"] = body
	}
	var r map[string]interface{}
	return r, c.Request(ctx, "call", p, &r, opts...)
}
