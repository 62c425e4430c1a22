/* The ceiling bench/api_bench.sh measures the REST API against: a bare
 * civetweb server with the API's options (64 workers, keep-alive) whose
 * only code answers a constant, dispatched the way the API dispatches
 * (begin_request). Listens on a free 127.0.0.1 port, printed as
 * "bare <port>" on stdout; runs until SIGTERM or SIGINT. Not a test.
 */
#include <civetweb.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
  (void)sig;
  stop = 1;
}

static int constant(struct mg_connection *c)
{
  static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                             "Content-Length: 2\r\n\r\nok";
  mg_write(c, resp, sizeof(resp) - 1);
  return 200;
}

int main(void)
{
  const char *options[] = { "listening_ports", "127.0.0.1:0", "num_threads", "64",
                            "request_timeout_ms", "5000", "keep_alive_timeout_ms", "2000",
                            "enable_keep_alive", "yes", "max_request_size", "16384",
                            "connection_queue", "64", "listen_backlog", "256",
                            "tcp_nodelay", "1", NULL };
  struct mg_callbacks cb;
  memset(&cb, 0, sizeof(cb));
  cb.begin_request = constant;
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  signal(SIGPIPE, SIG_IGN);
  struct mg_context *bare = mg_start(&cb, NULL, options);
  if(!bare) {
    fprintf(stderr, "api_bench_server: the bare server did not start\n");
    return 1;
  }
  struct mg_server_port sp;
  mg_get_server_ports(bare, 1, &sp);
  printf("bare %d\n", sp.port);
  fflush(stdout);
  while(!stop)
    sleep(1); /* no lost wake-up: a signal just before it waits 1 s at most */
  mg_stop(bare);
  return 0;
}
