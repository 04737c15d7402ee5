#!/usr/bin/env bash
# asterisk-testbed.sh - N real Asterisk 22 servers on one machine, each sharing device state and MWI
# through devclusterd (Asterisk + res_devcluster + devclusterd) or, with --incumbent, through
# corosync 3 (Asterisk + res_corosync + corosync). Test equipment for tests and benchmarks.
#
# usage:
#   asterisk-testbed.sh up N [--incumbent]   start N servers (1..9), each = one Asterisk + one
#                                            devclusterd (or one corosync + Asterisk with res_corosync),
#                                            each in its own network namespace on a shared bridge;
#                                            waits until every server is ready
#   asterisk-testbed.sh down                 stop everything it started (by PID), delete its namespaces;
#                                            safe to run twice or when nothing is up
#   asterisk-testbed.sh rx I "CLI command"   Asterisk's CLI on server I (asterisk -C ... -rx), prints the output
#   asterisk-testbed.sh ami I                prints server I's AMI "HOST PORT USER SECRET" on one line
#                                            (HOST is only reachable inside the namespaces: use exec)
#   asterisk-testbed.sh exec I CMD...        runs CMD in server I's namespace (exit status is CMD's)
#   asterisk-testbed.sh kill I               kill -9 of server I's Asterisk and its daemon, at the same moment
#   asterisk-testbed.sh start I              (re)start server I's daemon, then its Asterisk; waits until ready
#   asterisk-testbed.sh kill-daemon I | start-daemon I       only the daemon (devclusterd / corosync)
#   asterisk-testbed.sh kill-asterisk I | start-asterisk I   only Asterisk
#   asterisk-testbed.sh status               mode, N, each server's PIDs and whether alive
#                                            (exit 0 when the testbed is up, 1 when it is not)
#   asterisk-testbed.sh dc I ARGS...         devclusterd's CLI against server I's daemon
#                                            (devclusterd --socket S ARGS...; exit status is devclusterd's)
# Exit status: 0 success, 1 failure (message on stderr), 2 usage error; rx/exec/dc pass the command's on.
#
# Layout: namespaces dcat-hub (bridge br0, multicast snooping off) and dcat-n1..N, server I at
# 10.214.0.I/24 on its eth0 with only a 224.0.0.0/4 route besides the subnet (nothing in the root
# namespace, no default route). Run directory ${DEVCLUSTER_TESTBED_RUN:-/tmp/devcluster-testbed}:
# testbed.state (mode, N, PIDs), authkey, serverI/{etc,modules,log,run,lib,spool,cache,keys} for
# Asterisk (log/messages is its log, asterisk.out its stdout/stderr), serverI/devclusterd.{conf,log,sock}
# and serverI/state for devclusterd, serverI/corosync.{conf,log} and corosync-{run,state} for corosync.
# `down` leaves the logs; the next `up` wipes the directory.
# Readiness (every wait bounded): a started daemon sees every live daemon in its ring and every other
# live daemon sees it; Asterisk answers `core waitfullybooted`; then, devcluster mode, `devcluster show
# status` says `Connection: connected` (only when res_devcluster is loaded: `up` installs a copy of
# Integrations/asterisk/res_devcluster.so when it exists, warns when it does not, and fails if it is
# installed but does not load; `start-daemon` under a running Asterisk also waits for the module to
# reconnect), incumbent mode, `corosync show members` lists this server (`up`: all N) and every other
# working res_corosync lists it. `up` starts all daemons, waits for one ring of N, then the Asterisks.
# A failed `up` stops everything it started. One testbed per machine (fixed namespace names).
#
# Environment:
#   DEVCLUSTER_TESTBED_RUN   run directory (default /tmp/devcluster-testbed)
#   DEVCLUSTERD              devclusterd binary (default <repo>/.build/debug/devclusterd; build it with
#                            `swift build --product devclusterd`, or `-c release` + DEVCLUSTERD=<repo>/.build/release/devclusterd)
#   DEVCLUSTER_TESTBED_MODULE  res_devcluster.so to install (default <repo>/Integrations/asterisk/res_devcluster.so,
#                            built by asterisk-build.sh when Integrations/asterisk/Makefile exists)
#   DEVCLUSTER_TESTBED_CACHE, ASTERISK_TARBALL   passed to scripts/asterisk-build.sh (Asterisk's build cache)
# Needs root (network namespaces). Asterisk itself is built once by scripts/asterisk-build.sh.
set -u

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
RUN=${DEVCLUSTER_TESTBED_RUN:-/tmp/devcluster-testbed}
case $RUN in /*) ;; *) RUN=$PWD/$RUN;; esac
STATE=$RUN/testbed.state
LOCK=$RUN/.state.lock
MARKER=$RUN/.devcluster-testbed
PFX=dcat
HUB=$PFX-hub
NET=10.214.0
DC_MCAST=239.255.214.10
DC_PORT=5420
CS_MCAST=239.255.214.1
CS_PORT=5405
AMI_PORT=5038
AMI_USER=admin
AMI_SECRET=adminpw
MODULE_SO=${DEVCLUSTER_TESTBED_MODULE:-$ROOT/Integrations/asterisk/res_devcluster.so}

DAEMON_WAIT=30     # s: daemons forming a ring of every live server
ASTERISK_WAIT=60   # s: Asterisk fully booted
CLUSTER_WAIT=30    # s: Asterisk connected to its daemon / seeing every live server
STOP_WAIT=5        # s: SIGTERM before SIGKILL

UP_IN_PROGRESS=0

# ---------------------------------------------------------------------------------------------
# small helpers

say() { echo "asterisk-testbed: $*" >&2; }
die() {
  echo "asterisk-testbed: ERROR: $*" >&2
  if [ "$UP_IN_PROGRESS" = 1 ]; then
    UP_IN_PROGRESS=0
    say "cleaning up the failed start (logs stay in $RUN)"
    do_down >/dev/null
  fi
  exit 1
}
usage() {
  if [ $# -gt 0 ]; then echo "asterisk-testbed: $* (see: $0 --help)" >&2; exit 2; fi
  sed -n '/^# usage:/,/^# Exit status/p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}
now() { echo "${EPOCHREALTIME/,/.}"; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
ns() { echo "$PFX-n$1"; }
sdir() { echo "$RUN/server$1"; }
is_uint() { case ${1:-} in ''|*[!0-9]*) return 1;; *) return 0;; esac; }

need_root() { [ "$(id -u)" = 0 ] || { echo "asterisk-testbed: ERROR: must run as root (network namespaces)" >&2; exit 1; }; }

# state file: KEY=VALUE lines, never sourced
state_get() { [ -f "$STATE" ] && awk -v k="$1" 'index($0, k "=") == 1 { v = substr($0, length(k) + 2) } END { print v }' "$STATE"; }
state_set() { # KEY VALUE [KEY VALUE ...], atomically and under a lock (parallel start/kill of servers)
  (
    flock -w 10 9 || exit 1
    tmp=$STATE.tmp.$$
    { [ -f "$STATE" ] && cat "$STATE"; true; } > "$tmp"
    while [ $# -ge 2 ]; do
      awk -v k="$1" 'index($0, k "=") != 1' "$tmp" > "$tmp.2" && mv "$tmp.2" "$tmp"
      echo "$1=$2" >> "$tmp"
      shift 2
    done
    mv "$tmp" "$STATE"
  ) 9>"$LOCK" || die "cannot update $STATE"
}

# alive PID COMM: the process exists, is not a zombie, and its comm is COMM (guards against PID reuse)
alive() {
  local pid=${1:-} want=${2:-} comm st
  is_uint "$pid" || return 1
  comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
  [ "$comm" = "$want" ] || return 1
  st=$(awk '/^State:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
  [ "$st" != Z ] && [ -n "$st" ]
}

# stop_pids COMM PID...: SIGTERM, wait up to STOP_WAIT s, SIGKILL what is left (only PIDs whose comm matches)
stop_pids() {
  local want=$1 p k left; shift
  local pids=()
  for p in "$@"; do alive "$p" "$want" && pids+=("$p"); done
  [ ${#pids[@]} -eq 0 ] && return 0
  kill -TERM "${pids[@]}" 2>/dev/null
  for k in $(seq 1 $((STOP_WAIT * 10))); do
    left=0; for p in "${pids[@]}"; do alive "$p" "$want" && left=1; done
    [ $left = 0 ] && return 0
    sleep 0.1
  done
  for p in "${pids[@]}"; do
    if alive "$p" "$want"; then say "$want (pid $p) ignored SIGTERM for ${STOP_WAIT} s: SIGKILL"; kill -KILL "$p" 2>/dev/null; fi
  done
  for k in $(seq 1 20); do
    left=0; for p in "${pids[@]}"; do alive "$p" "$want" && left=1; done
    [ $left = 0 ] && return 0
    sleep 0.1
  done
  return 1
}

# wait_comm PID COMM: after spawning through setsid/ip netns exec/sh, wait (<= 3 s) until PID is COMM
wait_comm() {
  local k
  for k in $(seq 1 60); do
    alive "$1" "$2" && return 0
    [ -d "/proc/$1" ] || return 1
    sleep 0.05
  done
  return 1
}

# kill_own_child PID: a process this shell spawned that did not become what it should (it cannot have been
# reused: an unreaped child keeps its PID); checked by its parent PID before signalling
kill_own_child() {
  local pid=$1 ppid
  ppid=$(awk '/^PPid:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
  [ "$ppid" = "$$" ] && kill -KILL "$pid" 2>/dev/null
  true
}

log_tail() { # FILE...: last lines of logs, for failure messages
  local f
  for f in "$@"; do
    [ -s "$f" ] || continue
    echo "--- last lines of $f:" >&2
    tail -n 15 "$f" >&2
  done
}

# ---------------------------------------------------------------------------------------------
# loading the recorded state

MODE= N= PREFIX= DCD= DCD_COMM=
load_state() { # requires an up testbed
  [ -f "$STATE" ] || { echo "asterisk-testbed: ERROR: the testbed is not up (no $STATE); run: $0 up N" >&2; exit 1; }
  MODE=$(state_get MODE); N=$(state_get N); PREFIX=$(state_get PREFIX)
  DCD=$(state_get DEVCLUSTERD); DCD_COMM=$(state_get DEVCLUSTERD_COMM)
  is_uint "$N" || { echo "asterisk-testbed: ERROR: $STATE is damaged (N='$N'); run: $0 down" >&2; exit 1; }
}
server_arg() { # validates I against the recorded N
  local i=${1:-}
  is_uint "$i" || usage "expected a server number, got '${i}'"
  { [ "$i" -ge 1 ] && [ "$i" -le "$N" ]; } || usage "server $i out of range 1..$N"
}
daemon_comm() { if [ "$MODE" = incumbent ]; then echo corosync; else echo "$DCD_COMM"; fi; }
daemon_name() { if [ "$MODE" = incumbent ]; then echo corosync; else echo devclusterd; fi; }
daemon_pid() { state_get "DAEMON_PID_$1"; }
asterisk_pid() { state_get "ASTERISK_PID_$1"; }
daemon_alive() { alive "$(daemon_pid "$1")" "$(daemon_comm)"; }
asterisk_alive() { alive "$(asterisk_pid "$1")" asterisk; }
live_daemons() { local i c=0; for i in $(seq 1 "$N"); do daemon_alive "$i" && c=$((c + 1)); done; echo $c; }

# ---------------------------------------------------------------------------------------------
# network namespaces

make_namespaces() { # N
  local n=$1 i nsn
  ip netns add "$HUB" || die "ip netns add $HUB failed"
  ip -n "$HUB" link set lo up
  ip -n "$HUB" link add br0 type bridge || die "cannot create the bridge in $HUB"
  ip -n "$HUB" link set br0 type bridge mcast_snooping 0 stp_state 0 forward_delay 0 || die "cannot configure the bridge"
  ip -n "$HUB" link set br0 up
  for i in $(seq 1 "$n"); do
    nsn=$(ns "$i")
    ip netns add "$nsn" || die "ip netns add $nsn failed"
    ip -n "$nsn" link set lo up
    ip -n "$nsn" link add eth0 type veth peer name "p$i" netns "$HUB" || die "cannot create the veth of $nsn"
    ip -n "$HUB" link set "p$i" master br0
    ip -n "$HUB" link set "p$i" up
    ip -n "$nsn" addr add "$NET.$i/24" dev eth0 || die "cannot address $nsn"
    ip -n "$nsn" link set eth0 up
    ip -n "$nsn" route add 224.0.0.0/4 dev eth0 || die "cannot add the multicast route in $nsn"
  done
}

delete_namespaces() {
  local nsn
  for nsn in $(ip netns list 2>/dev/null | awk '{ print $1 }' | grep "^$PFX-n[0-9]*$"); do ip netns del "$nsn" 2>/dev/null; done
  ip netns list 2>/dev/null | awk '{ print $1 }' | grep -qx "$HUB" && ip netns del "$HUB" 2>/dev/null
  true
}

# ---------------------------------------------------------------------------------------------
# configuration files

write_asterisk_conf() { # I MODE
  local i=$1 mode=$2 d k
  d=$(sdir "$i")
  mkdir -p "$d/etc" "$d/modules" "$d/log" "$d/run" "$d/lib" "$d/spool" "$d/cache" "$d/keys"
  cat > "$d/etc/asterisk.conf" <<EOF
[directories]
astcachedir => $d/cache
astetcdir => $d/etc
astmoddir => $d/modules
astvarlibdir => $d/lib
astdbdir => $d/lib
astkeydir => $d
astdatadir => $PREFIX/var/lib/asterisk
astagidir => $PREFIX/var/lib/asterisk/agi-bin
astspooldir => $d/spool
astrundir => $d/run
astlogdir => $d/log
astsbindir => $PREFIX/sbin

[options]
entityid = 02:00:00:00:00:0$i
systemname = server$i
verbose = 3
nocolor = yes
hideconnect = yes
EOF
  {
    echo "[modules]"
    echo "autoload = no"
    for k in pbx_config func_devstate res_manager_devicestate func_db res_sorcery_astdb res_sorcery_config \
             res_sorcery_memory res_sorcery_memory_cache res_mwi_external res_mwi_external_ami app_echo; do
      echo "load => $k.so"
    done
    if [ "$mode" = incumbent ]; then echo "load => res_corosync.so"
    elif [ -f "$d/modules/res_devcluster.so" ]; then echo "load => res_devcluster.so"; fi
  } > "$d/etc/modules.conf"
  cat > "$d/etc/manager.conf" <<EOF
[general]
enabled = yes
port = $AMI_PORT
bindaddr = $NET.$i
displayconnects = no

[$AMI_USER]
secret = $AMI_SECRET
read = all
write = all
EOF
  {
    echo "[general]"
    echo "static = yes"
    echo "writeprotect = yes"
    echo
    echo "[devstate_test]"
    echo "exten => 1234,hint,Custom:mystate"
    echo "exten => 1234,1,NoOp()"
    for k in 2 3 4; do
      echo "exten => $((2000 + k)),hint,Custom:trial$k"
      echo "exten => $((2000 + k)),1,NoOp()"
    done
  } > "$d/etc/extensions.conf"
  # core configuration files Asterisk reads at start: present (and CDR/CEL off) to keep the log quiet
  printf '[general]\nenable = no\n' > "$d/etc/cdr.conf"
  printf '[general]\nenable = no\n' > "$d/etc/cel.conf"
  for k in features udptl ccss; do printf '[general]\n' > "$d/etc/$k.conf"; done
  : > "$d/etc/acl.conf"
  printf '[general]\ncountry = us\n\n[us]\ndescription = United States\nringcadence = 2000,4000\ndial = 350+440\nbusy = 480+620/500,0/500\nring = 440+480/2000,0/4000\ncongestion = 480+620/250,0/250\n' > "$d/etc/indications.conf"
  cat > "$d/etc/logger.conf" <<EOF
[general]
dateformat = %F %T.%3q

[logfiles]
messages => notice,warning,error,verbose
EOF
  if [ "$mode" = incumbent ]; then
    cat > "$d/etc/res_corosync.conf" <<EOF
[general]
publish_event = device_state
publish_event = mwi
subscribe_event = device_state
subscribe_event = mwi
EOF
  else
    cat > "$d/etc/res_devcluster.conf" <<EOF
[general]
socket = $d/devclusterd.sock
publish_event = device_state
publish_event = mwi
subscribe_event = device_state
subscribe_event = mwi
EOF
  fi
}

install_modules() { # I MODE: astmoddir = symlinks to the prefix's modules, plus a copy of ours
  local i=$1 mode=$2 d m
  d=$(sdir "$i")
  mkdir -p "$d/modules"
  for m in "$PREFIX"/lib/asterisk/modules/*.so; do ln -sf "$m" "$d/modules/"; done
  # a copy, not a link: rebuilding the module while this Asterisk runs must not change its mapped file
  if [ "$mode" = devcluster ] && [ -f "$MODULE_SO" ]; then cp "$MODULE_SO" "$d/modules/res_devcluster.so"; fi
}

write_devclusterd_conf() { # I N
  local i=$1 n=$2 d j k
  d=$(sdir "$i")
  mkdir -p "$d/state"
  {
    echo "[totem]"
    echo "cluster_name = testbed"
    echo "transport = udp"
    echo "bindnetaddr = $NET.0"
    echo "mcastaddr = $DC_MCAST"
    echo "mcastport = $DC_PORT"
    echo "crypto = hmac-sha256"
    echo "keyfile = $RUN/authkey"
    for j in $(seq 1 "$n"); do
      echo
      echo "[node]"
      echo "nodeid = $j"
      echo "name = server$j"
      echo "addr = $NET.$j"
    done
    echo
    echo "[options]"
    echo "nodeid = $i"
    echo "entity_id = 02:00:00:00:00:0$i"
    echo "control_socket = $d/devclusterd.sock"
    echo "state_dir = $d/state"
    echo "log_level = info"
    echo
    echo "[device_state]"
    echo "type = event_channel"
    echo "publish_event = device_state"
    echo "subscribe_event = device_state"
    echo
    echo "[mwi]"
    echo "type = event_channel"
    echo "publish_event = mwi"
    echo "subscribe_event = mwi"
    echo
    echo "[hints]"
    echo "1234@devstate_test = Custom:mystate"
    for k in 2 3 4; do echo "$((2000 + k))@devstate_test = Custom:trial$k"; done
  } > "$d/devclusterd.conf"
}

write_corosync_conf() { # I N
  local i=$1 n=$2 d j
  d=$(sdir "$i")
  mkdir -p "$d/corosync-run" "$d/corosync-state"
  {
    echo "totem {"
    echo "  version: 2"
    echo "  cluster_name: testbed"
    echo "  transport: udp"
    echo "  crypto_cipher: none"
    echo "  crypto_hash: none"
    echo "  interface {"
    echo "    linknumber: 0"
    echo "    bindnetaddr: $NET.0"
    echo "    mcastaddr: $CS_MCAST"
    echo "    mcastport: $CS_PORT"
    echo "  }"
    echo "}"
    echo "logging {"
    echo "  to_stderr: no"
    echo "  to_syslog: no"
    echo "  to_logfile: yes"
    echo "  logfile: $d/corosync.log"
    echo "  timestamp: hires"
    echo "  debug: off"
    echo "}"
    echo "quorum {"
    echo "  provider: corosync_votequorum"
    echo "}"
    echo "system {"
    echo "  state_dir: $d/corosync-state"
    echo "}"
    echo "nodelist {"
    for j in $(seq 1 "$n"); do
      echo "  node {"
      echo "    name: server$j"
      echo "    nodeid: $j"
      echo "    ring0_addr: $NET.$j"
      echo "  }"
    done
    echo "}"
  } > "$d/corosync.conf"
}

# ---------------------------------------------------------------------------------------------
# the daemons

# spawn LOG CMD...: CMD in the background in its own session, stdin /dev/null, stdout and stderr
# appended to LOG, and no other inherited descriptor (a caller's pipe must not stay open in a
# daemon); SPAWNED = its PID: the subshell execs setsid, which execs CMD (ip netns exec execs too)
# CMD also starts with no signal blocked and every signal at its default action: a caller such as a
# test runner may have signals blocked or ignored, and children inherit both. Asterisk's manager
# wakes its session threads with SIGURG to send them events: blocked, AMI events stop flowing.
CLEAN_SIGNALS='import os, signal, sys
signal.pthread_sigmask(signal.SIG_SETMASK, set())
for number in signal.valid_signals():
    try: signal.signal(number, signal.SIG_DFL)
    except (OSError, ValueError): pass
os.execvp(sys.argv[1], sys.argv[1:])'
SPAWNED=
spawn() {
  local log=$1; shift
  (
    for f in /proc/"$BASHPID"/fd/*; do
      n=${f##*/}
      if is_uint "$n" && [ "$n" -gt 2 ]; then eval "exec $n>&-"; fi
    done 2>/dev/null
    exec setsid python3 -c "$CLEAN_SIGNALS" "$@" </dev/null >>"$log" 2>&1
  ) &
  SPAWNED=$!
  disown "$SPAWNED" 2>/dev/null
}

