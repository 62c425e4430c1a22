# Every dependency comes from a Debian 12 package. When one is missing we stop
# with the name of the package that provides it, so the fix is one apt-get.
find_package(PkgConfig)
if(NOT PKG_CONFIG_FOUND)
  message(FATAL_ERROR "pkg-config not found: apt-get install -y pkg-config")
endif()
find_package(Threads REQUIRED)

function(m3s_require_pkg target module debian_pkg)
  pkg_check_modules(${target} QUIET IMPORTED_TARGET ${module})
  if(NOT ${target}_FOUND)
    message(FATAL_ERROR "Missing dependency ${module}: apt-get install -y ${debian_pkg}")
  endif()
  message(STATUS "Found ${module} ${${target}_VERSION}")
endfunction()

m3s_require_pkg(CURL libcurl libcurl4-openssl-dev)
m3s_require_pkg(HIREDIS hiredis libhiredis-dev)
m3s_require_pkg(JANSSON jansson libjansson-dev)
m3s_require_pkg(YAML yaml-0.1 libyaml-dev)
m3s_require_pkg(CHECK check check)

# Debian 12's civetweb CMake package references /usr/bin/civetweb, which only
# the separate `civetweb` server package installs, so find_package fails on a
# machine with just libcivetweb-dev. We find the header and library directly.
find_path(CIVETWEB_INCLUDE_DIR civetweb.h)
find_library(CIVETWEB_LIBRARY civetweb)
if(NOT CIVETWEB_INCLUDE_DIR OR NOT CIVETWEB_LIBRARY)
  message(FATAL_ERROR "Missing dependency civetweb: apt-get install -y libcivetweb-dev")
endif()
add_library(civetweb::civetweb UNKNOWN IMPORTED)
set_target_properties(civetweb::civetweb PROPERTIES
  IMPORTED_LOCATION "${CIVETWEB_LIBRARY}"
  INTERFACE_INCLUDE_DIRECTORIES "${CIVETWEB_INCLUDE_DIR}"
  INTERFACE_LINK_LIBRARIES "${CMAKE_DL_LIBS}")
message(STATUS "Found civetweb ${CIVETWEB_LIBRARY}")

find_package(OpenSSL QUIET)
if(NOT OPENSSL_FOUND)
  message(FATAL_ERROR "Missing dependency OpenSSL: apt-get install -y libssl-dev")
endif()
message(STATUS "Found OpenSSL ${OPENSSL_VERSION}")
