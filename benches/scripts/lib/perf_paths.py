"""Where a process's CPU time goes, by code path, from a `perf record -e cpu-clock -g` file.

Each sample is put in the first path below whose test its call chain passes (the chain read
from the sampled function outwards), so a sample counts once:

- user: the sampled instruction is in user space.
- peer_rx_wake: the loopback receive of the peer's socket waking the peer (its socket's
  wait queue: `sock_def_readable`, io_uring's poll wake-up, `try_to_wake_up`) — a send on
  loopback runs the receiving socket's TCP input on the sender's CPU (`process_backlog` in
  the softirq the send raises), so that cost is the sender's.
- peer_rx: the rest of that receive (IP and TCP input, ACK processing, queueing the data).
- own_backlog: packets for this process's sockets that arrived while a socket was locked,
  processed at `release_sock`.
- send_xmit: the send below TCP: building and transmitting the segment (`__tcp_transmit_skb`
  down to `loopback_xmit`).
- send: the rest of `tcp_sendmsg` (copying the bytes into a new skb, timers, accounting).
- recv: `tcp_recvmsg` (copying out, freeing the skb, window updates).
- sched: scheduling and wake-ups outside the paths above (sleeping in a wait, being woken).
- epoll: epoll's own work (an epoll server's `epoll_wait`, outside sleeping in it).
- irq: interrupts (timer ticks, IPIs) that were not part of a path above.
- io_uring: io_uring's own work outside the paths above: submitting SQEs, running task
  work, posting CQEs, the enter.
- syscall: system call entry and exit.
- kernel_other: the rest of the kernel.
"""

import subprocess

PEER_RX = ("process_backlog", "__netif_receive_skb", "__netif_receive_skb_one_core",
           "net_rx_action")
WAKE = ("sock_def_readable", "io_poll_wake", "try_to_wake_up", "__wake_up_common",
        "__wake_up_sync_key", "io_req_local_work_add", "tcp_data_ready")
SEND_XMIT = ("__tcp_transmit_skb", "ip_queue_xmit", "__ip_queue_xmit", "ip_finish_output2",
             "__dev_queue_xmit", "loopback_xmit")
SCHED = ("schedule", "__schedule", "schedule_hrtimeout_range", "io_cqring_wait",
         "finish_task_switch", "pick_next_task_fair", "try_to_wake_up", "do_idle")
EPOLL = ("do_epoll_wait", "ep_poll", "ep_send_events", "do_epoll_ctl")
IRQ_PREFIXES = ("asm_sysvec", "sysvec_", "__sysvec", "irq_exit", "hrtimer_interrupt")
SYSCALL = ("entry_SYSCALL_64", "do_syscall_64", "syscall_exit_to_user_mode",
           "entry_SYSCALL_64_after_hwframe")


def classify(user, chain):
    """The path of one sample: `user` when its ip is in user space; `chain` its kernel
    function names, sampled function first."""
    if user:
        return "user"
    names = set(chain)
    if names.intersection(PEER_RX):
        return "peer_rx_wake" if names.intersection(WAKE) else "peer_rx"
    if "__release_sock" in names or "tcp_v4_do_rcv" in names:
        return "own_backlog"
    if names.intersection(SEND_XMIT):
        return "send_xmit"
    if "tcp_sendmsg" in names or "tcp_sendmsg_locked" in names:
        return "send"
    if "tcp_recvmsg" in names or "tcp_recvmsg_locked" in names:
        return "recv"
    if names.intersection(SCHED):
        return "sched"
    if names.intersection(EPOLL):
        return "epoll"
    if any(n.startswith(IRQ_PREFIXES) for n in chain):
        return "irq"
    if any(n.startswith(("io_", "__io_")) for n in chain):
        return "io_uring"
    if names.intersection(SYSCALL):
        return "syscall"
    return "kernel_other"


def samples(path):
    """(user, chain) of each sample of a perf.data file."""
    out = subprocess.run(["perf", "script", "-i", path, "-F", "ip,sym"], capture_output=True,
                         text=True, check=False).stdout
    chain, leaf = [], None
    for line in out.splitlines() + [""]:
        fields = line.split()
        if not fields:
            if leaf is not None:
                yield leaf < 0xFFFF800000000000, chain
            chain, leaf = [], None
            continue
        try:
            ip = int(fields[0], 16)
        except ValueError:
            continue
        if leaf is None:
            leaf = ip
        if ip >= 0xFFFF800000000000 and len(fields) > 1:
            chain.append(fields[1].split("+")[0])


def breakdown(path):
    """Samples per path of a perf.data file."""
    counts = {}
    for user, chain in samples(path):
        name = classify(user, chain)
        counts[name] = counts.get(name, 0) + 1
    return counts


if __name__ == "__main__":
    import sys
    for path in sys.argv[1:]:
        counts = breakdown(path)
        total = sum(counts.values()) or 1
        print(path + ": " + " ".join(f"{k}={100 * v / total:.1f}%" for k, v in
                                     sorted(counts.items(), key=lambda kv: -kv[1])))
