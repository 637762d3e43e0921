#!/usr/bin/env bash
# SSH: `ringwork serve ssh` against OpenSSH's sshd (Debian's), both on loopback, the same
# OpenSSH client for both.
#
# For each of ROUNDS rounds and each server of SERVERS, in that order:
#   bulk:     `ssh -N -L SOCK:127.0.0.1:SINK` (cipher CIPHER), then BULK_MIB MiB written
#             through the forward to a sink that counts them; MB/s from the first byte to
#             the sink's answer.
#   sessions: SESSIONS sequential `ssh host true` (a new TCP connection, key exchange,
#             publickey login, exec and exit each); sessions/s. The client's CPU is in
#             this figure too (the same for both servers).
# ringwork runs with --cores 1 (one reactor thread; the child of each exec is a process);
# sshd forks a process per connection, as it always does. Pin with SERVER_CPU/CLIENT_CPU
# when the machine is quiet; on a shared machine the figures are noisy.
#
# Settings (environment): SERVERS="ringwork sshd" ROUNDS=3 BULK_MIB=512 SESSIONS=50
#   CIPHER=chacha20-poly1305@openssh.com PORT_BASE=19620 RINGWORK_BIN (default:
#   target/release/ringwork) SSHD=/usr/sbin/sshd
# Needs: openssh-client, openssh-server, python3 (scripts/install-ssh-test-deps.sh).
set -euo pipefail

SERVERS=${SERVERS:-"ringwork sshd"}
ROUNDS=${ROUNDS:-3}
BULK_MIB=${BULK_MIB:-512}
SESSIONS=${SESSIONS:-50}
CIPHER=${CIPHER:-chacha20-poly1305@openssh.com}
PORT_BASE=${PORT_BASE:-19620}
RINGWORK_BIN=${RINGWORK_BIN:-target/release/ringwork}
SSHD=${SSHD:-/usr/sbin/sshd}

dir=$(mktemp -d)
server_pid=
cleanup() {
    [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT

ssh-keygen -q -t ed25519 -N '' -f "$dir/id" -C bench
ssh-keygen -q -t ed25519 -N '' -f "$dir/host" -C host
cp "$dir/id.pub" "$dir/authorized_keys"
mkdir -p /run/sshd
user=$(id -un)

start_server() { # name port
    case $1 in
        ringwork)
            "$RINGWORK_BIN" serve ssh --cores 1 --listen "tcp:$2:interface=127.0.0.1" \
                --host-key "$dir/host" --authorized-keys "$dir/authorized_keys" \
                2>"$dir/server.log" &
            ;;
        sshd)
            cat >"$dir/sshd_config" <<CONF
Port $2
ListenAddress 127.0.0.1
HostKey $dir/host
AuthorizedKeysFile $dir/authorized_keys
PidFile none
UsePAM no
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
CONF
            "$SSHD" -D -e -f "$dir/sshd_config" 2>"$dir/server.log" &
            ;;
    esac
    server_pid=$!
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then return; fi
        sleep 0.05
    done
    echo "server $1 did not start" >&2
    cat "$dir/server.log" >&2
    exit 1
}

ssh_opts() { # port
    echo "-F /dev/null -o BatchMode=yes -o IdentitiesOnly=yes -o StrictHostKeyChecking=no" \
        "-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -c $CIPHER -i $dir/id -p $1"
}

bulk() { # port -> MB/s
    local port=$1 sock=$dir/fwd.sock sink_port=$(( $1 + 1 ))
    rm -f "$sock"
    python3 - "$sink_port" >"$dir/sink.out" <<'PY' &
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1)
c, _ = s.accept(); n = 0
while True:
    d = c.recv(1 << 20)
    if not d: break
    n += len(d)
c.sendall(str(n).encode()); c.close()
PY
    local sink=$!
    # shellcheck disable=SC2046
    ssh $(ssh_opts "$port") -N -L "$sock:127.0.0.1:$sink_port" "$user@127.0.0.1" &
    local tunnel=$!
    for _ in $(seq 200); do [[ -S $sock ]] && break; sleep 0.05; done
    python3 - "$sock" "$BULK_MIB" <<'PY'
import socket, sys, time
c = socket.socket(socket.AF_UNIX); c.connect(sys.argv[1])
chunk = bytes(range(256)) * 4096; total = int(sys.argv[2]) << 20
start = time.monotonic(); sent = 0
while sent < total:
    c.sendall(chunk); sent += len(chunk)
c.shutdown(socket.SHUT_WR)
got = int(c.recv(64)); elapsed = time.monotonic() - start
assert got == total, (got, total)
print(f"{total / elapsed / 1e6:.1f}")
PY
    kill "$tunnel" "$sink" 2>/dev/null || true
    wait "$sink" 2>/dev/null || true
}

sessions() { # port -> sessions/s
    local start end
    start=$(date +%s.%N)
    for _ in $(seq "$SESSIONS"); do
        # shellcheck disable=SC2046
        ssh $(ssh_opts "$1") "$user@127.0.0.1" true
    done
    end=$(date +%s.%N)
    python3 -c "print(f'{$SESSIONS / ($end - $start):.1f}')"
}

echo "round server bulk_MB/s sessions/s"
port=$PORT_BASE
for round in $(seq "$ROUNDS"); do
    for server in $SERVERS; do
        port=$(( port + 2 ))
        start_server "$server" "$port"
        mbs=$(bulk "$port")
        sps=$(sessions "$port")
        kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=
        echo "$round $server $mbs $sps"
    done
done
