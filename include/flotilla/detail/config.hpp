#pragma once
// The build mode. Header-only by default: everything is compiled where it is used. Linking the
// flotilla::compiled target (CMake option FLOTILLA_SEPARATE_COMPILATION) defines
// FLOTILLA_SEPARATE_COMPILATION: non-template code is then only declared in the headers
// (FLOTILLA_DECL) and the common instantiations are declared `extern template`, both compiled
// once in the library, whose own sources define FLOTILLA_SOURCE. The approach is Asio's
// (ASIO_SEPARATE_COMPILATION) and fmt's (extern templates instantiated in one source).

#if defined(FLOTILLA_SEPARATE_COMPILATION) && !defined(FLOTILLA_SOURCE)
#define FLOTILLA_EXTERN_TEMPLATES 1
#define FLOTILLA_DECL
#define FLOTILLA_HEADER_DEFINITIONS 0
#elif defined(FLOTILLA_SEPARATE_COMPILATION)
#define FLOTILLA_DECL
#define FLOTILLA_HEADER_DEFINITIONS 1
#else
#define FLOTILLA_DECL inline
#define FLOTILLA_HEADER_DEFINITIONS 1
#endif
