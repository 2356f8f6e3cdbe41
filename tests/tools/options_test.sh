#!/usr/bin/env bash
# A tool's documentation names exactly the options its usage text does:
#   options_test.sh TOOL MAN_PAGE [DOC...]
# Every --option in `TOOL --help` is described in the man page's OPTIONS
# section and named in each DOC (markdown), and every --option that
# section describes is in the usage text, so neither can document an
# option the tool lacks or miss one it has. (Other sections may name other
# tools' options.)
set -euo pipefail
tool=$1
page=$2
shift 2
options() { grep -o -- '--[a-z][a-z-]*' | sed 's/-*$//' | sort -u; }
# --help exits 0, or 2 where the tool takes it as a bad command line.
usage=$("$tool" --help 2>&1 || true)
from_usage=$(options <<<"$usage" | grep -vx -- '--help' || true)
from_page=$(sed -n '/^\.SH OPTIONS/,/^\.SH [^O]/p' "$page" | sed 's/\\-/-/g' |
  options | grep -vx -- '--help' || true)
[ -n "$from_usage" ] || {
  echo "options_test: no options in $tool --help" >&2
  exit 1
}
status=0
missing=$(comm -23 <(echo "$from_usage") <(echo "$from_page"))
if [ -n "$missing" ]; then
  echo "options_test: $page lacks:" "${missing//$'\n'/ }" >&2
  status=1
fi
extra=$(comm -13 <(echo "$from_usage") <(echo "$from_page"))
if [ -n "$extra" ]; then
  echo "options_test: $page documents what $tool --help does not have:" "${extra//$'\n'/ }" >&2
  status=1
fi
for doc in "$@"; do
  from_doc=$(options <"$doc")
  missing=$(comm -23 <(echo "$from_usage") <(echo "$from_doc"))
  if [ -n "$missing" ]; then
    echo "options_test: $doc lacks:" "${missing//$'\n'/ }" >&2
    status=1
  fi
done
exit $status