dc_members() { # I: members of the ring seen by server I's devclusterd (0 if it does not answer)
  local out
  out=$(timeout 5 "$DCD" --socket "$(sdir "$1")/devclusterd.sock" members --json 2>/dev/null) || { echo 0; return; }
  case $out in *'"state":"operational"'*|*'"state": "operational"'*) ;; *) echo 0; return;; esac
  echo "$out" | grep -oE '"member": *true' | wc -l
}
cs_members() { # I: members corosync on server I sees as joined
  ip netns exec "$(ns "$1")" corosync-cmapctl runtime.members 2>/dev/null | grep -c 'status (str) = joined'
}
daemon_members() { if [ "$MODE" = incumbent ]; then cs_members "$1"; else dc_members "$1"; fi; }
daemon_sees() { # J I: server J's daemon has node I in its ring
  if [ "$MODE" = incumbent ]; then
    ip netns exec "$(ns "$1")" corosync-cmapctl "runtime.members.$2.status" 2>/dev/null | grep -q '= joined'
  else
    timeout 5 "$DCD" --socket "$(sdir "$1")/devclusterd.sock" members --json 2>/dev/null \
      | grep -qE "\\{\"nodeid\": *$2,[^{}]*\"member\": *true"
  fi
}
wait_daemon_seen() { # I: bounded wait until every other live daemon has node I in its ring
  local i=$1 j t0 missing
  t0=$SECONDS
  while :; do
    missing=
    for j in $(seq 1 "$N"); do
      [ "$j" = "$i" ] && continue
      daemon_alive "$j" || continue
      daemon_sees "$j" "$i" || missing="$missing $j"
    done
    [ -z "$missing" ] && return 0
    [ $((SECONDS - t0)) -ge "$DAEMON_WAIT" ] && die "server $i: not in the ring of server(s)$missing after ${DAEMON_WAIT} s"
    sleep 0.1
  done
}

