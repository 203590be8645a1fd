/*
 * Third-party platforms (component): verify tickets, component_access_token,
 * authorizers and their refresh tokens. Filled in by the component work (issue 4).
 */
#include "config.h"

#include <string.h>

#include "wxpushd.h"

void
component_reconcile(struct config *conf)
{
	(void)conf;
}

void
component_fetch(struct cred *c, int force)
{
	(void)force;
	cred_fetch_failed(c, 0, "third-party platforms are not supported yet", 1);
}

void
component_token_ready(struct cred *c)
{
	(void)c;
}

void
component_revoked(struct cred *c)
{
	c->revoked = 1;
}

const char *
component_detail(const struct cred *c)
{
	(void)c;
	return ("");
}

void
component_event_method(struct request *req, const msgpack_object *params)
{
	(void)params;
	rpc_reply_errorx(req, "unknown_appid", 0, "component_appid",
	    "no third-party platform is configured");
}

void
component_authorize_method(struct request *req, const msgpack_object *params)
{
	(void)params;
	rpc_reply_errorx(req, "unknown_appid", 0, "component_appid",
	    "no third-party platform is configured");
}
