#!/usr/bin/env bash
# The DNS benchmarks' workload (dns_bench.sh, dns_callgrind.sh): sourced, defines
# write_dns_workload DIR HOSTS, which writes DIR/example.zone (example.com. with SOA, NS,
# MX, TXT, a CNAME and HOSTS A records host0..) and DIR/queries.txt (20,000 queries in
# dnsperf's format: 10% NXDOMAIN names, 5% a CNAME chain, 5% MX, the rest A for existing
# hosts; shuffled with a fixed seed, so every run and every server gets the same queries).

write_dns_workload() {
    local dir=$1 hosts=$2
    {
        echo '$ORIGIN example.com.'
        echo '$TTL 3600'
        echo '@ IN SOA ns1 hostmaster 2026120701 7200 900 604800 300'
        echo '  IN NS ns1'
        echo '  IN MX 10 mail'
        echo '  IN TXT "v=spf1 -all"'
        echo 'ns1 IN A 192.0.2.1'
        echo 'mail IN A 192.0.2.2'
        echo 'www IN CNAME host1'
        for ((i = 0; i < hosts; i++)); do
            echo "host$i IN A 10.$((i / 65536 % 256)).$((i / 256 % 256)).$((i % 256))"
        done
    } >"$dir/example.zone"
    python3 - "$dir/queries.txt" "$hosts" <<'PY'
import random, sys
path, hosts = sys.argv[1], int(sys.argv[2])
rng = random.Random(7)
lines = []
for i in range(20000):
    r = rng.random()
    if r < 0.10:
        lines.append(f"nothing{i}.example.com A")
    elif r < 0.15:
        lines.append("www.example.com A")
    elif r < 0.20:
        lines.append("example.com MX")
    else:
        lines.append(f"host{rng.randrange(hosts)}.example.com A")
open(path, "w").write("\n".join(lines) + "\n")
PY
}
