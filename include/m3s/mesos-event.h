/* Events of the Mesos v1 scheduler stream (mesos-http-api.md §3): parsing
 * one RecordIO record into a checked view.
 *
 * m3s_event_parse() keeps the whole JSON document (root, owned by the event)
 * and fills, for the event's type, borrowed pointers into it. Every pointer
 * set for a type has been checked to exist with the right JSON type, so the
 * handler of that type needs no further checks for those fields; other
 * fields it reads from root (or status/offers) must be checked as usual.
 * Field names and shapes follow the master's protobuf JSON: ids are
 * {"value": ...}, doubles may be written 15.0 (read with json_number_value),
 * bytes are standard base64 strings.
 *
 * Pure functions of their arguments: any thread may call them.
 */
#ifndef M3S_MESOS_EVENT_H
#define M3S_MESOS_EVENT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

typedef enum m3s_event_type {
  M3S_EV_SUBSCRIBED,
  M3S_EV_OFFERS,
  M3S_EV_INVERSE_OFFERS,
  M3S_EV_RESCIND,
  M3S_EV_RESCIND_INVERSE_OFFER,
  M3S_EV_UPDATE,
  M3S_EV_UPDATE_OPERATION_STATUS,
  M3S_EV_MESSAGE,
  M3S_EV_FAILURE,
  M3S_EV_ERROR,
  M3S_EV_HEARTBEAT,
  M3S_EV_UNKNOWN,        /* a type this version does not know: ignore it */
} m3s_event_type_t;

typedef struct m3s_event {
  m3s_event_type_t type;
  json_t *root;                 /* owned: the whole event */

  /* Borrowed pointers into root, checked, set only for their type (NULL /
   * 0 / -1 otherwise). */

  /* SUBSCRIBED */
  const char *framework_id;     /* non-empty */
  double heartbeat_interval_s;  /* 0 when absent (the master's default is
                                   15); never negative */

  /* OFFERS: array (possibly empty) of offer objects, each with a non-empty
   * id.value and agent_id.value, a string hostname and a resources array
   * whose items are objects with a string name. */
  json_t *offers;

  /* RESCIND */
  const char *offer_id;         /* non-empty */

  /* UPDATE (update.status) */
  const char *task_id;          /* non-empty */
  const char *agent_id;         /* NULL when absent or empty */
  const char *state;            /* non-empty, e.g. "TASK_RUNNING" */
  const char *uuid;             /* base64 as sent, NULL when absent or empty:
                                   acknowledge exactly when non-NULL */
  const char *reason;           /* NULL when absent */
  const char *source;           /* NULL when absent */
  const char *status_message;   /* status.message, NULL when absent */
  int healthy;                  /* -1 absent, 0 false, 1 true */
  json_t *status;               /* the TaskStatus object */

  /* ERROR */
  const char *message;

  /* FAILURE */
  const char *failure_agent_id; /* NULL when absent or empty */
  int failure_status;           /* raw waitpid status, -1 when absent */
} m3s_event_t;

/* Parses one record (len bytes, not NUL-terminated). Returns 0 with *ev
 * filled (free it with m3s_event_free), or -EPROTO with one line in err
 * (when err is non-NULL and errlen > 0) saying what is wrong: bad JSON, not
 * an object, no string "type", or a field of that type's body missing or of
 * the wrong JSON type. A type name this version does not know is not an
 * error: the event comes back as M3S_EV_UNKNOWN with only root set. On error
 * *ev holds nothing to free (freeing it anyway is harmless). On success err
 * is set to "". */
int m3s_event_parse(const char *rec, size_t len, m3s_event_t *ev,
                     char *err, size_t errlen);
/* Drops root and clears *ev; a cleared or failed event is fine. */
void m3s_event_free(m3s_event_t *ev);

/* "SUBSCRIBED", ..., "UNKNOWN" (static strings). */
const char *m3s_event_type_name(m3s_event_type_t t);

/* True for the terminal task states of protobuf::isTerminalState: FINISHED,
 * FAILED, KILLED, ERROR, LOST, DROPPED, GONE, GONE_BY_OPERATOR (with the
 * "TASK_" prefix). False for the others (UNREACHABLE and UNKNOWN are not
 * terminal: the task may come back), for unknown names and for NULL. */
bool m3s_task_state_terminal(const char *state);
/* True for the states of a task that runs or is about to: TASK_STAGING,
 * TASK_STARTING, TASK_RUNNING. Only such a task is worth a KILL: killing
 * one the master reports lost, unknown or unreachable just makes it report
 * that again. */
bool m3s_task_state_live(const char *state);

#endif
