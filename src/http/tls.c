/* HTTPS with Debian 12's civetweb (1.15) and OpenSSL 3.
 *
 * DESIGN. This civetweb does not link OpenSSL: it dlopen()s "libssl.so" and
 * "libcrypto.so" at run time and fills a table of function pointers with
 * dlsym() on those handles. It was built for the OpenSSL 1.1 API, so it looks
 * up SSL_get_peer_certificate, which OpenSSL 3 no longer exports (it became a
 * macro for SSL_get1_peer_certificate). The lookup fails quietly, the pointer
 * stays NULL and civetweb calls it after every TLS handshake: the first HTTPS
 * request crashes the process. Its dlopen of the bare names also needs the
 * -dev package's symlinks, which a runtime image does not have.
 *
 * The dynamic linker answers dlopen("libssl.so") with an object already
 * loaded under that SONAME before it searches the file system. So before
 * civetweb loads anything, we load two tiny shared objects embedded in the
 * daemon (tls_shim_ssl.c, tls_shim_crypto.c; built by http.cmake) whose
 * SONAMEs are "libssl.so" and "libcrypto.so" and which depend on the real
 * libssl.so.3 / libcrypto.so.3. A dlsym() through such a handle searches the
 * object and then its dependencies, so civetweb finds every OpenSSL function
 * it needs, SSL_get_peer_certificate included (the ssl shim defines it as a
 * forward to SSL_get1_peer_certificate, same contract). They are loaded from
 * memory (memfd), never from a file others could replace, and stay loaded
 * for the life of the process. Before any TLS listener starts we check,
 * through the same dlopen/dlsym civetweb uses, that the lookup now succeeds;
 * when it does not (something loaded the real "libssl.so" first), HTTPS is
 * refused with a clear error instead of a crash on the first client.
 *
 * civetweb's library init is process-wide and reference counted; when the
 * count drops to zero it unloads OpenSSL's configuration modules, which
 * libcurl in the Mesos actor still relies on. We therefore initialise it
 * once per process and never de-initialise it.
 *
 * The TLS context itself is ours (civetweb's external_ssl_ctx callback): the
 * certificate and key come from memory (no key file on disk), TLS 1.2 is the
 * minimum and renegotiation is off.
 */
#include <civetweb.h>
#include <dlfcn.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "m3s/log.h"
#include "http-int.h"

extern const unsigned char m3s__tls_shim_ssl[];
extern const size_t m3s__tls_shim_ssl_len;
extern const unsigned char m3s__tls_shim_crypto[];
extern const size_t m3s__tls_shim_crypto_len;

/* What civetweb resolves through "libssl.so" that OpenSSL 3 renamed or that
 * matters most; checked before serving HTTPS. */
static const char *const needed[] = {
  "SSL_get_peer_certificate", "SSL_new", "SSL_accept", "SSL_read", "SSL_write",
  "SSL_shutdown", "SSL_free", "SSL_CTX_free",
};

static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
static bool lib_inited;      /* under init_lock */
static bool tls_tried;       /* under init_lock */
static int tls_rc;           /* under init_lock */
static char tls_err[256];    /* under init_lock */

/* Loads an embedded shared object from an anonymous in-memory file. The
 * dynamic linker knows it by the path /proc/self/fd/<fd>, so *fd stays open
 * until the caller has loaded every shim: a second one loaded from a reused
 * descriptor number would be mistaken for the first. */
static int load_shim(const char *name, const unsigned char *elf, size_t len, int *fd,
                     char *err, size_t errlen)
{
  *fd = memfd_create(name, MFD_CLOEXEC);
  if(*fd == -1) {
    snprintf(err, errlen, "memfd_create: %s", strerror(errno));
    return -ENOTSUP;
  }
  size_t off = 0;
  while(off < len) {
    ssize_t w = write(*fd, elf + off, len - off);
    if(w == -1 && errno == EINTR)
      continue;
    if(w <= 0) {
      snprintf(err, errlen, "writing the %s shim: %s", name, strerror(errno));
      return -ENOTSUP;
    }
    off += (size_t)w;
  }
  char path[64];
  snprintf(path, sizeof(path), "/proc/self/fd/%d", *fd);
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if(!h) {
    const char *e = dlerror();
    snprintf(err, errlen, "loading the %s shim: %s", name, e ? e : "unknown error");
    return -ENOTSUP;
  }
  /* h is kept for the life of the process on purpose (see DESIGN). */
  return 0;
}

/* Is what civetweb will get from dlopen("libssl.so") complete? */
static int check_lookup(char *err, size_t errlen)
{
  void *h = dlopen("libssl.so", RTLD_LAZY | RTLD_NOLOAD);
  if(!h) {
    snprintf(err, errlen, "libssl.so is not resolvable in this process");
    return -ENOTSUP;
  }
  int rc = 0;
  for(size_t i = 0; i < sizeof(needed) / sizeof(needed[0]); i++) {
    if(!dlsym(h, needed[i])) {
      snprintf(err, errlen,
               "civetweb would not find %s in libssl.so (its first HTTPS "
               "handshake would crash the process)", needed[i]);
      rc = -ENOTSUP;
      break;
    }
  }
  dlclose(h); /* NOLOAD took a reference */
  return rc;
}