spawn_daemon() { # I: start server I's daemon in its namespace, record its PID (no waiting for the ring)
  local i=$1 d pid
  d=$(sdir "$i")
  if [ "$MODE" = incumbent ]; then
    # ip netns exec gives a private mount namespace: bind a per-server dir over /run (corosync's pid lock)
    spawn "$d/corosync.out" ip netns exec "$(ns "$i")" \
        sh -c 'mount --bind "$1" /run && exec corosync -f -c "$2"' sh "$d/corosync-run" "$d/corosync.conf"
  else
    spawn "$d/devclusterd.log" ip netns exec "$(ns "$i")" "$DCD" --foreground --config "$d/devclusterd.conf"
  fi
  pid=$SPAWNED
  state_set "DAEMON_PID_$i" "$pid"
  if ! wait_comm "$pid" "$(daemon_comm)"; then
    kill_own_child "$pid"
    if [ "$MODE" = incumbent ]; then log_tail "$d/corosync.out" "$d/corosync.log"; else log_tail "$d/devclusterd.log"; fi
    die "server $i: $(daemon_name) did not start (pid $pid)"
  fi
}

# Deadlines (in $SECONDS) shared by all servers during `up`, so that N servers wait no longer than one;
# 0: each wait has its own limit
RING_END=0 BOOT_END=0 CLUSTER_END=0
deadline() { if [ "$1" -gt 0 ]; then echo "$1"; else echo $((SECONDS + $2)); fi; }

