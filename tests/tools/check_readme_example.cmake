# Fails unless README.md shows examples/peernet-hello/main.c verbatim (from
# its first #include on), so the README's client and server cannot drift
# from the program ctest runs.
#   cmake -DREADME=README.md -DEXAMPLE=examples/peernet-hello/main.c -P check_readme_example.cmake
file(READ ${README} readme)
file(READ ${EXAMPLE} example)
string(FIND "${example}" "#include" start)
if(start EQUAL -1)
  message(FATAL_ERROR "${EXAMPLE} has no #include")
endif()
string(SUBSTRING "${example}" ${start} -1 body)
string(FIND "${readme}" "```c\n${body}```" found)
if(found EQUAL -1)
  message(FATAL_ERROR "README.md does not show ${EXAMPLE} as it is")
endif()
