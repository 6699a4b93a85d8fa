# cmake -DROOT=templates -DOUT=file.cpp -P embed_templates.cmake
file(GLOB_RECURSE files RELATIVE ${ROOT} ${ROOT}/attnjit/*.cuh ${ROOT}/attnjit/*.h)
list(SORT files)
set(body "")
set(all "")
foreach(f ${files})
  file(READ ${ROOT}/${f} content)
  string(APPEND all "${f}\n${content}")
  string(APPEND body "    {\"${f}\", R\"ATTNJIT_TEMPLATE(${content})ATTNJIT_TEMPLATE\"},\n")
endforeach()
string(SHA256 hash "${all}")
string(SUBSTRING ${hash} 0 16 hash)
file(WRITE ${OUT}.tmp "// Generated from templates/ by cmake/embed_templates.cmake. Do not edit.
#include \"codegen/embedded_templates.h\"

namespace attnjit::codegen {

const std::vector<EmbeddedTemplate>& embedded_templates() {
  static const std::vector<EmbeddedTemplate> files = {
${body}  };
  return files;
}

const char* template_hash() { return \"${hash}\"; }

} // namespace attnjit::codegen
")
file(RENAME ${OUT}.tmp ${OUT})
