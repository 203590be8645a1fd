/*
 * The endpoint WeChat's consent page sends the browser to, on
 * consent_listen: GET /consent/APPID?openid=&template_id=&action=&scene=
 * &reserved= is verified and recorded (method_consent_accept), then the
 * browser goes to consent_landing_url with the outcome, or sees a small
 * page. Nothing is recorded for a refused request.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "wxpushd.h"

#define CH_PREFIX		"/consent/"
#define CH_HEADERS_MAX		8192	/* bytes of request line and headers */
#define CH_TIMEOUT		10	/* seconds to read a request */

static struct httpd consent_httpd = { .name = "consent" };

/* Answer the browser: to the landing URL with result, or a small page. */
static void
consent_http_answer(struct evhttp_request *req, int status, const char *reason,
    const char *result, const char *text)
{
	struct evkeyvalq	*h = evhttp_request_get_output_headers(req);
	struct evbuffer		*b = evbuffer_new();
	char			*loc;

	evhttp_add_header(h, "Cache-Control", "no-store");
	if (wx_conf->consent_landing_url != NULL) {
		xasprintf(&loc, "%s%cresult=%s", wx_conf->consent_landing_url,
		    strchr(wx_conf->consent_landing_url, '?') != NULL ? '&' :
		    '?', result);
		evhttp_add_header(h, "Location", loc);
		free(loc);
		status = 303;
		reason = "See Other";
	}
	evhttp_add_header(h, "Content-Type", "text/html; charset=utf-8");
	evbuffer_add_printf(b, "<!DOCTYPE html>\n<html><head><meta "
	    "charset=\"utf-8\"><title>%s</title></head><body><p>%s</p>"
	    "</body></html>\n", result, text);
	evhttp_send_reply(req, status, reason, b);
	evbuffer_free(b);
}

/* A query parameter, or NULL. */
static const char *
consent_http_param(struct evkeyvalq *q, const char *name)
{
	return (evhttp_find_header(q, name));
}

/* GET /consent/APPID?...: verify, record, answer. */
static void
consent_http_request(struct evhttp_request *req, void *arg)
{
	const struct evhttp_uri	*uri;
	struct evkeyvalq	 q;
	const char		*path, *query, *appid, *openid, *tid, *action;
	const char		*scene_s, *reserved, *why = NULL;
	int			 scene, granted, isnew;

	(void)arg;
	httpd_dispatched(&consent_httpd, req);
	TAILQ_INIT(&q);
	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Allow", "GET");
		evhttp_send_reply(req, 405, "Method Not Allowed", NULL);
		return;
	}
	uri = evhttp_request_get_evhttp_uri(req);
	path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	query = uri != NULL ? evhttp_uri_get_query(uri) : NULL;
	if (path == NULL || strncmp(path, CH_PREFIX, strlen(CH_PREFIX)) != 0 ||
	    !valid_appid_str(path + strlen(CH_PREFIX)) ||
	    cred_lookup(path + strlen(CH_PREFIX)) == NULL) {
		consent_http_answer(req, 404, "Not Found", "invalid",
		    "This consent link is not known here.");
		return;
	}
	appid = path + strlen(CH_PREFIX);
	if (query == NULL || evhttp_parse_query_str(query, &q) != 0) {
		why = "no query";
		goto refuse;
	}
	openid = consent_http_param(&q, "openid");
	tid = consent_http_param(&q, "template_id");
	action = consent_http_param(&q, "action");
	scene_s = consent_http_param(&q, "scene");
	reserved = consent_http_param(&q, "reserved");
	if (openid == NULL ||
	    !valid_id(openid, strlen(openid), CONSENT_ID_MAX) ||
	    tid == NULL || !valid_id(tid, strlen(tid), CONSENT_ID_MAX) ||
	    action == NULL || scene_s == NULL || reserved == NULL ||
	    (scene = valid_scene(scene_s, strlen(scene_s))) == -1) {
		why = "a parameter is missing or malformed";
		goto refuse;
	}
	if (method_consent_accept(appid, openid, tid, scene, action, reserved,
	    strlen(reserved), &granted, &isnew, &why) != 0)
		goto refuse;
	evhttp_clear_headers(&q);
	if (granted)
		consent_http_answer(req, 200, "OK", "confirmed", "Thank you: "
		    "you will receive one message.");
	else
		consent_http_answer(req, 200, "OK", "cancelled", "You will not "
		    "receive the message.");
	return;
refuse:
	evhttp_clear_headers(&q);
	ratelog(LOG_LEVEL_WARN, "consent refused", appid, "consent: %s: "
	    "redirect refused: %s", appid, why);
	consent_http_answer(req, 400, "Bad Request", "invalid", "This consent "
	    "link is not valid or has expired.");
}

/* Start the endpoint if consent_listen is set; 0 or -1. */
int
consent_http_start(void)
{
	struct evhttp	*http;

	if (wx_conf->consent_listen == NULL)
		return (0);
	if (consent_httpd.http == NULL) {
		if ((http = evhttp_new(wx_base)) == NULL)
			fatalx("evhttp_new");
		evhttp_set_max_body_size(http, 0);
		evhttp_set_max_headers_size(http, CH_HEADERS_MAX);
		evhttp_set_timeout(http, CH_TIMEOUT);
		evhttp_set_allowed_methods(http, EVHTTP_REQ_GET |
		    EVHTTP_REQ_HEAD | EVHTTP_REQ_POST);
		evhttp_set_gencb(http, consent_http_request, NULL);
		httpd_setup(&consent_httpd, http);
	}
	return (httpd_listen(&consent_httpd, wx_conf->consent_listen));
}

/* After a reload: move the endpoint if consent_listen changed. */
void
consent_http_reload(void)
{
	if (consent_httpd.http == NULL)
		consent_http_start();
	else
		httpd_reload(&consent_httpd, wx_conf->consent_listen);
}

/* At exit. */
void
consent_http_stop(void)
{
	httpd_close(&consent_httpd);
}
