# One sanitizer family per build tree. Any report is fatal (no recovery), so a
# test that triggers one fails instead of printing and passing.
if(M3S_SANITIZER STREQUAL "address")
  set(_san -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
elseif(M3S_SANITIZER STREQUAL "thread")
  set(_san -fsanitize=thread -fno-omit-frame-pointer)
elseif(NOT M3S_SANITIZER STREQUAL "")
  message(FATAL_ERROR "M3S_SANITIZER must be empty, address or thread (got ${M3S_SANITIZER})")
endif()
if(_san)
  add_compile_options(${_san} -g)
  add_link_options(${_san})
endif()
