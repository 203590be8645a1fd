/*
 * The subscribe endpoint (templateSubscribe) and the ring of accepted sends
 * that /mock/sends shows: each with its endpoint and its exact body bytes.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "log.h"
#include "xmalloc.h"
#include "mock.h"

struct mock_send {
	char		 appid[MOCK_APPID_MAX + 1];
	const char	*path;		/* the endpoint's, static */
	json_t		*body;
	json_t		*raw;		/* the body's bytes, as a string */
	time_t		 time;
};

static struct mock_send	 mock_sends[MOCK_SENDS];
static size_t		 mock_sends_first;	/* oldest */
static size_t		 mock_sends_n;

/*
 * Keep an accepted send of call, its parsed body and its exact bytes (UTF-8:
 * jansson parsed them); past MOCK_SENDS the oldest goes.
 */
void
mock_send_record(struct mock_call *call, const char *appid, json_t *body)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(call->req);
	struct mock_send *s;
	size_t len = evbuffer_get_length(in);

	if (mock_sends_n == MOCK_SENDS) {
		s = &mock_sends[mock_sends_first];
		json_decref(s->body);
		json_decref(s->raw);
		mock_sends_first = (mock_sends_first + 1) % MOCK_SENDS;
		mock_sends_n--;
	}
	s = &mock_sends[(mock_sends_first + mock_sends_n) % MOCK_SENDS];
	snprintf(s->appid, sizeof s->appid, "%s", appid);
	s->path = mock_endpoints[call->ep].path;
	s->body = json_incref(body);
	s->raw = json_stringn((const char *)evbuffer_pullup(in, -1), len);
	if (s->raw == NULL)
		s->raw = json_null();
	s->time = call->now;
	mock_sends_n++;
}

/* The recorded sends, oldest first, of appid or of everyone (NULL). */
json_t *
mock_send_list(const char *appid)
{
	struct mock_send *s;
	json_t *list;
	size_t i;

	list = json_array();
	for (i = 0; i < mock_sends_n; i++) {
		s = &mock_sends[(mock_sends_first + i) % MOCK_SENDS];
		if (appid != NULL && strcmp(appid, s->appid) != 0)
			continue;
		json_array_append_new(list, json_pack("{s:s,s:s,s:O,s:O,s:I}",
		    "appid", s->appid, "path", s->path, "body", s->body,
		    "raw", s->raw, "time", (json_int_t)s->time));
	}
	return (json_pack("{s:o}", "sends", list));
}

/* Forget every recorded send. */
void
mock_send_clear(void)
{
	size_t i;

	for (i = 0; i < mock_sends_n; i++) {
		json_decref(mock_sends[(mock_sends_first + i) %
		    MOCK_SENDS].body);
		json_decref(mock_sends[(mock_sends_first + i) %
		    MOCK_SENDS].raw);
	}
	mock_sends_first = mock_sends_n = 0;
}

/* A required non-empty string member; NULL after answering 47001. */
static const char *
mock_send_field(struct mock_call *call, json_t *body, const char *key)
{
	const char *s;

	if ((s = mock_json_str(body, key)) == NULL || *s == '\0') {
		mock_reply_error(call, 47001, "data format error: %s missing "
		    "or not a non-empty string", key);
		return (NULL);
	}
	return (s);
}

/* Whether s is a decimal integer in 0..MOCK_SCENE_MAX. */
static int
mock_send_scene_ok(const char *s)
{
	size_t n = strspn(s, "0123456789");

	if (n == 0 || n > 5 || s[n] != '\0')
		return (0);
	return (atoi(s) <= MOCK_SCENE_MAX);
}

/* Check the body of a subscribe call; 0, or -1 after answering the error. */
static int
mock_send_check(struct mock_call *call, json_t *body)
{
	json_t *data, *content, *mp, *v;
	const char *scene, *title, *value;

	if (mock_send_field(call, body, "touser") == NULL ||
	    mock_send_field(call, body, "template_id") == NULL)
		return (-1);
	if ((scene = mock_json_str(body, "scene")) == NULL ||
	    !mock_send_scene_ok(scene)) {
		mock_reply_error(call, 47001, "data format error: scene must "
		    "be a string holding an integer 0..%d", MOCK_SCENE_MAX);
		return (-1);
	}
	if ((title = mock_json_str(body, "title")) == NULL) {
		mock_reply_error(call, 47001, "data format error: title "
		    "missing or not a string");
		return (-1);
	}
	data = json_object_get(body, "data");
	if (!json_is_object(data)) {
		mock_reply_error(call, 47001, "data format error: data "
		    "missing or not an object");
		return (-1);
	}
	content = json_object_get(data, "content");
	if (!json_is_object(content) ||
	    (value = mock_json_str(content, "value")) == NULL) {
		mock_reply_error(call, 47001, "data format error: "
		    "data.content.value missing or not a string");
		return (-1);
	}
	v = json_object_get(content, "color");
	if (v != NULL && !json_is_string(v)) {
		mock_reply_error(call, 47001, "data format error: "
		    "data.content.color is not a string");
		return (-1);
	}
	v = json_object_get(body, "url");
	if (v != NULL && !json_is_string(v)) {
		mock_reply_error(call, 47001, "data format error: url is not "
		    "a string");
		return (-1);
	}
	if ((mp = json_object_get(body, "miniprogram")) != NULL &&
	    (!json_is_object(mp) || mock_json_str(mp, "appid") == NULL ||
	    mock_json_str(mp, "pagepath") == NULL)) {
		mock_reply_error(call, 47001, "data format error: miniprogram "
		    "needs string appid and pagepath");
		return (-1);
	}
	if (mock_utf8_len(title) > MOCK_TITLE_MAX) {
		mock_reply_error(call, 40062, "invalid title size: more than "
		    "%d characters", MOCK_TITLE_MAX);
		return (-1);
	}
	if (mock_utf8_len(value) > MOCK_CONTENT_MAX) {
		mock_reply_error(call, 47001, "data format error: "
		    "data.content.value longer than %d characters",
		    MOCK_CONTENT_MAX);
		return (-1);
	}
	return (0);
}

/*
 * The sender of a message call: the account whose access_token is in the
 * query, or NULL after answering the error (41001, 40001, 42001, 48001).
 */
struct mock_account *
mock_send_sender(struct mock_call *call)
{
	const char *value;
	struct mock_token *t;
	int error;

	value = mock_call_param(call, "access_token");
	if (value == NULL || *value == '\0') {
		mock_reply_error(call, 41001, "access_token missing");
		return (NULL);
	}
	if ((error = mock_token_check(value, call->now, &t)) != 0) {
		if (error == 42001)
			mock_reply_error(call, error, "access_token expired");
		else
			mock_reply_error(call, error, "invalid credential, "
			    "access_token is invalid or not latest");
		return (NULL);
	}
	if (t->owner->kind == MOCK_COMPONENT) {
		mock_reply_error(call, 48001, "api unauthorized: a "
		    "component_access_token cannot send");
		return (NULL);
	}
	return (t->owner);
}

/*
 * POST /cgi-bin/message/template/subscribe?access_token=T: check the token,
 * then the body, and record the send.
 */
void
mock_send_subscribe(struct mock_call *call)
{
	struct mock_account *a;
	json_t *body;

	if ((a = mock_send_sender(call)) == NULL)
		return;
	if ((body = mock_call_body(call)) == NULL)
		return;
	if (mock_send_check(call, body) == 0) {
		mock_send_record(call, a->appid, body);
		mock_stats.sends_ok++;
		mock_reply_ok(call);
	}
	json_decref(body);
}
