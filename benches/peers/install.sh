#!/usr/bin/env bash
# Installs the toolchains of the comparison peers and builds them into benches/peers/bin/.
#
#   benches/peers/install.sh            # apt (if something is missing) + build every peer
#   NO_APT=1 benches/peers/install.sh   # build only, with what is installed
#   PEERS="go libuv" benches/peers/install.sh
#
# Idempotent. Debian/Ubuntu, as root for apt (skipped when every package is installed).
# Every peer whose toolchain is missing or whose build fails is reported by name and
# skipped, never silently; the summary lists built / missing-with-reason. Exits 0 even then:
# a missing peer never affects ringwork's own build, which this script does not touch
# (`cargo build --release -p ringwork-cli --bin ringwork` is the runner's job);
# the comparison runner and smoke.sh skip (and name) the servers that are not built.
# Rust peers build with their own Cargo.lock (`--locked`) into $PEERS_TARGET_DIR
# (default target/peers/ under the repository root), then are copied into bin/.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=$here/bin
PEERS=${PEERS:-"go libuv tokio monoio uring-bare nginx"}
PEERS_TARGET_DIR=${PEERS_TARGET_DIR:-$root/target/peers}
NICE=${NICE:-nice -n 10}
packages=(golang-go libuv1-dev nginx-light wrk build-essential pkg-config)

built=()
missing=()
note_built() { built+=("$1"); echo "== $1: built" >&2; }
note_missing() { missing+=("$1: $2"); echo "== $1: SKIPPED: $2" >&2; }

# --- packages -------------------------------------------------------------------------------
if [[ ${NO_APT:-0} != 1 ]]; then
    absent=()
    for p in "${packages[@]}"; do
        # nginx-light is satisfied by any nginx package that provides the binary.
        if [[ $p == nginx-light ]]; then
            { command -v nginx || [[ -x /usr/sbin/nginx ]]; } >/dev/null 2>&1 && continue
        fi
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || absent+=("$p")
    done
    if ((${#absent[@]} == 0)); then
        echo "apt: all of ${packages[*]} installed" >&2
    elif ! command -v apt-get >/dev/null 2>&1; then
        echo "apt: no apt-get; missing packages: ${absent[*]} (peers needing them are skipped)" >&2
    elif ((EUID != 0)); then
        echo "apt: not root; missing packages: ${absent[*]} (peers needing them are skipped)" >&2
    else
        echo "apt: installing ${absent[*]}" >&2
        export DEBIAN_FRONTEND=noninteractive
        { apt-get update -qq && apt-get install -y -qq "${packages[@]}"; } >&2 ||
            echo "apt: install failed (peers whose toolchain is missing are skipped)" >&2
        # Debian starts the nginx service on install: the peers run their own nginx.
        if command -v systemctl >/dev/null 2>&1; then systemctl disable --now nginx >/dev/null 2>&1 || true; fi
        if [[ -f /run/nginx.pid ]]; then nginx -s quit >/dev/null 2>&1 || true; fi
    fi
fi
mkdir -p "$bin"

# --- peers ----------------------------------------------------------------------------------
build_go() {
    command -v go >/dev/null 2>&1 || { note_missing go "no go toolchain (apt: golang-go)"; return; }
    local log=$bin/.go-build.log
    # Standard library only: no module downloads, no toolchain switching.
    if (cd "$here/go" && export GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=mod &&
        $NICE go build -o "$bin/go-echo" ./echo && $NICE go build -o "$bin/go-http" ./http) >"$log" 2>&1; then
        note_built "go ($(go version | awk '{ print $3 }'))"
    else
        note_missing go "go build failed (see $log)"; tail -n 20 "$log" >&2
    fi
}

build_libuv() {
    command -v cc >/dev/null 2>&1 || { note_missing libuv "no C compiler (apt: build-essential)"; return; }
    pkg-config --exists libuv 2>/dev/null || { note_missing libuv "no libuv (apt: libuv1-dev, pkg-config)"; return; }
    local log=$bin/.libuv-build.log
    if $NICE make -s -C "$here/libuv" BIN="$bin" >"$log" 2>&1; then
        note_built "libuv ($(pkg-config --modversion libuv), $(cc --version | head -n 1))"
    else
        note_missing libuv "make failed (see $log)"; tail -n 20 "$log" >&2
    fi
}

copy_extras() { # release-folder binary-prefix: the optional binaries a peer may build
    local extra
    for extra in ws-echo h2; do
        if [[ -f $1/$2-$extra ]]; then
            cp -f "$1/$2-$extra" "$bin/" || return 1
        fi
    done
}

build_rust() { # project-folder binary-prefix
    local dir=$1 prefix=$2 log=$bin/.$1-build.log
    command -v cargo >/dev/null 2>&1 || { note_missing "$dir" "no cargo"; return; }
    if (cd "$here/$dir" && CARGO_TARGET_DIR=$PEERS_TARGET_DIR/$dir $NICE cargo build --release --locked) >"$log" 2>&1 &&
        cp -f "$PEERS_TARGET_DIR/$dir/release/$prefix-echo" "$PEERS_TARGET_DIR/$dir/release/$prefix-http" "$bin/" &&
        copy_extras "$PEERS_TARGET_DIR/$dir/release" "$prefix"; then
        note_built "$dir ($(rustc --version | awk '{ print $1, $2 }'))"
    else
        note_missing "$dir" "cargo build failed (see $log)"; tail -n 20 "$log" >&2
    fi
}

link_nginx() {
    local nginx
    nginx=$(command -v nginx 2>/dev/null || true)
    [[ -z $nginx && -x /usr/sbin/nginx ]] && nginx=/usr/sbin/nginx
    [[ -n $nginx ]] || { note_missing nginx "no nginx (apt: nginx-light)"; return; }
    ln -sfn "$nginx" "$bin/nginx"
    note_built "nginx ($("$nginx" -v 2>&1 | sed 's/^nginx version: //'), system package, linked)"
}

for peer in $PEERS; do
    case $peer in
    go) build_go ;;
    libuv) build_libuv ;;
    tokio) build_rust tokio tokio ;;
    monoio) build_rust monoio monoio ;;
    uring-bare) build_rust uring-bare uring-bare ;;
    nginx) link_nginx ;;
    *) note_missing "$peer" "unknown peer" ;;
    esac
done
command -v wrk >/dev/null 2>&1 || echo "note: no wrk (apt: wrk); smoke.sh falls back to ringwork-load" >&2

echo
echo "peers built into $bin:"
for b in "${built[@]}"; do echo "  built:   $b"; done
for m in "${missing[@]}"; do echo "  MISSING: $m"; done
((${#built[@]} > 0)) || echo "  (no peer built)"
exit 0
