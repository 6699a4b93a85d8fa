# Included from the top-level CMakeLists.txt: a custom command's output is only visible to
# targets of the same directory.
# Embed every device header under templates/ into the library, so NVRTC gets them as in-memory
# headers and no CUDA toolkit headers are needed at run time. The hash of all of them keys the
# binary cache: a template edit makes every cached cubin stale.
file(GLOB_RECURSE ATTNJIT_TEMPLATE_FILES CONFIGURE_DEPENDS
  ${PROJECT_SOURCE_DIR}/templates/attnjit/*.cuh ${PROJECT_SOURCE_DIR}/templates/attnjit/*.h)
set(out ${PROJECT_BINARY_DIR}/generated/embedded_templates.cpp)
add_custom_command(
  OUTPUT ${out}
  COMMAND ${CMAKE_COMMAND} -DROOT=${PROJECT_SOURCE_DIR}/templates -DOUT=${out}
          -P ${PROJECT_SOURCE_DIR}/cmake/embed_templates.cmake
  DEPENDS ${ATTNJIT_TEMPLATE_FILES} ${PROJECT_SOURCE_DIR}/cmake/embed_templates.cmake
  COMMENT "Embedding kernel templates")
set(ATTNJIT_EMBEDDED_TEMPLATES_CPP ${out})
