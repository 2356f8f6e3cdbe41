#!/usr/bin/env bash
# What `cmake --install` puts in a prefix, used as a user would:
#   install_test.sh CMAKE BUILD_DIR SOURCE_DIR
# - every tool (peernet-ping, -chat, -top, -keygen, -bench) in bin/ with its
#   man page in share/man/man1, and each runs from the prefix without
#   LD_LIBRARY_PATH (its RPATH finds the library beside it);
# - a program built with only `pkg-config --cflags --libs peernet` links
#   and runs (LD_LIBRARY_PATH: the prefix is not one the loader searches);
#   built with -rpath from the .pc's libdir, it runs without;
# - with only the static library installed, `pkg-config --static` brings
#   the private dependencies (Requires.private) and the program links.
set -euo pipefail
cmake_cmd=$1
build=$2
src=$3
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
fail() {
  echo "install_test: $*" >&2
  exit 1
}

"$cmake_cmd" --install "$build" --prefix "$prefix" >/dev/null
libdir=$(find "$prefix" -name 'libpeernet.so' -printf '%h\n' | head -1)
[ -n "$libdir" ] || fail "no libpeernet.so installed"
export PKG_CONFIG_PATH="$libdir/pkgconfig"

for tool in peernet-ping peernet-chat peernet-top peernet-keygen peernet-bench; do
  [ -x "$prefix/bin/$tool" ] || fail "$tool not installed in bin/"
  page="$prefix/share/man/man1/$tool.1"
  [ -f "$page" ] || fail "no man page for $tool"
  grep -q "^\.TH ${tool^^} 1" "$page" || fail "$page has no .TH line"
  # --help exits 0, or 2 for the tools that take it as a bad command
  # line; either way the usage comes out, so the tool started.
  out=$(env -u LD_LIBRARY_PATH "$prefix/bin/$tool" --help 2>&1) || true
  case $out in
  *usage:*) ;;
  *) fail "$tool --help from the prefix printed: $out" ;;
  esac
done

pkg-config --exists peernet || fail "pkg-config does not find peernet.pc"
[ "$(pkg-config --variable=libdir peernet)" -ef "$libdir" ] ||
  fail "the .pc's libdir is not where the library is"
cc=${CC:-cc}
work="$prefix/work"
mkdir -p "$work"
# shellcheck disable=SC2046
"$cc" -std=c11 -o "$work/user" "$src/tests/tools/pkgconfig_user.c" \
  $(pkg-config --cflags --libs peernet)
[ "$(LD_LIBRARY_PATH="$libdir" "$work/user")" = ok ] || fail "shared: did not run"
# shellcheck disable=SC2046
"$cc" -std=c11 -o "$work/user_rpath" "$src/tests/tools/pkgconfig_user.c" \
  $(pkg-config --cflags --libs peernet) \
  -Wl,-rpath,"$(pkg-config --variable=libdir peernet)"
[ "$(env -u LD_LIBRARY_PATH "$work/user_rpath")" = ok ] || fail "rpath: did not run"

rm -f "$libdir"/libpeernet.so*
# shellcheck disable=SC2046
"$cc" -std=c11 -o "$work/user_static" "$src/tests/tools/pkgconfig_user.c" \
  $(pkg-config --static --cflags --libs peernet)
[ "$(env -u LD_LIBRARY_PATH "$work/user_static")" = ok ] || fail "static: did not run"
echo "install_test: ok"
