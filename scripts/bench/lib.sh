# shellcheck shell=bash
# Shared helpers of the benchmark scripts (sourced).

# ensure_package COMMAND PACKAGE: installs Debian's PACKAGE when COMMAND is missing, without
# starting its system service (a temporary policy-rc.d forbids it); the benchmarks run their
# own instance.
ensure_package() {
  command -v "$1" >/dev/null 2>&1 && return 0
  echo "installing $2 (the system service is not started: policy-rc.d)" >&2
  export DEBIAN_FRONTEND=noninteractive
  local made_policy_rc=0 rc=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    # exit 101 = "action forbidden": the maintainer scripts must not start the system service
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    made_policy_rc=1
  fi
  { apt-get -o DPkg::Lock::Timeout=600 update -qq &&
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$2"; } || rc=$?
  [ "$made_policy_rc" = 1 ] && rm -f /usr/sbin/policy-rc.d
  [ "$rc" = 0 ] || { echo "installing $2 failed ($rc)" >&2; return 1; }
}
ensure_postgrey() { ensure_package postgrey postgrey; }

# build_load_tools SHARED_BENCH_DIR TOOLS_DIR: policy_load and dunno_server with rustc -O.
build_load_tools() {
  local t
  mkdir -p "$2"
  for t in policy_load dunno_server; do
    if [ ! -x "$2/$t" ] || [ "$1/$t.rs" -nt "$2/$t" ]; then
      echo "building $t with rustc -O" >&2
      rustc -O --edition 2021 -o "$2/$t" "$1/$t.rs"
    fi
  done
}

# wait_port PORT: until something accepts on 127.0.0.1:PORT (polls every 0.1 s, 10 s at most).
wait_port() {
  local _
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "nothing listens on 127.0.0.1:$1" >&2
  return 1
}
