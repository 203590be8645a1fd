<?php

declare(strict_types=1);

namespace Wxpush;

/**
 * A failed request: the daemon's error map, or one the client made up:
 * "connect" (no connection, or it was lost), "protocol" (the daemon broke the
 * protocol) and "timeout" (the client's time limit passed; the request may
 * still be carried out). getCode() is WeChat's errcode, 0 when WeChat did not
 * answer.
 */
class WxpushException extends \RuntimeException
{
    public function __construct(
        private string $errorCode,
        private string $detail,
        private bool $retryable = false,
        private ?string $field = null,
        private ?int $errcode = null,
        private ?string $errmsg = null,
        private ?int $retryAfter = null,
    ) {
        parent::__construct($errorCode . ': ' . $detail, $errcode ?? 0);
    }

    /** The error of a response's error map (unknown keys ignored). */
    public static function fromMap(mixed $m): self
    {
        if (!is_array($m) || !is_string($m['code'] ?? null)) {
            return new self('protocol', 'the daemon sent an error without a code');
        }
        $int = fn ($v) => is_int($v) ? $v : null;
        $str = fn ($v) => is_string($v) ? $v : null;
        return new self($m['code'], $str($m['message'] ?? null) ?? '', ($m['retryable'] ?? false) === true,
            $str($m['field'] ?? null), $int($m['errcode'] ?? null), $str($m['errmsg'] ?? null),
            $int($m['retry_after'] ?? null));
    }

    /** The same error, thrown again from the caller's frame, with retryable changed. */
    public function withRetryable(bool $retryable): self
    {
        return new self($this->errorCode, $this->detail, $retryable, $this->field, $this->errcode,
            $this->errmsg, $this->retryAfter);
    }

    /** The error code: the daemon's (invalid_request, wechat, ...) or the client's. */
    public function errorCode(): string { return $this->errorCode; }

    /** The message without the code. */
    public function detail(): string { return $this->detail; }

    /** Whether the same request may succeed later. */
    public function isRetryable(): bool { return $this->retryable; }

    /** The request field at fault, as a dotted path; null if none. */
    public function field(): ?string { return $this->field; }

    /** WeChat's errcode when WeChat answered; null otherwise. */
    public function errcode(): ?int { return $this->errcode; }

    /** WeChat's errmsg when WeChat answered; null otherwise. */
    public function errmsg(): ?string { return $this->errmsg; }

    /** Seconds to wait before retrying, when the daemon knows; null otherwise. */
    public function retryAfter(): ?int { return $this->retryAfter; }
}