static int prepare_tls(char *err, size_t errlen)
{
  int fds[2] = { -1, -1 };
  int rc = load_shim("libcrypto.so", m3s__tls_shim_crypto, m3s__tls_shim_crypto_len, &fds[0],
                     err, errlen);
  if(rc == 0)
    rc = load_shim("libssl.so", m3s__tls_shim_ssl, m3s__tls_shim_ssl_len, &fds[1], err, errlen);
  for(int i = 0; i < 2; i++)
    if(fds[i] != -1)
      close(fds[i]); /* the mappings stay */
  if(rc == 0)
    rc = check_lookup(err, errlen);
  if(rc == 0 && !(mg_init_library(MG_FEATURES_TLS) & MG_FEATURES_TLS)) {
    snprintf(err, errlen, "civetweb could not initialise OpenSSL");
    rc = -ENOTSUP;
  }
  return rc;
}

int m3s__http_lib_init(bool tls, char *err, size_t errlen)
{
  int rc = 0;
  pthread_mutex_lock(&init_lock);
  if(!lib_inited) {
    /* Never paired with mg_exit_library: see DESIGN. */
    mg_init_library(0);
    lib_inited = true;
  }
  if(tls) {
    if(!tls_tried) {
      tls_tried = true;
      tls_rc = prepare_tls(tls_err, sizeof(tls_err));
    }
    rc = tls_rc;
    if(rc)
      snprintf(err, errlen, "HTTPS unavailable: %s", tls_err);
  }
  pthread_mutex_unlock(&init_lock);
  return rc;
}

static int no_password(char *buf, int size, int rwflag, void *u)
{
  (void)buf; (void)size; (void)rwflag; (void)u;
  return -1; /* never prompt; an encrypted key is refused */
}

/* OpenSSL's reason for the last failure, then a clean error queue. */
static const char *ssl_reason(char *buf, size_t len)
{
  unsigned long e = ERR_peek_last_error();
  if(e)
    ERR_error_string_n(e, buf, len);
  else
    snprintf(buf, len, "unknown error");
  ERR_clear_error();
  return buf;
}

static void warn_validity(X509 *crt)
{
  if(X509_cmp_current_time(X509_get0_notAfter(crt)) < 0)
    m3s_warn("TLS: the certificate in SSL_CRT_BASE64 has expired: clients will refuse it");
  else if(X509_cmp_current_time(X509_get0_notBefore(crt)) > 0)
    m3s_warn("TLS: the certificate in SSL_CRT_BASE64 is not valid yet: clients will refuse it");
}

int m3s__http_tls_ctx_new(const m3s_config_t *cfg, void **out, char *err, size_t errlen)
{
  SSL_CTX *ctx = NULL;
  BIO *bio = NULL;
  X509 *leaf = NULL, *extra = NULL;
  EVP_PKEY *key = NULL;
  char why[256];
  int rc = -EINVAL;

  *out = NULL;
  ERR_clear_error();
  ctx = SSL_CTX_new(TLS_server_method());
  if(!ctx) {
    snprintf(err, errlen, "TLS: cannot create a context: %s", ssl_reason(why, sizeof(why)));
    rc = -ENOMEM;
    goto out;
  }
  if(SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
    snprintf(err, errlen, "TLS: cannot require TLS 1.2: %s", ssl_reason(why, sizeof(why)));
    goto out;
  }
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                             SSL_OP_NO_COMPRESSION);

  bio = BIO_new_mem_buf(cfg->ssl_crt_pem, (int)cfg->ssl_crt_pem_len);
  leaf = bio ? PEM_read_bio_X509(bio, NULL, no_password, NULL) : NULL;
  if(!leaf) {
    snprintf(err, errlen, "SSL_CRT_BASE64: not a PEM certificate: %s",
             ssl_reason(why, sizeof(why)));
    goto out;
  }
  if(SSL_CTX_use_certificate(ctx, leaf) != 1) {
    snprintf(err, errlen, "SSL_CRT_BASE64: the certificate cannot be served: %s",
             ssl_reason(why, sizeof(why)));
    goto out;
  }
  /* Any further certificates are the chain, in order. */
  while((extra = PEM_read_bio_X509(bio, NULL, no_password, NULL))) {
    if(SSL_CTX_add0_chain_cert(ctx, extra) != 1) {
      X509_free(extra);
      snprintf(err, errlen, "SSL_CRT_BASE64: a chain certificate cannot be served: %s",
               ssl_reason(why, sizeof(why)));
      goto out;
    }
  }
  ERR_clear_error(); /* the end of the PEM data reads as an error */
  BIO_free(bio);

  bio = BIO_new_mem_buf(cfg->ssl_key_pem, (int)cfg->ssl_key_pem_len);
  key = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL) : NULL;
  if(!key) {
    snprintf(err, errlen, "SSL_KEY_BASE64: not an unencrypted PEM private key: %s",
             ssl_reason(why, sizeof(why)));
    goto out;
  }
  if(SSL_CTX_use_PrivateKey(ctx, key) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
    snprintf(err, errlen, "SSL_KEY_BASE64: the key cannot be used with the certificate: %s",
             ssl_reason(why, sizeof(why)));
    goto out;
  }
  warn_validity(leaf);
  *out = ctx;
  ctx = NULL;
  rc = 0;
out:
  EVP_PKEY_free(key);
  X509_free(leaf);
  BIO_free(bio);
  SSL_CTX_free(ctx);
  ERR_clear_error();
  return rc;
}
