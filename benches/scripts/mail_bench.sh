#!/usr/bin/env bash
# Mail: messages per second accepted AND durably delivered into Maildir, `ringwork serve
# smtp` against Postfix (Debian's), both writing to the same disk, driven by Postfix's
# `smtp-source` (MESSAGES messages of SIZE bytes, SESSIONS concurrent sessions, one message
# per session as MTAs do, or several with REUSE=1).
#
# ringwork answers 250 after DATA only once the message is fsynced into new/ (tmp, fsync,
# rename, fsync of new/), so smtp-source's end is the end of delivery. Postfix answers 250
# once the message is fsynced in its queue, then its queue manager delivers it with
# virtual(8) into a Maildir (fsynced there too): its time is until the last message is in
# new/. Postfix runs from a throwaway config in a temp dir (`postfix -c DIR start`),
# listening on a loopback port, delivering to one Maildir through the virtual transport
# (no Unix user needed; the same Maildir writes as `home_mailbox = Maildir/`), with
# in_flow_delay = 0 so smtpd is not throttled while the queue manager catches up.
#
# The fsync cost: a probe writes PROBE_FILES files of SIZE bytes the Maildir way (write,
# fsync, rename, fsync of the folder) on the same disk and reports the time per file, with
# and without the two fsyncs.
#
# Settings (environment):
#   MESSAGES=2000  SIZE=10240  SESSIONS=50  REUSE=0  RINGWORK_CORES=2  PORT_BASE=19725
#   ROUNDS=1  PROBE_FILES=500  WORK (default: a temp dir under target/, on the repo's disk)
#   RINGWORK_BIN (default: target/release/ringwork)
# Needs: postfix (apt-get install postfix; it provides smtp-source), root (Postfix's
# daemons run as the postfix user), cargo build --release -p ringwork-cli.
#
# The figures on a shared 2-core machine are noisy: compare the two servers within one
# run, not across runs.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
MESSAGES=${MESSAGES:-2000}
SIZE=${SIZE:-10240}
SESSIONS=${SESSIONS:-50}
REUSE=${REUSE:-0}
ROUNDS=${ROUNDS:-1}
RINGWORK_CORES=${RINGWORK_CORES:-2}
PORT_BASE=${PORT_BASE:-19725}
PROBE_FILES=${PROBE_FILES:-500}
RINGWORK_BIN=${RINGWORK_BIN:-$root/target/release/ringwork}
SMTP_SOURCE=${SMTP_SOURCE:-$(command -v smtp-source || echo /usr/sbin/smtp-source)}

[[ -x $RINGWORK_BIN ]] || { echo "error: build it: cargo build --release -p ringwork-cli" >&2; exit 1; }
[[ -x $SMTP_SOURCE ]] || { echo "error: smtp-source missing: apt-get install postfix" >&2; exit 1; }
command -v postfix >/dev/null || [[ -x /usr/sbin/postfix ]] || { echo "error: postfix missing" >&2; exit 1; }
export PATH=$PATH:/usr/sbin

mkdir -p "$root/target"
WORK=${WORK:-$(mktemp -d "$root/target/mail-bench.XXXXXX")}
chmod 755 "$WORK" # Postfix's daemons (user postfix) walk into it
cleanup() {
    [[ -n ${PF_DIR:-} && -f ${PF_DIR}/main.cf ]] && postfix -c "$PF_DIR" stop >/dev/null 2>&1 || true
    [[ -n ${RW_PID:-} ]] && kill "$RW_PID" 2>/dev/null && wait "$RW_PID" 2>/dev/null || true
    [[ -n ${KEEP:-} ]] || rm -rf "$WORK"
}
trap cleanup EXIT

