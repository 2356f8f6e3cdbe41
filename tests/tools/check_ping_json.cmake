# cmake -DJSON=<line> -DKIND=<kind> -DCOUNT=<n> [-DCOMPRESSED=1|0]
#       -P check_ping_json.cmake
#
# Checks peernet-ping's --json line with CMake's own JSON parser (CMake is
# on every machine that builds PeerNet; python3 is not in a fresh Debian):
# exactly the documented keys with the right types, the kind and count that
# were asked for, counts that add up, and what each reliable kind promises.
cmake_minimum_required(VERSION 3.19)

set(keys kind sent delivered missing duplicates out_of_order corrupt
         rtt_p50_us rtt_p99_us rtt_p999_us srtt_us loss retransmits
         compression_ratio)

string(JSON n ERROR_VARIABLE err LENGTH "${JSON}")
if(err)
  message(FATAL_ERROR "not JSON (${err}): ${JSON}")
endif()
list(LENGTH keys want)
if(NOT n EQUAL want)
  message(FATAL_ERROR "${n} keys, expected ${want}: ${JSON}")
endif()
foreach(key IN LISTS keys)
  string(JSON type ERROR_VARIABLE err TYPE "${JSON}" ${key})
  if(err)
    message(FATAL_ERROR "no key ${key}: ${JSON}")
  endif()
  set(expected NUMBER)
  if(key STREQUAL "kind")
    set(expected STRING)
  endif()
  if(NOT type STREQUAL expected)
    message(FATAL_ERROR "${key} is ${type}, expected ${expected}: ${JSON}")
  endif()
  string(JSON ${key} GET "${JSON}" ${key})
endforeach()

# require(<if() condition>): fails naming the condition.
macro(require)
  if(NOT (${ARGN}))
    string(REPLACE ";" " " what "${ARGN}")
    message(FATAL_ERROR "expected ${what}: ${JSON}")
  endif()
endmacro()

require(kind STREQUAL KIND)
# A repeated --payload compresses well unless compression is off.
if(DEFINED COMPRESSED AND COMPRESSED)
  require(compression_ratio GREATER 2)
elseif(DEFINED COMPRESSED)
  require(compression_ratio EQUAL 1)
endif()
require(sent EQUAL COUNT)
math(EXPR gap "${sent} - ${delivered}")
require(missing EQUAL gap)
require(duplicates EQUAL 0)
require(corrupt EQUAL 0)
if(delivered GREATER 0)
  require(rtt_p50_us LESS_EQUAL rtt_p99_us)
  require(rtt_p99_us LESS_EQUAL rtt_p999_us)
endif()
if(KIND STREQUAL "ordered" OR KIND STREQUAL "reliable-unordered")
  require(delivered EQUAL sent)
endif()
if(NOT KIND STREQUAL "unsequenced" AND NOT KIND STREQUAL "reliable-unordered")
  require(out_of_order EQUAL 0)
endif()
