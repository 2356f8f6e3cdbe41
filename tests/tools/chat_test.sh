#!/usr/bin/env bash
# Drives peernet-chat: a server on 127.0.0.1 with the port the kernel picks,
# and two clients whose stdin and stdout the script holds through fifos.
# Each client must print the other's lines in order (and never its own),
# the joins and the leave; a client whose input ends must disconnect and
# exit 0, and the server must stop cleanly at SIGTERM.
#
#   chat_test.sh CHAT
#
# Every wait reads the process's output with a deadline: nothing sleeps.
set -euo pipefail

chat=$1
dir=$(mktemp -d)
deadline=$((SECONDS + 40))
declare -A pid infd outfd

cleanup() {
  for p in "${pid[@]}"; do
    kill -KILL "$p" 2>/dev/null || true
  done
  rm -rf "$dir"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  for f in "$dir"/*.log "$dir"/*.err; do
    if [ -s "$f" ]; then
      echo "--- ${f##*/}" >&2
      cat "$f" >&2
    fi
  done
  exit 1
}

# start NAME ARGS...: runs peernet-chat ARGS with stdin and stdout on fifos.
# The opens pair up in the order the child makes them (stdin, then stdout).
start() {
  local name=$1 fd
  shift
  mkfifo "$dir/$name.in" "$dir/$name.out"
  "$chat" "$@" <"$dir/$name.in" >"$dir/$name.out" 2>"$dir/$name.err" &
  pid[$name]=$!
  exec {fd}>"$dir/$name.in"
  infd[$name]=$fd
  exec {fd}<"$dir/$name.out"
  outfd[$name]=$fd
}

# expect NAME REGEX: reads NAME's output (logging it) until a line matches;
# the line is left in $matched.
expect() {
  local name=$1 pattern=$2 line left
  while :; do
    left=$((deadline - SECONDS))
    ((left > 0)) || fail "timed out waiting for /$pattern/ from $name"
    local rc=0
    IFS= read -r -t "$left" -u "${outfd[$name]}" line || rc=$?
    if ((rc > 128)); then
      fail "timed out waiting for /$pattern/ from $name"
    elif ((rc != 0)); then
      fail "$name stopped before printing /$pattern/"
    fi
    printf '%s\n' "$line" >>"$dir/$name.log"
    if [[ $line =~ $pattern ]]; then
      matched=$line
      return 0
    fi
  done
}

say() { printf '%s\n' "$2" >&"${infd[$1]}"; }

# finish NAME: closes NAME's input, logs the rest of its output and checks
# that it exited 0.
finish() {
  local name=$1 fd=${infd[$1]} line rc=0
  exec {fd}>&-
  while IFS= read -r -t 20 -u "${outfd[$name]}" line; do
    printf '%s\n' "$line" >>"$dir/$name.log"
  done
  wait "${pid[$name]}" || rc=$?
  unset "pid[$name]"
  [ "$rc" -eq 0 ] || fail "$name exited with $rc"
}

start server --server 127.0.0.1:0 --max-seconds 60
expect server '^listening on '
addr=${matched#listening on }

start bob --client "$addr" --name bob
expect bob '^\* bob joined$'
start ann --client "$addr" --name ann
expect ann '^\* ann joined$'
expect bob '^\* ann joined$'

say ann 'hello bob'
say ann 'how are you?'
say bob 'hi ann'
say bob 'fine, thanks'
expect bob '^ann: hello bob$'
expect bob '^ann: how are you\?$'
expect ann '^bob: hi ann$'
expect ann '^bob: fine, thanks$'

finish ann
expect bob '^\* ann left$'
finish bob
if grep -q '^ann: ' "$dir/ann.log" || grep -q '^bob: ' "$dir/bob.log"; then
  fail "a client got its own line back"
fi

kill -TERM "${pid[server]}"
finish server
grep -q '^\* ann left (application 1)$' "$dir/server.log" ||
  fail "the server did not log ann's goodbye"
echo "ok"
