/* The api actor's answers: status line, headers and body written in one
 * piece, and JSON errors (api-int.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "api-int.h"

/* Appends "name: value\r\n" to the header buffer (truncation is caught by
 * the caller through *n). */
static void hdr(char *buf, size_t cap, size_t *n, const char *name, const char *value)
{
  if(*n < cap)
    *n += (size_t)snprintf(buf + *n, cap - *n, "%s: %s\r\n", name, value);
}

/* Is the connection closed after this answer? civetweb's rules (a request
 * that asked for it, HTTP/1.0 without keep-alive, a 401) plus ours: after
 * a malformed request or an oversized body nothing more is read from it.
 * Said explicitly so that clients know. */
static bool closing(struct mg_connection *c, const struct mg_request_info *ri, int status)
{
  const char *conn = mg_get_header(c, "Connection");
  bool v10 = ri->http_version && !strcmp(ri->http_version, "1.0");
  if(status == 401 || status == 413 || status == 505 || status == 400)
    return true;
  if(conn)
    return strcasestr(conn, "keep-alive") == NULL;
  return v10;
}

/* One complete response, written in one piece. ctype NULL: no Content-Type
 * (as the original's empty kubeconfig); service NULL: no Api-Service.
 *
 * The status line and headers are ours rather than civetweb's
 * mg_response_header_*: civetweb 1.15 formats its Date header with gmtime(),
 * whose static buffer its worker threads then share (a data race, caught by
 * ThreadSanitizer); gmtime_r has none. */
int api_respond(struct mg_connection *c, int status, const char *ctype, const char *service,
                const char *body, size_t len, const char *hname, const char *hvalue)
{
  const struct mg_request_info *ri = mg_get_request_info(c);
  bool head = ri->request_method && !strcmp(ri->request_method, "HEAD");
  char date[64], clen[32], small[4096];
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  snprintf(clen, sizeof(clen), "%zu", len);

  size_t n = (size_t)snprintf(small, sizeof(small), "HTTP/1.1 %d %s\r\n", status,
                              mg_get_response_code_text(c, status));
  hdr(small, sizeof(small), &n, "Date", date);
  if(ctype)
    hdr(small, sizeof(small), &n, "Content-Type", ctype);
  if(service)
    hdr(small, sizeof(small), &n, "Api-Service", service);
  hdr(small, sizeof(small), &n, "Cache-Control", "no-store");
  hdr(small, sizeof(small), &n, "X-Content-Type-Options", "nosniff");
  if(hname)
    hdr(small, sizeof(small), &n, hname, hvalue);
  hdr(small, sizeof(small), &n, "Content-Length", clen);
  if(closing(c, ri, status)) {
    hdr(small, sizeof(small), &n, "Connection", "close");
    mg_disable_connection_keep_alive(c);
  }
  else if(ri->http_version && !strcmp(ri->http_version, "1.0"))
    hdr(small, sizeof(small), &n, "Connection", "keep-alive");
  if(n + 2 >= sizeof(small)) { /* cannot happen with our headers */
    mg_disable_connection_keep_alive(c);
    return status;
  }
  memcpy(small + n, "\r\n", 2);
  n += 2;
  api_answering_t *q = mg_get_user_connection_data(c);
  if(q && !q->counted) {
    api_count_status(q->a, q->route, status);
    q->counted = true;
  }
  if(head)
    len = 0;
  if(n + len <= sizeof(small)) {
    memcpy(small + n, body, len);
    mg_write(c, small, n + len);
  }
  else {
    mg_write(c, small, n);
    mg_write(c, body, len);
  }
  return status;
}

int api_respond_str(struct mg_connection *c, int status, const char *ctype, const char *body)
{
  return api_respond(c, status, ctype, "v0", body, strlen(body), NULL, NULL);
}

int api_error_h(struct mg_connection *c, int status, const char *hname, const char *hvalue,
                const char *fmt, ...)
{
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  json_t *j = json_pack("{s:s}", "error", msg);
  char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
  json_decref(j);
  const char *text = body ? body : "{\"error\":\"internal error\"}";
  api_respond(c, status, CT_JSON, "v0", text, strlen(text), hname, hvalue);
  free(body);
  return status;
}

int api_respond_json(struct mg_connection *c, json_t *j)
{
  char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
  json_decref(j);
  if(!body)
    return api_error(c, 500, "cannot encode the answer");
  int st = api_respond_str(c, 200, CT_JSON, body);
  free(body);
  return st;
}
