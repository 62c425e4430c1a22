/* A stand-in for "libssl.so" inside the daemon (see tls.c for why).
 *
 * Debian 12's civetweb 1.15 dlopen()s "libssl.so" and looks up
 * SSL_get_peer_certificate, which OpenSSL 3 only has as a macro (the symbol
 * is SSL_get1_peer_certificate, with the same meaning: a new reference the
 * caller frees). This object's SONAME is "libssl.so" and it depends on the
 * real libssl.so.3, so a lookup through its handle finds every OpenSSL
 * function plus the one defined here.
 *
 * Built as a shared object and embedded in the daemon; no OpenSSL header is
 * included on purpose, since it would turn the name below into the macro. */
struct ssl_st;
struct x509_st;

extern struct x509_st *SSL_get1_peer_certificate(const struct ssl_st *s);
struct x509_st *SSL_get_peer_certificate(const struct ssl_st *s);

struct x509_st *SSL_get_peer_certificate(const struct ssl_st *s)
{
  return SSL_get1_peer_certificate(s);
}
