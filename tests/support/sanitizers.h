#pragma once
// REFBROKER_UNDER_ASAN: 1 when this code is built with AddressSanitizer, by GCC
// (__SANITIZE_ADDRESS__) or by Clang (__has_feature), which is what the asan preset uses.

#if defined(__SANITIZE_ADDRESS__)
#define REFBROKER_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define REFBROKER_UNDER_ASAN 1
#endif
#endif
#ifndef REFBROKER_UNDER_ASAN
#define REFBROKER_UNDER_ASAN 0
#endif
