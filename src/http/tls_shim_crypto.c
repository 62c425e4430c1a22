/* A stand-in for "libcrypto.so" inside the daemon (see tls.c): no code, only
 * the SONAME "libcrypto.so" and a dependency on the real libcrypto.so.3, so
 * that civetweb's dlopen("libcrypto.so") works on machines without the
 * development symlink (a runtime image has only libcrypto.so.3). */
typedef int m3s_tls_shim_crypto_unused;