wait_port() {
    for _ in $(seq 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "error: nothing listens on port $1" >&2
    return 1
}

count_new() { find "$1" -path '*/new/*' -type f 2>/dev/null | wc -l; }

now() { date +%s.%N; }

source_args() { # port
    local args=(-l "$SIZE" -m "$MESSAGES" -s "$SESSIONS" -f bench@sender.test -t user@bench.test)
    [[ $REUSE == 1 ]] && args+=(-d)
    echo "${args[@]}" "127.0.0.1:$1"
}

run_ringwork() { # round
    local port=$((PORT_BASE + 2 * $1)) dir=$WORK/ringwork-$1
    mkdir -p "$dir"
    "$RINGWORK_BIN" serve smtp --cores "$RINGWORK_CORES" --listen "tcp:$port:interface=127.0.0.1" \
        --maildir "$dir" --domain bench.test --max-message-size 1048576 2>"$dir.log" &
    RW_PID=$!
    wait_port "$port"
    local start end
    start=$(now)
    # shellcheck disable=SC2046
    "$SMTP_SOURCE" $(source_args "$port")
    end=$(now)
    local got
    got=$(count_new "$dir")
    kill "$RW_PID"; wait "$RW_PID" 2>/dev/null || true
    RW_PID=
    report ringwork "$start" "$end" "$got"
}

postfix_config() { # dir port
    local dir=$1 port=$2 uid gid
    uid=$(id -u postfix); gid=$(id -g postfix)
    mkdir -p "$dir/queue" "$dir/data" "$dir/vmail"
    chown postfix:postfix "$dir/data" "$dir/vmail"
    cat >"$dir/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $dir/queue
data_directory = $dir/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = bench.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
maillog_file = $dir/maillog
maillog_file_prefixes = $dir
virtual_mailbox_domains = bench.test
virtual_mailbox_base = $dir/vmail
virtual_mailbox_maps = static:user/
virtual_uid_maps = static:$uid
virtual_gid_maps = static:$gid
virtual_destination_concurrency_limit = 20
message_size_limit = 1048576
in_flow_delay = 0s
default_process_limit = 200
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtpd_client_message_rate_limit = 0
smtpd_peername_lookup = no
EOF
    cat >"$dir/master.cf" <<EOF
127.0.0.1:$port inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n -  0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n -  - trivial-rewrite
bounce    unix  - - n -  0 bounce
defer     unix  - - n -  0 bounce
trace     unix  - - n -  0 bounce
verify    unix  - - n -  1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -  - proxymap
smtp      unix  - - n -  - smtp
relay     unix  - - n -  - smtp
showq     unix  n - n -  - showq
error     unix  - - n -  - error
retry     unix  - - n -  - error
discard   unix  - - n -  - discard
local     unix  - n n -  - local
virtual   unix  - n n -  - virtual
anvil     unix  - - n -  1 anvil
scache    unix  - - n -  1 scache
postlog   unix-dgram n - n - 1 postlogd
EOF
}

run_postfix() { # round
    local port=$((PORT_BASE + 2 * $1 + 1))
    PF_DIR=$WORK/postfix-$1
    postfix_config "$PF_DIR" "$port"
    postfix -c "$PF_DIR" start >/dev/null 2>&1 || { cat "$PF_DIR/maillog" 2>/dev/null; postfix -c "$PF_DIR" start; }
    wait_port "$port"
    local start end got
    start=$(now)
    # shellcheck disable=SC2046
    "$SMTP_SOURCE" $(source_args "$port")
    local accepted
    accepted=$(now)
    for _ in $(seq 6000); do
        got=$(count_new "$PF_DIR/vmail")
        (( got >= MESSAGES )) && break
        sleep 0.05
    done
    end=$(now)
    postfix -c "$PF_DIR" stop >/dev/null 2>&1 || true
    echo "postfix: all accepted after $(echo "$accepted - $start" | bc) s"
    report postfix "$start" "$end" "$got"
}

report() { # name start end delivered
    local secs rate
    secs=$(echo "$3 - $2" | bc -l)
    rate=$(echo "$4 / $secs" | bc -l)
    printf '%-9s %d of %d messages of %d B in new/, %d sessions: %.2f s, %.0f messages/s\n' \
        "$1" "$4" "$MESSAGES" "$SIZE" "$SESSIONS" "$secs" "$rate"
}

fsync_probe() {
    python3 - "$WORK/probe" "$PROBE_FILES" "$SIZE" <<'EOF'
import os, sys, time
base, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = os.urandom(size)
for sync in (True, False):
    tmp, new = os.path.join(base, "tmp"), os.path.join(base, "new")
    os.makedirs(tmp, exist_ok=True); os.makedirs(new, exist_ok=True)
    dirfd = os.open(new, os.O_RDONLY)
    start = time.perf_counter()
    for i in range(n):
        path = os.path.join(tmp, f"{sync}.{i}")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, data)
        if sync: os.fsync(fd)
        os.close(fd)
        os.rename(path, os.path.join(new, f"{sync}.{i}"))
        if sync: os.fsync(dirfd)
    per = (time.perf_counter() - start) / n
    os.close(dirfd)
    label = "with fsyncs" if sync else "no fsync   "
    print(f"probe: {n} Maildir writes of {size} B {label}: {per * 1e6:.0f} us each ({1 / per:.0f}/s one at a time)")
EOF
}

echo "mail bench: $MESSAGES messages x $SIZE B, $SESSIONS sessions, reuse=$REUSE, ringwork cores=$RINGWORK_CORES, disk: $(df -P "$WORK" | awk 'NR==2 {print $1}')"
for round in $(seq "$ROUNDS"); do
    run_ringwork "$round"
    run_postfix "$round"
done
fsync_probe