wait_daemon_ring() { # I WANT: bounded wait until server I's daemon sees at least WANT members
  local i=$1 want=$2 end c=0 d
  end=$(deadline "$RING_END" "$DAEMON_WAIT")
  while :; do
    daemon_alive "$i" || break
    c=$(daemon_members "$i"); c=${c:-0}
    [ "$c" -ge "$want" ] && return 0
    [ "$SECONDS" -ge "$end" ] && break
    sleep 0.1
  done
  d=$(sdir "$i")
  if [ "$MODE" = incumbent ]; then log_tail "$d/corosync.out" "$d/corosync.log"; else log_tail "$d/devclusterd.log"; fi
  daemon_alive "$i" || die "server $i: $(daemon_name) exited"
  die "server $i: $(daemon_name) sees $c of $want members after waiting ${DAEMON_WAIT} s"
}

# ---------------------------------------------------------------------------------------------
# Asterisk

ast_rx() { # I CMD [TIMEOUT]: asterisk -rx inside server I's namespace
  local i=$1 cmd=$2 t=${3:-30}
  timeout "$t" ip netns exec "$(ns "$i")" "$PREFIX/sbin/asterisk" -C "$(sdir "$i")/etc/asterisk.conf" -rx "$cmd"
}

spawn_asterisk() { # I
  local i=$1 d pid
  d=$(sdir "$i")
  rm -f "$d/run/asterisk.pid"
  spawn "$d/asterisk.out" ip netns exec "$(ns "$i")" "$PREFIX/sbin/asterisk" -C "$d/etc/asterisk.conf" -f -n
  pid=$SPAWNED
  state_set "ASTERISK_PID_$i" "$pid"
  wait_comm "$pid" asterisk || { kill_own_child "$pid"; log_tail "$d/asterisk.out" "$d/log/messages"; die "server $i: Asterisk did not start (pid $pid)"; }
}

