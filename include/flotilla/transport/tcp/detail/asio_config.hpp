#pragma once
// Included before any Asio header by every header of the TCP transport, which runs on C++20
// coroutines. Asio 1.22 (Debian 12's) turns co_await on under Clang only when libc++'s
// <experimental/coroutine> exists; Clang 14 and later with libstdc++ offer the standard
// <coroutine>, which Asio already uses under GCC, so switch it on there too.
#if defined(__clang__) && !defined(ASIO_HAS_CO_AWAIT) && defined(__cpp_impl_coroutine) && __has_include(<coroutine>)
#define ASIO_HAS_CO_AWAIT 1
#endif

#include <asio/detail/config.hpp>

#if !defined(ASIO_HAS_CO_AWAIT)
#error "Flotilla's TCP transport needs Asio's C++20 coroutine support (ASIO_HAS_CO_AWAIT): compile as C++20, and include Flotilla's TCP headers before any Asio header or define ASIO_HAS_CO_AWAIT=1"
#endif
