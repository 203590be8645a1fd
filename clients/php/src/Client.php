<?php

declare(strict_types=1);

namespace Wxpush;

/**
 * A client for wxpushd: send WeChat messages through the daemon that holds
 * the access tokens, by MessagePack-RPC over its Unix socket
 * (docs/protocol.md of wxpushd), with the msgpack extension.
 *
 * A client keeps one connection open for all its requests (and opens it again
 * after a daemon restart); pipeline() sends many requests before reading the
 * answers. A client is not safe to share between coroutines or fibers (Swoole,
 * ReactPHP, Amp): give each its own. PHP threads (parallel) share nothing.
 */
final class Client
{
    public const DEFAULT_SOCKET = '/run/wxpushd/wxpushd.sock';
    /** Bytes; a larger answer from the daemon is a protocol error. */
    public const MAX_RESPONSE = 16 << 20;
    /** Methods that change nothing: a lost answer may be asked for again. */
    private const SAFE = ['ping' => true, 'status' => true, 'stats' => true, 'delivery' => true];

    private string $socket;
    /** @var resource|null */
    private $sock = null;
    private ?\MessagePackUnpacker $unpacker = null;
    private int $fed = 0;
    private int $msgid = 0;
    /** @var array<int, array> answers read while waiting for another: msgid => [error, result] */
    private array $answers = [];
    /** @var array<int, true> requests written and not yet answered */
    private array $waiting = [];

    /**
     * @param ?string $socket the daemon's socket; default $WXPUSH_SOCKET, else DEFAULT_SOCKET
     * @param float $timeout seconds to wait for each answer
     * @param int $retries how many times a retryable error is retried
     * @param float $backoff first wait between retries (seconds), doubled up to $maxBackoff, with jitter
     * @param float $maxRetryAfter a longer retry_after is thrown at once, not waited for
     * @param ?callable $onNotification fn(string $method, array $params) for the daemon's notifications
     */
    public function __construct(
        ?string $socket = null,
        private float $timeout = 35.0,
        private int $retries = 0,
        private float $backoff = 0.2,
        private float $maxBackoff = 5.0,
        private float $maxRetryAfter = 10.0,
        private $onNotification = null,
    ) {
        $env = getenv('WXPUSH_SOCKET');
        $this->socket = $socket ?? (is_string($env) && $env !== '' ? $env : self::DEFAULT_SOCKET);
    }

    public function __destruct()
    {
        $this->close();
    }

    /** Close the connection (a later request opens a new one). */
    public function close(): void
    {
        if ($this->sock !== null) {
            fclose($this->sock);
        }
        $this->sock = null;
        $this->unpacker = null;
        $this->answers = [];
        $this->waiting = [];
    }

    /** {version, protocol}. */
    public function ping(?float $timeout = null): array
    {
        return $this->request('ping', null, $timeout);
    }

    /** The credentials' state; all the caller may see, or one appid. */
    public function status(?string $appid = null, ?float $timeout = null): array
    {
        return $this->request('status', $appid === null ? null : ['appid' => $appid], $timeout);
    }

    /** The daemon's counters. */
    public function stats(?float $timeout = null): array
    {
        return $this->request('stats', null, $timeout);
    }

    /** Send one message now (the protocol's send params): {errcode, errmsg, attempts}. */
    public function send(array $message, ?string $idempotencyKey = null, ?float $timeout = null,
        ?int $retries = null): array
    {
        return $this->request('send', $this->keyed($message, $idempotencyKey, $retries), $timeout, $retries);
    }

    /** Queue one message in the daemon's outbox; its id once it is on disk. */
    public function enqueue(array $message, ?int $notAfter = null, bool $watch = false,
        ?string $idempotencyKey = null, ?float $timeout = null, ?int $retries = null): mixed
    {
        $p = $this->keyed($message, $idempotencyKey, $retries);
        if ($notAfter !== null) {
            $p['not_after'] = $notAfter;
        }
        if ($watch) {
            $p['watch'] = true;
        }
        return $this->request('enqueue', $p, $timeout, $retries)['id'] ?? null;
    }

    /** Queue up to 1000 messages at once (all or none); their ids. */
    public function enqueueBatch(array $messages, ?float $timeout = null, ?int $retries = null): array
    {
        $list = array_map(fn ($m) => $this->keyed($m, null, $retries), array_values($messages));
        $ids = $this->request('enqueue', ['messages' => $list], $timeout, $retries)['ids'] ?? null;
        if (!is_array($ids)) {
            throw new WxpushException('protocol', 'enqueue answered without ids');
        }
        return $ids;
    }

