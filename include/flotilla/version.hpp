#pragma once
// The library version, kept in step with CMakeLists.txt's project(VERSION).

#define FLOTILLA_VERSION_MAJOR 0
#define FLOTILLA_VERSION_MINOR 10
#define FLOTILLA_VERSION_PATCH 0

namespace flotilla {
inline constexpr const char* version = "0.10.0";
}
