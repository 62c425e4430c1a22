/* Redis Sentinel look-up, shared by the store actor and m3s-controller:
 * which server is the master named `name` right now. Plain functions, no
 * state; each call opens and closes its own connections (hiredis), so any
 * thread may call them. Nothing here logs: errors come back as text.
 */
#ifndef M3S_SENTINEL_H
#define M3S_SENTINEL_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>

/* Splits "host:port" or "[v6]:port" (host without brackets). */
bool m3s_split_hostport(const char *hp, char *host, size_t hlen, int *port);

/* "host:port", or "[host]:port" for an IPv6 address. */
void m3s_format_hostport(char *buf, size_t len, const char *host, int port);

/* Asks the sentinels of the comma-separated host:port list, in order, for
 * the address of master `name` (SENTINEL get-master-addr-by-name), with
 * AUTH password first when password is not empty. Returns true with
 * host/port set from the first that names one; false with what the last
 * one said in err. */
bool m3s_sentinel_master(const char *sentinels, const char *name, const char *password,
                         int timeout_ms, char *host, size_t hlen, int *port, char *err,
                         size_t errlen);

/* True when the server on c says (ROLE) it is a master; role gets what it
 * said ("master", "slave", "sentinel", or why there is no answer). */
bool m3s_redis_is_master(redisContext *c, char *role, size_t len);

#endif
