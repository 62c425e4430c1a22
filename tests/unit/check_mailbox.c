/* Mailbox, single-thread semantics: IDLE protocol, FIFO, try_idle, chained
 * retirement, and that every payload left behind is dropped exactly once. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>

#include "m3s/mailbox.h"
#include "m3s/reply.h"
#include "check_main.h"

static int drops;

static void count_drop(void *p)
{
  drops++;
  free(p);
}

static m3s_msg_t *msg(int64_t v)
{
  return m3s_msg_new(M3S_MSG_USER, v, malloc(8), count_drop);
}

START_TEST(fresh_mailbox_is_idle)
{
  m3s_mailbox_t mb;
  m3s_mailbox_init(&mb);
  ck_assert_int_eq(m3s_mailbox_try_idle(&mb), M3S_MB_WAS_IDLE);
  ck_assert_ptr_null(m3s_mailbox_pop(&mb));
  ck_assert(m3s_mailbox_push(&mb, msg(1)));   /* first push sees IDLE */
  ck_assert(!m3s_mailbox_push(&mb, msg(2)));  /* later ones do not */
  ck_assert(!m3s_mailbox_push(&mb, msg(3)));
  ck_assert_uint_eq(m3s_mailbox_depth(&mb), 3);
  drops = 0;
  m3s_mailbox_destroy(&mb);
  ck_assert_int_eq(drops, 3);
}
END_TEST

START_TEST(fifo_order)
{
  m3s_mailbox_t mb;
  m3s_mailbox_init(&mb);
  for(int i = 0; i < 1000; i++)
    m3s_mailbox_push(&mb, m3s_msg_new(M3S_MSG_USER, i, NULL, NULL));
  for(int i = 0; i < 1000; i++) {
    m3s_msg_t *m = m3s_mailbox_pop(&mb);
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(m->arg, i);
  }
  ck_assert_ptr_null(m3s_mailbox_pop(&mb));
  ck_assert_uint_eq(m3s_mailbox_depth(&mb), 0);
  m3s_mailbox_destroy(&mb);
}
END_TEST

START_TEST(try_idle_protocol)
{
  m3s_mailbox_t mb;
  m3s_mailbox_init(&mb);
  ck_assert(m3s_mailbox_push(&mb, msg(1)));
  /* Pending work: cannot go idle. */
  ck_assert_int_eq(m3s_mailbox_try_idle(&mb), M3S_MB_BUSY);
  ck_assert_ptr_nonnull(m3s_mailbox_pop(&mb));
  ck_assert_int_eq(m3s_mailbox_try_idle(&mb), M3S_MB_IDLED);
  /* Idle again: the next push must report it so the producer wakes us. */
  ck_assert_int_eq(m3s_mailbox_try_idle(&mb), M3S_MB_WAS_IDLE);
  ck_assert(m3s_mailbox_push(&mb, msg(2)));
  ck_assert(!m3s_mailbox_push(&mb, msg(3)));
  ck_assert_int_eq(m3s_mailbox_try_idle(&mb), M3S_MB_BUSY);
  ck_assert_int_eq(m3s_mailbox_pop(&mb)->arg, 2);
  ck_assert_int_eq(m3s_mailbox_try_idle(&mb), M3S_MB_BUSY);
  ck_assert_int_eq(m3s_mailbox_pop(&mb)->arg, 3);
  ck_assert_int_eq(m3s_mailbox_try_idle(&mb), M3S_MB_IDLED);
  m3s_mailbox_destroy(&mb);
}
END_TEST

START_TEST(pop_retires_previous_message)
{
  m3s_mailbox_t mb;
  m3s_mailbox_init(&mb);
  drops = 0;
  m3s_mailbox_push(&mb, msg(1));
  m3s_mailbox_push(&mb, msg(2));
  m3s_msg_t *m = m3s_mailbox_pop(&mb);
  ck_assert_int_eq(m->arg, 1);
  ck_assert_int_eq(drops, 0);      /* the returned message is still alive */
  m = m3s_mailbox_pop(&mb);
  ck_assert_int_eq(drops, 1);      /* the first one was retired, payload dropped */
  /* A handler that takes the payload keeps it; nothing is dropped for it. */
  void *kept = m3s_msg_take(m);
  ck_assert_ptr_nonnull(kept);
  m3s_mailbox_destroy(&mb);
  ck_assert_int_eq(drops, 1);
  free(kept);
}
END_TEST

START_TEST(destroy_completes_pending_reply)
{
  m3s_mailbox_t mb;
  m3s_msg_t *answer = (m3s_msg_t *)1;
  m3s_mailbox_init(&mb);
  m3s_reply_t *slot = m3s_reply_new();
  m3s_msg_t *req = msg(7);
  req->reply = m3s_reply_ref(slot);
  m3s_mailbox_push(&mb, req);
  m3s_mailbox_destroy(&mb);
  /* The request was never handled: the waiter learns at once. */
  ck_assert_int_eq(m3s_reply_wait(slot, 0, &answer), -ECANCELED);
  ck_assert_ptr_null(answer);
  m3s_reply_unref(slot);
}
END_TEST

START_TEST(payload_without_drop_hook_is_freed)
{
  m3s_mailbox_t mb;
  m3s_mailbox_init(&mb);
  /* NULL drop means free(): LeakSanitizer fails this test if it is not. */
  m3s_mailbox_push(&mb, m3s_msg_new(M3S_MSG_USER, 0, malloc(64), NULL));
  m3s_mailbox_push(&mb, m3s_msg_new(M3S_MSG_USER, 0, malloc(64), NULL));
  ck_assert_ptr_nonnull(m3s_mailbox_pop(&mb));
  m3s_mailbox_destroy(&mb);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("mailbox");
  TCase *tc = tcase_create("single-thread");
  tcase_add_test(tc, fresh_mailbox_is_idle);
  tcase_add_test(tc, fifo_order);
  tcase_add_test(tc, try_idle_protocol);
  tcase_add_test(tc, pop_retires_previous_message);
  tcase_add_test(tc, destroy_completes_pending_reply);
  tcase_add_test(tc, payload_without_drop_hook_is_freed);
  suite_add_tcase(s, tc);
  return m3s_check_run(s);
}
