"""The `irc` package from PyPI (jaraco/irc, irc.client) against a server.

Usage: irc_package_client.py PORT [PASSWORD]
Connects until two connections are on different cores (the server says which in 002),
then: join, NAMES, channel and private messages, CTCP ACTION, modes (+o, +v, +m, +b
listing), a kick, a quit message. Prints one `ok ...` line per step; exits 1 on a failure.
"""
import re
import sys
import time

import irc.client

PORT = int(sys.argv[1])
PASSWORD = sys.argv[2] if len(sys.argv) > 2 else None
TIMEOUT = 20

reactor = irc.client.Reactor()
events = {}


def on_event(connection, event):
    events.setdefault(connection, []).append(event)


reactor.add_global_handler("all_events", on_event, -10)


def wait(connection, predicate, what):
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        for event in events.get(connection, []):
            if predicate(event):
                events[connection].remove(event)
                return event
        reactor.process_once(0.05)
    raise SystemExit("timed out waiting for %s; saw %r" % (what, [(e.type, e.arguments) for e in events.get(connection, [])]))


def connect(nick):
    connection = reactor.server().connect("127.0.0.1", PORT, nick, password=PASSWORD, ircname="jaraco " + nick)
    welcome = wait(connection, lambda e: e.type == "yourhost", "002")
    core = int(re.search(r"\(core (\d+)\)", welcome.arguments[0]).group(1))
    wait(connection, lambda e: e.type in ("endofmotd", "nomotd"), "end of MOTD")
    return connection, core


by_core = {}
extra = []
for i in range(16):
    connection, core = connect("py%d" % i)
    if core in by_core:
        extra.append(connection)
    else:
        by_core[core] = connection
    if len(by_core) >= 2:
        break
assert len(by_core) >= 2, "all connections on one core"
for connection in extra:
    connection.quit("not needed")
cores = sorted(by_core)
alice, bob = by_core[cores[0]], by_core[cores[1]]
print("ok cores %d %d" % (cores[0], cores[1]))

alice.join("#jaraco")
wait(alice, lambda e: e.type == "join" and e.source.nick == alice.get_nickname(), "alice's join")
names = wait(alice, lambda e: e.type == "namreply", "NAMES")
assert names.arguments[2] == "@" + alice.get_nickname(), names.arguments
bob.join("#jaraco")
wait(bob, lambda e: e.type == "join" and e.source.nick == bob.get_nickname(), "bob's join")
wait(alice, lambda e: e.type == "join" and e.source.nick == bob.get_nickname(), "bob's join seen by alice")
print("ok join")

alice.privmsg("#jaraco", "hello from core %d" % cores[0])
event = wait(bob, lambda e: e.type == "pubmsg", "channel message")
assert event.arguments == ["hello from core %d" % cores[0]] and event.target == "#jaraco", event
bob.privmsg(alice.get_nickname(), "private")
event = wait(alice, lambda e: e.type == "privmsg", "private message")
assert event.arguments == ["private"] and event.source.nick == bob.get_nickname(), event
alice.action("#jaraco", "dances")
event = wait(bob, lambda e: e.type == "action", "action")
assert event.arguments == ["dances"], event
bob.notice("#jaraco", "a notice")
event = wait(alice, lambda e: e.type == "pubnotice", "notice")
assert event.arguments == ["a notice"], event
print("ok messages")

alice.mode("#jaraco", "+o " + bob.get_nickname())
event = wait(bob, lambda e: e.type == "mode", "+o")
assert event.arguments == ["+o", bob.get_nickname()], event.arguments
bob.mode("#jaraco", "+b bad!*@*")
event = wait(alice, lambda e: e.type == "mode" and e.arguments[0] == "+b", "+b")
assert event.arguments == ["+b", "bad!*@*"], event.arguments
alice.mode("#jaraco", "b")
event = wait(alice, lambda e: e.type == "banlist", "ban list")
assert event.arguments[1] == "bad!*@*", event.arguments
wait(alice, lambda e: e.type == "endofbanlist", "end of ban list")
print("ok modes")

alice.kick("#jaraco", bob.get_nickname(), "bye bob")
event = wait(bob, lambda e: e.type == "kick", "kick")
assert event.arguments == [bob.get_nickname(), "bye bob"], event.arguments
bob.join("#jaraco")
wait(bob, lambda e: e.type == "join" and e.source.nick == bob.get_nickname(), "rejoin")
print("ok kick")

alice.quit("farewell")
event = wait(bob, lambda e: e.type == "quit", "quit")
assert event.source.nick == alice.get_nickname() and event.arguments == ["Quit: farewell"], event
print("ok quit")
bob.quit("done")