wait_asterisk_ready() { # I WANT: incumbent, the CPG members it must see (itself always among them)
  local i=$1 want=$2 d end out c=0 self=0 pid
  d=$(sdir "$i")
  pid=$(asterisk_pid "$i")
  end=$(deadline "$BOOT_END" "$ASTERISK_WAIT")
  while :; do
    alive "$pid" asterisk || { log_tail "$d/asterisk.out" "$d/log/messages"; die "server $i: Asterisk exited while starting"; }
    out=$(ast_rx "$i" "core waitfullybooted" 20 2>&1) && [[ $out == *"fully booted"* ]] && break
    [ "$SECONDS" -ge "$end" ] && { log_tail "$d/asterisk.out" "$d/log/messages"; die "server $i: Asterisk not fully booted after ${ASTERISK_WAIT} s"; }
    sleep 0.2
  done
  local apid; apid=$(cat "$d/run/asterisk.pid" 2>/dev/null)
  [ -z "$apid" ] || [ "$apid" = "$pid" ] || say "server $i: asterisk.pid says $apid, recorded $pid"

  end=$(deadline "$CLUSTER_END" "$CLUSTER_WAIT")
  if [ "$MODE" = incumbent ]; then
    daemon_alive "$i" || { say "server $i: corosync is not running; not waiting for corosync members"; return 0; }
    while :; do
      out=$(ast_rx "$i" "corosync show members" 10 2>/dev/null)
      c=$(echo "$out" | grep -c '=== --> Nodeid:')
      if echo "$out" | grep -qx "=== --> Nodeid: $i"; then self=1; else self=0; fi
      [ "$self" = 1 ] && [ "${c:-0}" -ge "$want" ] && return 0
      if [ "$SECONDS" -ge "$end" ]; then
        log_tail "$d/log/messages"
        [ "$self" = 1 ] || die "server $i: res_corosync has not joined the CPG group after ${CLUSTER_WAIT} s ('corosync show members' lists $c, not this node)"
        die "server $i: 'corosync show members' lists $c of $want after ${CLUSTER_WAIT} s"
      fi
      alive "$pid" asterisk || die "server $i: Asterisk exited"
      sleep 0.2
    done
  else
    if ! ast_rx "$i" "module show like res_devcluster" 10 2>/dev/null | grep -q 'res_devcluster'; then
      [ -f "$d/modules/res_devcluster.so" ] && { log_tail "$d/log/messages"; die "server $i: res_devcluster.so is installed but did not load"; }
      return 0   # no module built yet: nothing to wait for
    fi
    daemon_alive "$i" || { say "server $i: devclusterd is not running; not waiting for res_devcluster to connect"; return 0; }
    while :; do
      out=$(ast_rx "$i" "devcluster show status" 10 2>/dev/null)
      echo "$out" | grep -q '^=== Connection: connected' && return 0
      [ "$SECONDS" -ge "$end" ] && { echo "$out" >&2; log_tail "$d/log/messages"; die "server $i: res_devcluster not connected after ${CLUSTER_WAIT} s"; }
      alive "$pid" asterisk || die "server $i: Asterisk exited"
      sleep 0.2
    done
  fi
}

