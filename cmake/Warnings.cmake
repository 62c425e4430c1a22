add_compile_options(-Wall -Wextra -Wstrict-prototypes -Wshadow -Wformat=2
  -Wmissing-prototypes -Wno-unused-parameter)
if(M3S_WERROR)
  add_compile_options(-Werror)
endif()
