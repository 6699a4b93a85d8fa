# `cmake --install`: the public headers (with the generated version.h), the C++ library
# (libattnjit.a), the C API (libattnjit_c.so), the `attnjit` CLI, the Python module, a CMake
# package (find_package(attnjit) -> attnjit::attnjit, attnjit::attnjit_c) and pkg-config files
# (attnjit, attnjit_c). Every version number comes from project(VERSION).
include(CMakePackageConfigHelpers)

set(ATTNJIT_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/attnjit)

install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/attnjit
                  ${PROJECT_BINARY_DIR}/generated/include/attnjit
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
# attnjit_llvm_support is the static LLVM Support archives libattnjit.a needs at link time.
install(TARGETS attnjit attnjit_llvm_support EXPORT attnjitTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(TARGETS attnjit_c EXPORT attnjitTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(TARGETS attnjit_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(EXPORT attnjitTargets NAMESPACE attnjit:: DESTINATION ${ATTNJIT_CMAKE_DIR})

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/attnjitConfig.cmake.in
  ${PROJECT_BINARY_DIR}/attnjitConfig.cmake INSTALL_DESTINATION ${ATTNJIT_CMAKE_DIR})
# 0.x releases change the API between minor versions; from 1.0 on, same major is compatible.
if(PROJECT_VERSION_MAJOR EQUAL 0)
  set(ATTNJIT_COMPATIBILITY SameMinorVersion)
else()
  set(ATTNJIT_COMPATIBILITY SameMajorVersion)
endif()
write_basic_package_version_file(${PROJECT_BINARY_DIR}/attnjitConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY ${ATTNJIT_COMPATIBILITY})
install(FILES ${PROJECT_BINARY_DIR}/attnjitConfig.cmake
              ${PROJECT_BINARY_DIR}/attnjitConfigVersion.cmake
        DESTINATION ${ATTNJIT_CMAKE_DIR})

# pkg-config: the prefix is found from the .pc file's own place, so an install moved elsewhere
# (or made with `cmake --install --prefix`) still describes itself correctly.
file(RELATIVE_PATH ATTNJIT_PC_TO_PREFIX /prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig /prefix)
# What linking libattnjit.a needs besides itself, in the order the linker wants it.
if(ATTNJIT_PORTABLE)
  set(ATTNJIT_PC_SQLITE -l:libsqlite3.a)
  set(ATTNJIT_PC_ZLIB_TINFO "-l:libz.a -l:libtinfo.a")
else()
  set(ATTNJIT_PC_SQLITE -lsqlite3)
  set(ATTNJIT_PC_ZLIB_TINFO "-lz -ltinfo")
endif()
set(ATTNJIT_PC_PRIVATE_LIBS "-L/usr/local/cuda/lib64 -Wl,-rpath,/usr/local/cuda/lib64 -lnvrtc \
${ATTNJIT_PC_SQLITE} ${LLVM_ROOT_DIR}/lib/libLLVMSupport.a ${LLVM_ROOT_DIR}/lib/libLLVMDemangle.a \
${ATTNJIT_PC_ZLIB_TINFO} -ldl -lpthread")
foreach(pc attnjit attnjit_c)
  configure_file(${PROJECT_SOURCE_DIR}/cmake/${pc}.pc.in ${PROJECT_BINARY_DIR}/${pc}.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/${pc}.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
endforeach()

# The Python module, with the path from its folder to libattnjit_c.so, so an installed copy finds
# the installed library wherever the prefix is (python/attnjit/_library.py reads it).
set(ATTNJIT_PYTHON_DIR ${CMAKE_INSTALL_DATADIR}/attnjit/python)
file(RELATIVE_PATH ATTNJIT_PYTHON_TO_LIB /prefix/${ATTNJIT_PYTHON_DIR}/attnjit
     /prefix/${CMAKE_INSTALL_LIBDIR})
configure_file(${PROJECT_SOURCE_DIR}/cmake/installed_library.py.in
               ${PROJECT_BINARY_DIR}/python/_installed_library.py @ONLY)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/python/attnjit DESTINATION ${ATTNJIT_PYTHON_DIR}
        FILES_MATCHING PATTERN "*.py" PATTERN "__pycache__" EXCLUDE)
install(FILES ${PROJECT_BINARY_DIR}/python/_installed_library.py
        DESTINATION ${ATTNJIT_PYTHON_DIR}/attnjit)
