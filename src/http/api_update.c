/* PUT /api/m3s/v0/cluster/update: a JSON object of run-time variables
 * (m3s/liveconfig.h). The offers actor checks the change against its
 * configuration with the same table and validators as at start and answers
 * once framework_config holds it; a refused change changes nothing. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "m3s/liveconfig.h"
#include "m3s/offers.h"
#include "m3s/xalloc.h"
#include "api-int.h"

#define MAX_UPDATE_BODY 65536

/* The request body, NUL-terminated (free()); NULL with the status sent. */
char *api_read_body(struct mg_connection *c, int *status)
{
  const struct mg_request_info *ri = mg_get_request_info(c);
  if(ri->content_length > MAX_UPDATE_BODY) {
    mg_disable_connection_keep_alive(c);
    *status = api_error(c, 413, "request bodies are limited to %d bytes", MAX_UPDATE_BODY);
    return NULL;
  }
  size_t cap = 1024, len = 0;
  char *buf = m3s_xmalloc(cap + 1);
  int n;
  for(;;) {
    if(len == cap) {
      if(cap > MAX_UPDATE_BODY) {
        free(buf);
        mg_disable_connection_keep_alive(c);
        *status = api_error(c, 413, "request bodies are limited to %d bytes", MAX_UPDATE_BODY);
        return NULL;
      }
      cap *= 2;
      buf = m3s_xrealloc(buf, cap + 1);
    }
    n = mg_read(c, buf + len, cap - len);
    if(n <= 0)
      break;
    len += (size_t)n;
  }
  buf[len] = '\0';
  return buf;
}

json_t *api_read_json(struct mg_connection *c, bool optional, int *status)
{
  char *text = api_read_body(c, status);
  if(!text)
    return NULL;
  if(optional && !text[strspn(text, " \t\r\n")]) {
    free(text);
    return json_object();
  }
  json_error_t jerr;
  json_t *body = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
  free(text);
  if(!body)
    *status = api_error(c, 400, "the body is not JSON: %s (line %d, column %d)", jerr.text,
                        jerr.line, jerr.column);
  return body;
}

int api_h_update(api_t *a, struct mg_connection *c, const route_t *r, const req_t *q)
{
  (void)r;
  (void)q;
  int status = 0;
  json_t *body = api_read_json(c, false, &status);
  if(!body)
    return status;
  /* "rollout" and "force" are not variables: they say what to do after. */
  json_t *ro = json_object_get(body, "rollout"), *fo = json_object_get(body, "force");
  if(json_is_object(body) && ((ro && !json_is_boolean(ro)) || (fo && !json_is_boolean(fo)))) {
    json_decref(body);
    return api_error(c, 400, "\"rollout\" and \"force\" take true or false");
  }
  if(fo && !json_is_true(ro)) {
    json_decref(body);
    return api_error(c, 400, "\"force\" applies only with \"rollout\": true");
  }
  bool rollout = json_is_true(ro), force = json_is_true(fo);
  if(json_is_object(body)) {
    json_object_del(body, "rollout");
    json_object_del(body, "force");
  }
  if(rollout && json_object_size(body) == 0) {
    json_decref(body);
    return api_start_rollout(a, c, force, NULL);
  }
  char err[512];
  m3s_live_change_t *ch = m3s_live_change_from_json(body, err, sizeof(err));
  json_decref(body);
  if(!ch)
    return api_error(c, 400, "%s", err);
  ask_t k = { .to = a->offers, .name = "offers", .type = M3S_OFFERS_CONFIG_UPDATE,
              .payload = ch };
  api_ask_all(a, &k, 1);
  if(k.rc == -ETIMEDOUT) {
    api_changed(a);
    api_ask_free(&k, 1);
    return api_error(c, 503, "the change was not confirmed as saved in Redis within %d ms: it "
                     "may be in effect already and saved once Redis answers; check the "
                     "configuration before retrying", a->opts.call_timeout_ms);
  }
  if(k.rc)
    return api_unavailable(c, a, &k);
  api_changed(a);
  if((k.ans->flags & M3S_ROLE_ERROR) && k.ans->arg == -EAGAIN) {
    api_ask_free(&k, 1);
    return api_backlogged(c);
  }
  if(k.ans->flags & M3S_ROLE_ERROR) {
    const char *why = k.ans->payload;
    status = api_error(c, k.ans->arg == -EIO ? 500 : 400, "%s", why ? why : "refused");
    api_ask_free(&k, 1);
    return status;
  }
  json_t *out = api_answer_json(k.ans);
  api_ask_free(&k, 1);
  if(!out)
    return api_error(c, 500, "offers answered without the change");
  if(rollout)
    return api_start_rollout(a, c, force, out);
  return api_respond_json(c, out);
}