wait_cpg_seen() { # I (incumbent): every other working res_corosync (one that lists itself) lists node I
  local i=$1 j t0 out missing
  daemon_alive "$i" || return 0
  t0=$SECONDS
  while :; do
    missing=
    for j in $(seq 1 "$N"); do
      [ "$j" = "$i" ] && continue
      daemon_alive "$j" && asterisk_alive "$j" || continue
      out=$(ast_rx "$j" "corosync show members" 10 2>/dev/null)
      echo "$out" | grep -qx "=== --> Nodeid: $j" || continue
      echo "$out" | grep -qx "=== --> Nodeid: $i" || missing="$missing $j"
    done
    [ -z "$missing" ] && return 0
    [ $((SECONDS - t0)) -ge "$CLUSTER_WAIT" ] && die "server $i: not among the corosync members of server(s)$missing after ${CLUSTER_WAIT} s"
    sleep 0.2
  done
}

# ---------------------------------------------------------------------------------------------
# commands

cmd_up() {
  local n=${1:-} mode=devcluster a i t0 out
  is_uint "$n" || usage "up: expected N (1..9)"
  { [ "$n" -ge 1 ] && [ "$n" -le 9 ]; } || usage "up: N must be 1..9, got $n"
  shift
  for a in "$@"; do
    case $a in
      --incumbent) mode=incumbent;;
      *) usage "up: unknown option '$a'";;
    esac
  done
  need_root
  t0=$(now)
  [ -f "$STATE" ] && die "the testbed is already up (or was not stopped: $STATE exists); run: $0 down"
  if ip netns list 2>/dev/null | awk '{ print $1 }' | grep -q "^$PFX-"; then
    die "network namespaces $PFX-* exist (a previous run?); run: $0 down"
  fi
  local dcd=${DEVCLUSTERD:-$ROOT/.build/debug/devclusterd} dcd_comm=
  if [ "$mode" = devcluster ]; then
    [ -x "$dcd" ] || die "devclusterd not found at $dcd: build it in $ROOT with \`swift build --product devclusterd\` (or \`swift build -c release --product devclusterd\` and DEVCLUSTERD=$ROOT/.build/release/devclusterd for benchmarks)"
    dcd=$(cd "$(dirname "$dcd")" && pwd)/$(basename "$dcd")
    dcd_comm=$(basename "$dcd" | cut -c1-15)
  fi
  # Unix socket paths (Asterisk's asterisk.ctl, devclusterd's socket) must stay under 108 bytes
  [ ${#RUN} -le 70 ] || die "run directory path too long for Unix sockets (${#RUN} > 70 chars): $RUN"

  # Asterisk (built once, cached); the module only where it is being written
  local build_args=()
  if [ "$mode" = incumbent ] || [ ! -f "$ROOT/Integrations/asterisk/Makefile" ]; then build_args=(--no-module); fi
  out=$("$ROOT/scripts/asterisk-build.sh" "${build_args[@]}") || die "scripts/asterisk-build.sh ${build_args[*]} failed"
  PREFIX=$(echo "$out" | tail -n 1)
  [ -x "$PREFIX/sbin/asterisk" ] || die "no Asterisk at $PREFIX/sbin/asterisk (asterisk-build.sh printed '$PREFIX')"
  if [ "$mode" = incumbent ]; then
    command -v corosync >/dev/null && command -v corosync-cmapctl >/dev/null || die "corosync is not installed (scripts/asterisk-build.sh installs it)"
  elif [ ! -f "$MODULE_SO" ]; then
    say "WARNING: $MODULE_SO does not exist: Asterisk runs WITHOUT res_devcluster (no sharing through devclusterd)"
  fi

  # a fresh run directory (only ever wipe one this script made)
  if [ -e "$RUN" ]; then
    if [ -f "$MARKER" ] || [ -z "$(ls -A "$RUN" 2>/dev/null)" ]; then
      rm -rf "${RUN:?}"/* "${RUN:?}"/.state.lock 2>/dev/null
    else
      die "$RUN exists and is not a testbed run directory (no $(basename "$MARKER")); set DEVCLUSTER_TESTBED_RUN or remove it"
    fi
  fi
  mkdir -p "$RUN" || die "cannot create $RUN"
  touch "$MARKER"

  UP_IN_PROGRESS=1
  trap 'die "interrupted"' INT TERM HUP
  MODE=$mode N=$n DCD=$dcd DCD_COMM=$dcd_comm
  state_set MODE "$mode" N "$n" PREFIX "$PREFIX" DEVCLUSTERD "$dcd" DEVCLUSTERD_COMM "$dcd_comm" STARTED "$(date '+%F %T')"

  make_namespaces "$n"
  if [ "$mode" = devcluster ]; then
    "$DCD" keygen --output "$RUN/authkey" --force >"$RUN/keygen.log" 2>&1 || { log_tail "$RUN/keygen.log"; die "devclusterd keygen failed"; }
  fi
  for i in $(seq 1 "$n"); do
    mkdir -p "$(sdir "$i")"
    install_modules "$i" "$mode"
    write_asterisk_conf "$i" "$mode"
    if [ "$mode" = incumbent ]; then
      write_corosync_conf "$i" "$n"
    else
      write_devclusterd_conf "$i" "$n"
      ip netns exec "$(ns "$i")" "$DCD" --check-config --config "$(sdir "$i")/devclusterd.conf" \
          >"$(sdir "$i")/check-config.log" 2>&1 || { log_tail "$(sdir "$i")/check-config.log"; die "server $i: devclusterd --check-config rejected $(sdir "$i")/devclusterd.conf"; }
    fi
  done

  # daemons first, all of them, then the ring
  for i in $(seq 1 "$n"); do spawn_daemon "$i"; done
  RING_END=$((SECONDS + DAEMON_WAIT))
  wait_daemon_ring 1 "$n"
  for i in $(seq 2 "$n"); do wait_daemon_ring "$i" "$n"; done
  say "$n $(daemon_name) daemons in one ring after $(elapsed "$t0") s"

  # then the Asterisks, all at once, and wait for each
  for i in $(seq 1 "$n"); do spawn_asterisk "$i"; done
  BOOT_END=$((SECONDS + ASTERISK_WAIT)) CLUSTER_END=$((SECONDS + ASTERISK_WAIT + CLUSTER_WAIT))
  for i in $(seq 1 "$n"); do wait_asterisk_ready "$i" "$n"; done

  UP_IN_PROGRESS=0
  trap - INT TERM HUP
  state_set STATUS up
  echo "testbed up: mode=$mode servers=$n in $(elapsed "$t0") s (run directory $RUN)"
}

# do_down: stop what the state file records, then leftovers of ours, then the namespaces
do_down() {
  local n mode dcomm i p nsn comm
  local apids=() dpids=()
  if [ -f "$STATE" ]; then
    n=$(state_get N); mode=$(state_get MODE); dcomm=$(state_get DEVCLUSTERD_COMM)
    is_uint "$n" || n=9
    [ "$mode" = incumbent ] && dcomm=corosync
    for i in $(seq 1 "$n"); do
      p=$(state_get "ASTERISK_PID_$i"); [ -n "$p" ] && apids+=("$p")
      p=$(state_get "DAEMON_PID_$i"); [ -n "$p" ] && dpids+=("$p")
    done
    [ ${#apids[@]} -gt 0 ] && stop_pids asterisk "${apids[@]}"
    [ ${#dpids[@]} -gt 0 ] && [ -n "$dcomm" ] && stop_pids "$dcomm" "${dpids[@]}"
  fi
  # leftovers from a crashed run whose state is lost: only our kinds of process, started on our run dir
  for nsn in $(ip netns list 2>/dev/null | awk '{ print $1 }' | grep "^$PFX-"); do
    for p in $(ip netns pids "$nsn" 2>/dev/null); do
      comm=$(cat "/proc/$p/comm" 2>/dev/null) || continue
      if tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -qF "$RUN/" \
         && case $comm in asterisk|corosync|devclusterd*) true;; *) false;; esac; then
        say "stopping leftover $comm (pid $p) in $nsn"
        stop_pids "$comm" "$p"
      else
        say "WARNING: process $p ($comm) in namespace $nsn is not one of ours; left alone"
      fi
    done
  done
  delete_namespaces
  rm -f "$STATE" "$STATE".tmp.*
  echo "testbed down"
}

cmd_down() {
  need_root
  [ -f "$STATE" ] || ip netns list 2>/dev/null | awk '{ print $1 }' | grep -q "^$PFX-" || { echo "testbed down (nothing was up)"; return 0; }
  do_down
  if ip netns list 2>/dev/null | awk '{ print $1 }' | grep -q "^$PFX-"; then
    echo "asterisk-testbed: ERROR: could not delete every $PFX-* namespace" >&2; exit 1
  fi
}

cmd_status() {
  local i dp ap dstate astate
  if [ ! -f "$STATE" ]; then
    if ip netns list 2>/dev/null | awk '{ print $1 }' | grep -q "^$PFX-"; then
      echo "testbed down, but $PFX-* namespaces are left from an earlier run (run: $0 down)"
    else
      echo "testbed down"
    fi
    return 1
  fi
  load_state
  echo "mode=$MODE servers=$N status=$(state_get STATUS) started='$(state_get STARTED)' run=$RUN prefix=$PREFIX"
  for i in $(seq 1 "$N"); do
    dp=$(daemon_pid "$i"); ap=$(asterisk_pid "$i")
    if alive "$dp" "$(daemon_comm)"; then dstate=alive; else dstate=dead; fi
    if alive "$ap" asterisk; then astate=alive; else astate=dead; fi
    echo "server$i ns=$(ns "$i") addr=$NET.$i $(daemon_name)=${dp:--}:$dstate asterisk=${ap:--}:$astate"
  done
}

cmd_kill() { # I WHAT (both|daemon|asterisk): SIGKILL, all at once
  local i=$1 what=$2 pids=() p
  if [ "$what" != asterisk ]; then p=$(daemon_pid "$i"); alive "$p" "$(daemon_comm)" && pids+=("$p"); fi
  if [ "$what" != daemon ]; then p=$(asterisk_pid "$i"); alive "$p" asterisk && pids+=("$p"); fi
  if [ ${#pids[@]} -eq 0 ]; then echo "server $i: nothing to kill (not running)"; return 0; fi
  kill -KILL "${pids[@]}" || die "kill -9 ${pids[*]} failed"
  local killed_at; killed_at=$(now)
  local k left
  for k in $(seq 1 50); do
    left=0; for p in "${pids[@]}"; do [ -d "/proc/$p" ] && [ "$(awk '/^State:/ { print $2 }' "/proc/$p/status" 2>/dev/null)" != Z ] && left=1; done
    [ $left = 0 ] && break; sleep 0.02
  done
  echo "server $i: killed ${pids[*]} at $killed_at"
}

module_connections() { # I: res_devcluster's connection count on server I ("" when not loaded / no Asterisk)
  asterisk_alive "$1" || return 0
  ast_rx "$1" "devcluster show status" 10 2>/dev/null | sed -n 's/^=== Connections: \([0-9]*\).*/\1/p'
}

cmd_start_daemon() { # I
  local i=$1 want c0= c t0 out
  [ "$MODE" = devcluster ] && c0=$(module_connections "$i")
  stop_pids "$(daemon_comm)" "$(daemon_pid "$i")"
  spawn_daemon "$i"
  want=$(live_daemons)
  wait_daemon_ring "$i" "$want"
  wait_daemon_seen "$i"
  if [ -n "$c0" ]; then
    # a running Asterisk's res_devcluster reconnects on its own: wait (bounded) for the new connection
    t0=$SECONDS
    while :; do
      out=$(ast_rx "$i" "devcluster show status" 10 2>/dev/null)
      c=$(echo "$out" | sed -n 's/^=== Connections: \([0-9]*\).*/\1/p')
      echo "$out" | grep -q '^=== Connection: connected' && [ "${c:-0}" -gt "$c0" ] && break
      [ $((SECONDS - t0)) -ge "$CLUSTER_WAIT" ] && { echo "$out" >&2; die "server $i: res_devcluster did not reconnect to the new devclusterd within ${CLUSTER_WAIT} s"; }
      sleep 0.1
    done
  elif [ "$MODE" = incumbent ] && asterisk_alive "$i"; then
    say "server $i: note: Asterisk kept running; res_corosync may not recover from a corosync restart (check: rx $i 'corosync show members')"
  fi
  echo "server $i: $(daemon_name) up (pid $(daemon_pid "$i")), $want members"
}

cmd_start_asterisk() { # I
  local i=$1
  stop_pids asterisk "$(asterisk_pid "$i")"
  spawn_asterisk "$i"
  # incumbent: res_corosync joined the CPG group (itself listed); the others' Asterisks may be out of it
  # (res_corosync does not always reconnect after its corosync restarts), so no count is required here
  wait_asterisk_ready "$i" 1
  [ "$MODE" = incumbent ] && wait_cpg_seen "$i"
  echo "server $i: Asterisk up (pid $(asterisk_pid "$i"))"
}

# ---------------------------------------------------------------------------------------------

cmd=${1:-}
[ $# -gt 0 ] && shift
case $cmd in
  up) [ $# -ge 1 ] || usage "up: expected N"; cmd_up "$@";;
  down) [ $# -eq 0 ] || usage "down takes no arguments"; cmd_down;;
  status) [ $# -eq 0 ] || usage "status takes no arguments"; cmd_status;;
  rx)
    [ $# -eq 2 ] || usage "rx: expected I \"CLI command\""
    need_root; load_state; server_arg "$1"
    ast_rx "$1" "$2" 60
    ;;
  ami)
    [ $# -eq 1 ] || usage "ami: expected I"
    load_state; server_arg "$1"
    echo "$NET.$1 $AMI_PORT $AMI_USER $AMI_SECRET"
    ;;
  exec)
    [ $# -ge 2 ] || usage "exec: expected I CMD..."
    need_root; load_state; server_arg "$1"
    i=$1; shift
    exec ip netns exec "$(ns "$i")" "$@"
    ;;
  dc)
    [ $# -ge 2 ] || usage "dc: expected I ARGS..."
    load_state; server_arg "$1"
    [ "$MODE" = devcluster ] || { echo "asterisk-testbed: ERROR: dc needs devcluster mode (this testbed is $MODE)" >&2; exit 1; }
    i=$1; shift
    exec "$DCD" --socket "$(sdir "$i")/devclusterd.sock" "$@"
    ;;
  kill|kill-daemon|kill-asterisk)
    [ $# -eq 1 ] || usage "$cmd: expected I"
    need_root; load_state; server_arg "$1"
    case $cmd in kill) cmd_kill "$1" both;; kill-daemon) cmd_kill "$1" daemon;; *) cmd_kill "$1" asterisk;; esac
    ;;
  start|start-daemon|start-asterisk)
    [ $# -eq 1 ] || usage "$cmd: expected I"
    need_root; load_state; server_arg "$1"
    t0=$(now)
    case $cmd in
      start) stop_pids asterisk "$(asterisk_pid "$1")"; cmd_start_daemon "$1"; cmd_start_asterisk "$1";;
      start-daemon) cmd_start_daemon "$1";;
      *) cmd_start_asterisk "$1";;
    esac
    echo "server $1: ready in $(elapsed "$t0") s"
    ;;
  -h|--help|help) sed -n '/^# usage:/,/^# Exit status/p' "$0" | sed 's/^# \{0,1\}//'; exit 0;;
  '') usage;;
  *) usage "unknown command '$cmd'";;
esac
