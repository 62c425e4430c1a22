# The status page (src/http/ui/): its files are compiled into m3s_core as
# byte arrays (embed_ui.cmake), so the daemon serves them without any file
# or external asset at run time. ui.c builds the JSON the page shows.
set(_m3s_ui_dir ${CMAKE_CURRENT_LIST_DIR}/ui)
# route|media type (UTF-8 text)|file, one per asset
set(_m3s_ui_assets
  "/|text/html|index.html"
  "/ui/app.js|text/javascript|app.js"
  "/ui/style.css|text/css|style.css")
set(_m3s_ui_files "")
foreach(_a ${_m3s_ui_assets})
  string(REPLACE "|" ";" _parts "${_a}")
  list(GET _parts 2 _f)
  list(APPEND _m3s_ui_files ${_m3s_ui_dir}/${_f})
endforeach()
string(REPLACE ";" "!" _m3s_ui_arg "${_m3s_ui_assets}")
set(_m3s_ui_c ${CMAKE_CURRENT_BINARY_DIR}/m3s_ui_assets.c)
add_custom_command(OUTPUT ${_m3s_ui_c}
  COMMAND ${CMAKE_COMMAND} -DOUT=${_m3s_ui_c} -DDIR=${_m3s_ui_dir} "-DASSETS=${_m3s_ui_arg}"
          -P ${CMAKE_CURRENT_LIST_DIR}/embed_ui.cmake
  DEPENDS ${_m3s_ui_files} ${CMAKE_CURRENT_LIST_DIR}/embed_ui.cmake
  COMMENT "Embedding the status page"
  VERBATIM)
target_sources(m3s_core PRIVATE ${CMAKE_CURRENT_LIST_DIR}/ui.c ${_m3s_ui_c})
set_source_files_properties(${_m3s_ui_c} PROPERTIES INCLUDE_DIRECTORIES ${CMAKE_CURRENT_LIST_DIR})
