# Install the headers and export flotilla::flotilla, flotilla::data, flotilla::tcp,
# flotilla::crypto, flotilla::secure_aggregation and, when built, flotilla::torch, flotilla::mpi
# and flotilla::compiled for find_package.
include(CMakePackageConfigHelpers)

install(DIRECTORY include/flotilla DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS flotilla flotilla_data EXPORT flotillaTargets)
if(FLOTILLA_TCP)
  install(TARGETS flotilla_tcp flotilla_crypto flotilla_secure_aggregation EXPORT flotillaTargets)
endif()
set(flotilla_built_with_torch FALSE)
if(TARGET flotilla_torch)
  install(TARGETS flotilla_torch EXPORT flotillaTargets)
  set(flotilla_built_with_torch TRUE)
endif()
set(flotilla_built_with_mpi FALSE)
if(TARGET flotilla_mpi)
  install(TARGETS flotilla_mpi EXPORT flotillaTargets)
  set(flotilla_built_with_mpi TRUE)
endif()
if(FLOTILLA_SEPARATE_COMPILATION)
  install(TARGETS flotilla_compiled EXPORT flotillaTargets)
  set(flotilla_architecture "")  # a compiled library: only for this architecture
else()
  set(flotilla_architecture ARCH_INDEPENDENT)  # header-only: any architecture may use it
endif()
install(EXPORT flotillaTargets NAMESPACE flotilla:: DESTINATION ${CMAKE_INSTALL_DATADIR}/cmake/flotilla)

configure_package_config_file(cmake/flotillaConfig.cmake.in
  ${PROJECT_BINARY_DIR}/flotillaConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_DATADIR}/cmake/flotilla)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/flotillaConfigVersion.cmake
  COMPATIBILITY SameMinorVersion ${flotilla_architecture})
install(FILES ${PROJECT_BINARY_DIR}/flotillaConfig.cmake ${PROJECT_BINARY_DIR}/flotillaConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_DATADIR}/cmake/flotilla)