    /** A queued message's {id, state, attempts, created_at, updated_at, ...}. */
    public function delivery(mixed $id, ?float $timeout = null): array
    {
        return $this->request('delivery', ['id' => $id], $timeout);
    }

    /** An allowed WeChat API with the appid's token: WeChat's answer. */
    public function call(string $appid, string $path, string $method = 'GET', ?array $query = null,
        array|string|null $body = null, ?float $timeout = null, ?int $retries = null): array
    {
        $p = ['appid' => $appid, 'path' => $path, 'method' => $method];
        if ($query) {
            $p['query'] = $query;
        }
        if ($body !== null) {
            $p['body'] = $body;
        }
        return $this->request('call', $p, $timeout, $retries);
    }

    /**
     * Any method with its params (null for none): its result; retries as asked.
     */
    public function request(string $method, ?array $params = null, ?float $timeout = null,
        ?int $retries = null): array
    {
        $retries ??= $this->retries;
        $delay = $this->backoff;
        for ($attempt = 0;; $attempt++) {
            try {
                $r = $this->pipeline([[$method, $params]], $timeout)[0];
                if ($r instanceof WxpushException) {
                    throw $r;
                }
                return $r;
            } catch (WxpushException $e) {
                $ra = $e->retryAfter();
                if (!$e->isRetryable() || $attempt >= $retries || ($ra !== null && $ra > $this->maxRetryAfter)) {
                    throw $e;
                }
                $wait = $ra ?: $delay / 2 + mt_rand() / mt_getrandmax() * $delay / 2;
                $delay = min($delay * 2, $this->maxBackoff);
                usleep((int) ($wait * 1e6));
            }
        }
    }

    /**
     * Several requests at once on the connection: all are written, then the
     * answers read as they come. Returns, in the order of $requests
     * ([method, params] pairs), each result array or its WxpushException
     * (not thrown). A lost connection or the timeout (for all of them) throws.
     */
    public function pipeline(array $requests, ?float $timeout = null): array
    {
        $deadline = microtime(true) + ($timeout ?? $this->timeout);
        $this->connect();
        $ids = [];
        $frames = '';
        foreach (array_values($requests) as $i => [$method, $params]) {
            do {
                $this->msgid = ($this->msgid + 1) & 0xFFFFFFFF;
            } while (isset($this->waiting[$this->msgid]));
            $ids[$i] = $this->msgid;
            $this->waiting[$this->msgid] = true;
            $frames .= msgpack_pack([0, $this->msgid, $method, $params === null ? [] : [$params]]);
        }
        $written = false;
        try {
            $this->write($frames, $deadline);
            $written = true;
            $out = [];
            foreach ($ids as $i => $id) {
                [$err, $res] = $this->wait($id, $deadline);
                $out[$i] = $err !== null ? WxpushException::fromMap($err) : $res;
            }
            return $out;
        } catch (WxpushException $e) {
            if ($e->errorCode() === 'connect' && $written) {
                // Written, then the connection died: only repeatable when harmless.
                $again = true;
                foreach ($requests as [$method, $params]) {
                    $again = $again && (isset(self::SAFE[$method]) || isset($params['idempotency_key']));
                }
                throw $e->withRetryable($e->isRetryable() && $again);
            }
            throw $e;
        } finally {
            foreach ($ids as $id) {
                unset($this->waiting[$id]);
            }
        }
    }

    /**
     * Read what the daemon sends within $wait seconds without making a
     * request: the notifications of watched deliveries go to onNotification.
     */
    public function poll(float $wait = 0.0): void
    {
        $deadline = microtime(true) + $wait;
        if ($this->sock === null) {
            return;
        }
        do {
            $this->readSome(max(0.0, $deadline - microtime(true)));
        } while ($this->sock !== null && microtime(true) < $deadline);
    }

    private function keyed(array $message, ?string $key, ?int $retries): array
    {
        if ($key !== null) {
            $message['idempotency_key'] = $key;
        } elseif (!isset($message['idempotency_key']) && ($retries ?? $this->retries) > 0) {
            $message['idempotency_key'] = 'wxpush-php-' . bin2hex(random_bytes(16));
        }
        return $message;
    }

