# civetweb, compiled from Debian's source package as a static library.
#
# Debian's prebuilt libcivetweb 1.15 targets the OpenSSL 1.1 API (it dlopen()s
# libssl.so and cannot find SSL_get_peer_certificate in OpenSSL 3) and has IPv6
# off. Compiling the same source with OPENSSL_API_3_0 + NO_SSL_DL links OpenSSL 3
# directly and gives kvmock IPv6. docs/architecture.md explains the choice.

set(KVMOCK_CIVETWEB_SOURCE "${CMAKE_SOURCE_DIR}/.deps/civetweb" CACHE PATH
    "civetweb source tree (Debian's source package; fetched when missing)")

if(NOT EXISTS "${KVMOCK_CIVETWEB_SOURCE}/src/civetweb.c")
    message(STATUS "Fetching civetweb source with apt-get source into ${KVMOCK_CIVETWEB_SOURCE}")
    execute_process(
        COMMAND "${CMAKE_SOURCE_DIR}/scripts/fetch-civetweb.sh" "${KVMOCK_CIVETWEB_SOURCE}"
        RESULT_VARIABLE fetch_rc)
    if(NOT fetch_rc EQUAL 0)
        message(FATAL_ERROR "civetweb source is missing and could not be fetched. "
                            "Run scripts/install-deps.sh as root (it enables deb-src), "
                            "or pass -DKVMOCK_CIVETWEB_SOURCE=<dir>.")
    endif()
endif()

# Five changes to civetweb 1.15, as patches applied in order to a copy in the
# build tree (docs/architecture.md has the reasoning):
# - worker threads start on demand, up to num_threads (civetweb 1.16 has the
#   same idea as its prespawn_threads option). kvmock keeps 256 workers so that
#   slow clients cannot take them all, but an idle server should not hold 256
#   thread stacks;
# - the scan for the end of a request's headers skips eight bytes at a time
#   while none is a control character, instead of calling isprint() on every
#   byte, with the same answer for every input: the two scans per request were
#   26k of the 65k instructions kvmock spent on a GET /healthz;
# - the answer to a request civetweb cannot parse says "HTTP/1.1" and
#   "Connection: close" instead of echoing the client's bytes in its status
#   line: after a failed parse the version pointed at the rest of the request,
#   CR LF and headers included (found by fuzz_http, tests/fuzz/RESULTS.md F6);
# - a request whose body's length could be read two ways is a bad request, and
#   its connection closes (RFC 9112 sections 5.1 and 6.3): Transfer-Encoding
#   with Content-Length, either one twice, a Content-Length that is not digits,
#   or whitespace before a field's colon. civetweb framed such a request by the
#   first header it looked at, so a proxy in front that chose the other could
#   have its next request smuggled in the body;
# - a worker whose keep-alive connection is idle gives it up when accepted
#   connections wait for a worker and no more workers can start (one worker per
#   waiting connection); civetweb held it until the keep-alive timeout, so a
#   client that left connections open (one per call) made the next ones wait
#   for seconds. The keep-alive timeout is the wait for a kept connection's next
#   request only: once its first bytes arrive, the request has the request
#   timeout, as on a new connection (civetweb gave it the keep-alive timeout);
#   and no close, at the timeout or for a newcomer, cuts off a request that has
#   just reached the socket.
set(KVMOCK_CIVETWEB_PATCHES "${CMAKE_SOURCE_DIR}/cmake/civetweb-workers-on-demand.patch"
                            "${CMAKE_SOURCE_DIR}/cmake/civetweb-header-scan.patch"
                            "${CMAKE_SOURCE_DIR}/cmake/civetweb-status-line.patch"
                            "${CMAKE_SOURCE_DIR}/cmake/civetweb-framing.patch"
                            "${CMAKE_SOURCE_DIR}/cmake/civetweb-keep-alive-yield.patch")
set(KVMOCK_CIVETWEB_PATCHED "${CMAKE_BINARY_DIR}/civetweb-patched/src/civetweb.c")
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
             ${KVMOCK_CIVETWEB_PATCHES} "${KVMOCK_CIVETWEB_SOURCE}/src/civetweb.c")
file(MAKE_DIRECTORY "${CMAKE_BINARY_DIR}/civetweb-patched/src")
file(COPY_FILE "${KVMOCK_CIVETWEB_SOURCE}/src/civetweb.c" "${KVMOCK_CIVETWEB_PATCHED}")
foreach(patch_file ${KVMOCK_CIVETWEB_PATCHES})
    execute_process(
        COMMAND patch --quiet --forward -p1 -i "${patch_file}"
        WORKING_DIRECTORY "${CMAKE_BINARY_DIR}/civetweb-patched"
        RESULT_VARIABLE patch_rc)
    if(NOT patch_rc EQUAL 0)
        message(FATAL_ERROR "cannot apply ${patch_file} to ${KVMOCK_CIVETWEB_SOURCE}")
    endif()
endforeach()

add_library(civetweb_static STATIC "${KVMOCK_CIVETWEB_PATCHED}")
target_include_directories(civetweb_static SYSTEM PUBLIC "${KVMOCK_CIVETWEB_SOURCE}/include")
# the .inl files civetweb.c includes stay in the source tree
target_include_directories(civetweb_static PRIVATE "${KVMOCK_CIVETWEB_SOURCE}/src")
target_compile_definitions(civetweb_static
    PUBLIC OPENSSL_API_3_0 NO_SSL_DL USE_IPV6
    PRIVATE NO_CGI NO_CACHING NO_FILES NDEBUG
            # how often idle workers look at the stop flag (civetweb's default is
            # 2000 ms, which mg_stop() then waits for)
            SOCKET_TIMEOUT_QUANTUM=200
            # workers started with the server; the rest on demand (the first patch above)
            PRESPAWN_WORKER_THREADS=8)
# Third-party code: keep its warnings out of our -Werror build.
target_compile_options(civetweb_static PRIVATE -w)
set_target_properties(civetweb_static PROPERTIES POSITION_INDEPENDENT_CODE ON)
target_link_libraries(civetweb_static PUBLIC OpenSSL::SSL OpenSSL::Crypto Threads::Threads
                      ${CMAKE_DL_LIBS})
