# Link an app with a native tvm_mobilenet bundle: find_package(tvm_mobilenet PATHS BUNDLE), then
# target_link_libraries(app PRIVATE tvm_mobilenet::tvm_mobilenet).
get_filename_component(_tvm_mobilenet_root "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
if(NOT TARGET tvm_mobilenet::tvm_mobilenet)
  add_library(tvm_mobilenet::tvm_mobilenet SHARED IMPORTED)
  set_target_properties(tvm_mobilenet::tvm_mobilenet PROPERTIES
    IMPORTED_LOCATION "${_tvm_mobilenet_root}/lib/libtvm_mobilenet.so"
    INTERFACE_INCLUDE_DIRECTORIES "${_tvm_mobilenet_root}/include")
endif()