    /** Open the connection, or open it again if the daemon closed it. */
    private function connect(): void
    {
        if ($this->sock !== null) {
            $this->drain();
        }
        if ($this->sock !== null) {
            return;
        }
        $errno = 0;
        $errstr = '';
        $s = @stream_socket_client('unix://' . $this->socket, $errno, $errstr, $this->timeout);
        if ($s === false) {
            throw new WxpushException('connect', "cannot connect to {$this->socket}: $errstr", true);
        }
        stream_set_read_buffer($s, 0);
        stream_set_write_buffer($s, 0);
        stream_set_blocking($s, false);
        $this->sock = $s;
        $this->unpacker = new \MessagePackUnpacker();
        $this->fed = 0;
    }

    /** Read what an idle connection has (late answers, notifications, EOF). */
    private function drain(): void
    {
        try {
            $this->readSome(0.0);
        } catch (WxpushException $e) {
            $this->close();
        }
    }

    /**
     * Write all of $data, reading answers meanwhile: with a long pipeline the
     * daemon stops reading until its answers are taken.
     */
    private function write(string $data, float $deadline): void
    {
        while ($data !== '') {
            $n = @fwrite($this->sock, $data);
            if ($n === false) {
                $this->close();
                throw new WxpushException('connect', 'connection lost while writing', true);
            }
            $data = substr($data, $n);
            if ($data === '' || $n > 0) {
                continue;
            }
            $left = $deadline - microtime(true);
            if ($left <= 0) {
                $this->close();     // a part of a frame is out: the connection is unusable
                throw new WxpushException('timeout', 'the daemon took no requests in time');
            }
            $r = [$this->sock];
            $w = [$this->sock];
            $e = null;
            if (@stream_select($r, $w, $e, (int) $left, (int) (($left - (int) $left) * 1e6)) === false) {
                $this->close();
                throw new WxpushException('connect', 'connection lost while writing', true);
            }
            if ($r) {
                $this->readSome(0.0);
            }
        }
    }

    /** Wait for one answer: [error, result]. */
    private function wait(int $id, float $deadline): array
    {
        while (!isset($this->answers[$id])) {
            $left = $deadline - microtime(true);
            if ($left <= 0) {
                if ($this->fed > 0) {
                    // php-msgpack's stream unpacker reports bytes that are not
                    // MessagePack as "not complete yet": a stalled message ends
                    // the connection instead of blocking every later answer.
                    $this->close();
                    throw new WxpushException('protocol', 'the daemon sent an incomplete or invalid message');
                }
                throw new WxpushException('timeout', 'no answer in time; the request may still be carried out');
            }
            $this->readSome($left);
        }
        $a = $this->answers[$id];
        unset($this->answers[$id]);
        return $a;
    }

    /** Read and dispatch what arrives within $wait seconds; whether anything came. */
    private function readSome(float $wait): bool
    {
        $r = [$this->sock];
        $w = $e = null;
        $n = @stream_select($r, $w, $e, (int) $wait, (int) (($wait - (int) $wait) * 1e6));
        if ($n === false) {
            $this->close();
            throw new WxpushException('connect', 'connection lost', true);
        }
        if ($n === 0) {
            return false;
        }
        $data = @fread($this->sock, 65536);
        if ($data === false || ($data === '' && feof($this->sock))) {
            $this->close();
            throw new WxpushException('connect', 'the daemon closed the connection', true);
        }
        if ($data === '') {
            return false;
        }
        $this->fed += strlen($data);
        $this->unpacker->feed($data);
        while ($this->unpacker->execute()) {
            $msg = $this->unpacker->data();
            $this->unpacker->reset();
            $this->fed = 0;
            $this->dispatch($msg);
        }
        if ($this->fed > self::MAX_RESPONSE) {
            $this->close();
            throw new WxpushException('protocol', 'an answer over ' . self::MAX_RESPONSE . ' bytes');
        }
        return true;
    }

    /** One message from the daemon; a protocol error closes the connection. */
    private function dispatch(mixed $msg): void
    {
        if (is_array($msg) && count($msg) === 3 && ($msg[0] ?? null) === 2 && is_string($msg[1] ?? null)) {
            if ($this->onNotification !== null) {
                ($this->onNotification)($msg[1], $msg[2]);
            }
            return;
        }
        if (!is_array($msg) || count($msg) !== 4 || ($msg[0] ?? null) !== 1 || !is_int($msg[1] ?? null)
            || (($msg[2] ?? null) === null) === (($msg[3] ?? null) === null)
            || (isset($msg[3]) && !is_array($msg[3]))) {
            $this->close();
            throw new WxpushException('protocol', 'the daemon sent something that is not a response');
        }
        if (isset($this->waiting[$msg[1]])) {      // else an answer we gave up waiting for
            $this->answers[$msg[1]] = [$msg[2], $msg[3]];
        }
    }
}
