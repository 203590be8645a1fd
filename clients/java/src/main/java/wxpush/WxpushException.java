package wxpush;

import java.util.Map;

/**
 * A failed request: the daemon's error map, or one the client made up:
 * {@code connect} (no connection, or it was lost), {@code protocol} (the
 * daemon broke the protocol) and {@code timeout} (the client's time limit
 * passed; the request may still be carried out).
 */
public class WxpushException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    private final String code;
    private final boolean retryable;
    private final String field;
    private final Integer errcode;
    private final String errmsg;
    private final Integer retryAfter;
    /** Raised before the request reached the daemon. */
    transient boolean unsent;

    /** An error with every part given; null for the absent ones. */
    public WxpushException(String code, String message, boolean retryable, String field,
            Integer errcode, String errmsg, Integer retryAfter) {
        super(code + ": " + message);
        this.code = code;
        this.retryable = retryable;
        this.field = field;
        this.errcode = errcode;
        this.errmsg = errmsg;
        this.retryAfter = retryAfter;
    }

    /** A client-made error without WeChat's parts. */
    public WxpushException(String code, String message, boolean retryable) {
        this(code, message, retryable, null, null, null, null);
    }

    /** The error of a response's error map (unknown keys ignored). */
    static WxpushException fromMap(Object o) {
        if (!(o instanceof Map) || !(((Map<?, ?>) o).get("code") instanceof String)) {
            return new WxpushException("protocol", "the daemon sent an error without a code", false);
        }
        Map<?, ?> m = (Map<?, ?>) o;
        Object msg = m.get("message");
        return new WxpushException((String) m.get("code"), msg instanceof String ? (String) msg : "",
                Boolean.TRUE.equals(m.get("retryable")), str(m.get("field")), integer(m.get("errcode")),
                str(m.get("errmsg")), integer(m.get("retry_after")));
    }

    private static String str(Object o) {
        return o instanceof String ? (String) o : null;
    }

    private static Integer integer(Object o) {
        return o instanceof Long ? Integer.valueOf(((Long) o).intValue()) : null;
    }

    /** The error code: the daemon's ({@code invalid_request}, {@code wechat}, ...) or the client's. */
    public String getCode() { return code; }

    /** Whether the same request may succeed later. */
    public boolean isRetryable() { return retryable; }

    /** The request field at fault, as a dotted path; null if none. */
    public String getField() { return field; }

    /** WeChat's errcode when WeChat answered; null otherwise. */
    public Integer getErrcode() { return errcode; }

    /** WeChat's errmsg when WeChat answered; null otherwise. */
    public String getErrmsg() { return errmsg; }

    /** Seconds to wait before retrying, when the daemon knows; null otherwise. */
    public Integer getRetryAfter() { return retryAfter; }
}
