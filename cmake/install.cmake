# Install the headers and export flotilla::flotilla and flotilla::data for find_package.
include(CMakePackageConfigHelpers)

install(DIRECTORY include/flotilla DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS flotilla flotilla_data EXPORT flotillaTargets)
if(FLOTILLA_TCP)
  install(TARGETS flotilla_tcp EXPORT flotillaTargets)
endif()
set(FLOTILLA_CONFIG_TCP ${FLOTILLA_TCP})
install(EXPORT flotillaTargets NAMESPACE flotilla:: DESTINATION ${CMAKE_INSTALL_DATADIR}/cmake/flotilla)

configure_package_config_file(cmake/flotillaConfig.cmake.in
  ${PROJECT_BINARY_DIR}/flotillaConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_DATADIR}/cmake/flotilla)
# Header-only: any architecture may use it.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/flotillaConfigVersion.cmake
  COMPATIBILITY SameMinorVersion ARCH_INDEPENDENT)
install(FILES ${PROJECT_BINARY_DIR}/flotillaConfig.cmake ${PROJECT_BINARY_DIR}/flotillaConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_DATADIR}/cmake/flotilla)
