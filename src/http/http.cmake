# The REST API's TLS shims (see src/http/tls.c): two tiny shared objects
# with the SONAMEs civetweb dlopen()s ("libssl.so", "libcrypto.so"), built
# here and embedded in m3s_core as byte arrays, so the daemon stays one file.
# They are built without the project's sanitizer and warning flags: they
# are loaded into sanitized processes but contain no code worth checking
# (one forwarding function), and an ASan runtime dependency in them would
# only complicate loading.
set(_m3s_shims "")
foreach(_lib ssl crypto)
  add_library(m3s_tls_shim_${_lib} SHARED ${CMAKE_CURRENT_LIST_DIR}/tls_shim_${_lib}.c)
  set_target_properties(m3s_tls_shim_${_lib} PROPERTIES
    NO_SONAME ON COMPILE_OPTIONS "-Wall;-Wextra" LINK_OPTIONS "")
  target_link_options(m3s_tls_shim_${_lib} PRIVATE
    "-Wl,-soname,lib${_lib}.so" "-Wl,--no-as-needed")
  string(APPEND _m3s_shims "|${_lib}=$<TARGET_FILE:m3s_tls_shim_${_lib}>")
endforeach()
target_link_libraries(m3s_tls_shim_ssl PRIVATE OpenSSL::SSL)
target_link_libraries(m3s_tls_shim_crypto PRIVATE OpenSSL::Crypto)

set(_m3s_shims_c ${CMAKE_CURRENT_BINARY_DIR}/m3s_tls_shims.c)
add_custom_command(OUTPUT ${_m3s_shims_c}
  COMMAND ${CMAKE_COMMAND} -DOUT=${_m3s_shims_c} "-DSHIMS=${_m3s_shims}"
          -P ${CMAKE_CURRENT_LIST_DIR}/embed_shims.cmake
  DEPENDS m3s_tls_shim_ssl m3s_tls_shim_crypto ${CMAKE_CURRENT_LIST_DIR}/embed_shims.cmake
  COMMENT "Embedding the TLS shims"
  VERBATIM)
target_sources(m3s_core PRIVATE ${_m3s_shims_c})
target_link_libraries(m3s_core PUBLIC ${CMAKE_DL_LIBS})

# server/version's buildDate (yyyymmdd, UTC; SOURCE_DATE_EPOCH is honoured
# by string(TIMESTAMP), so reproducible builds get a fixed date).
string(TIMESTAMP _m3s_build_date "%Y%m%d" UTC)
set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/api_status.c PROPERTIES
  COMPILE_DEFINITIONS "M3S_BUILD_DATE=\"${_m3s_build_date}\"")
