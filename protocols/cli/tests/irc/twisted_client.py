"""Twisted's own IRC client (twisted.words.protocols.irc.IRCClient) against a server.

Usage: twisted_client.py PORT [PASSWORD]
Connects clients until two are on different cores of the server (it says which in 002),
then: join, channel and private messages, a mode, a topic, a kick, a rejoin, a quit.
Prints one `ok ...` line per step; exits 1 on a timeout or a wrong event.
"""
import re
import sys

from twisted.internet import defer, protocol, reactor
from twisted.words.protocols import irc

PORT = int(sys.argv[1])
PASSWORD = sys.argv[2] if len(sys.argv) > 2 else None
TIMEOUT = 20


class Client(irc.IRCClient):
    def __init__(self, nick):
        self.nickname = nick
        self.username = nick
        self.realname = "Twisted " + nick
        self.password = PASSWORD
        self.events = []
        self.waiters = []
        self.core = None

    def record(self, *event):
        self.events.append(event)
        for waiter in list(self.waiters):
            predicate, d = waiter
            if predicate(event):
                self.waiters.remove(waiter)
                d.callback(event)

    def wait(self, predicate):
        for event in self.events:
            if predicate(event):
                self.events.remove(event)
                return defer.succeed(event)
        d = defer.Deferred()
        self.waiters.append((predicate, d))
        d.addTimeout(TIMEOUT, reactor)
        return d

    def yourHost(self, info):
        match = re.search(r"\(core (\d+)\)", info)
        self.core = int(match.group(1)) if match else None
        self.record("yourHost", self.core)

    def signedOn(self):
        self.record("signedOn", self.nickname)

    def joined(self, channel):
        self.record("joined", channel)

    def userJoined(self, user, channel):
        self.record("userJoined", user, channel)

    def privmsg(self, user, channel, message):
        self.record("privmsg", user.split("!")[0], channel, message)

    def action(self, user, channel, data):
        self.record("action", user.split("!")[0], channel, data)

    def modeChanged(self, user, channel, set, modes, args):
        self.record("mode", user.split("!")[0], channel, set, modes, tuple(args))

    def topicUpdated(self, user, channel, newTopic):
        self.record("topic", user, channel, newTopic)

    def kickedFrom(self, channel, kicker, message):
        self.record("kickedFrom", channel, kicker, message)

    def userQuit(self, user, quitMessage):
        self.record("userQuit", user, quitMessage)

    def irc_ERR_NICKNAMEINUSE(self, prefix, params):
        self.record("433", params[1])


class Factory(protocol.ClientFactory):
    def __init__(self, nick, ready):
        self.nick = nick
        self.ready = ready

    def buildProtocol(self, addr):
        client = Client(self.nick)
        client.factory = self
        self.client = client
        return client

    def clientConnectionFailed(self, connector, reason):
        self.ready.errback(reason)


@defer.inlineCallbacks
def connect(nick):
    ready = defer.Deferred()
    factory = Factory(nick, ready)
    reactor.connectTCP("127.0.0.1", PORT, factory)
    # Wait for signedOn through the client once it exists.
    while not hasattr(factory, "client"):
        d = defer.Deferred()
        reactor.callLater(0.01, d.callback, None)
        yield d
    # 001 (signedOn) comes before 002, which names the core.
    yield factory.client.wait(lambda e: e[0] == "yourHost")
    return factory.client


@defer.inlineCallbacks
def main():
    clients = []
    by_core = {}
    for i in range(16):
        client = yield connect("tw%d" % i)
        clients.append(client)
        by_core.setdefault(client.core, client)
        if len(by_core) >= 2:
            break
    assert len(by_core) >= 2, "all clients on one core: %r" % list(by_core)
    alice, bob = by_core[sorted(by_core)[0]], by_core[sorted(by_core)[1]]
    for extra in clients:
        if extra is not alice and extra is not bob:
            extra.quit("not needed")
    print("ok cores %d %d" % (alice.core, bob.core))

    # A nick in use is refused.
    alice.setNick(bob.nickname)
    yield alice.wait(lambda e: e[0] == "433")
    print("ok nick in use")

    alice.join("#twisted")
    yield alice.wait(lambda e: e == ("joined", "#twisted"))
    bob.join("#twisted")
    yield bob.wait(lambda e: e == ("joined", "#twisted"))
    yield alice.wait(lambda e: e[0] == "userJoined" and e[1] == bob.nickname)
    print("ok join")

    alice.msg("#twisted", "hello from core %d" % alice.core)
    event = yield bob.wait(lambda e: e[0] == "privmsg")
    assert event == ("privmsg", alice.nickname, "#twisted", "hello from core %d" % alice.core), event
    bob.msg(alice.nickname, "psst")
    event = yield alice.wait(lambda e: e[0] == "privmsg")
    assert event[1:] == (bob.nickname, alice.nickname, "psst"), event
    alice.describe("#twisted", "waves")
    event = yield bob.wait(lambda e: e[0] == "action")
    assert event[1:] == (alice.nickname, "#twisted", "waves"), event
    print("ok messages")

    alice.mode("#twisted", True, "v", user=bob.nickname)
    event = yield bob.wait(lambda e: e[0] == "mode")
    assert event[1:] == (alice.nickname, "#twisted", True, "v", (bob.nickname,)), event
    alice.mode("#twisted", True, "m")
    event = yield bob.wait(lambda e: e[0] == "mode" and e[4] == "m")
    print("ok modes")

    alice.topic("#twisted", "a topic from Twisted")
    event = yield bob.wait(lambda e: e[0] == "topic")
    assert event[2:] == ("#twisted", "a topic from Twisted"), event
    print("ok topic")

    alice.kick("#twisted", bob.nickname, "out you go")
    event = yield bob.wait(lambda e: e[0] == "kickedFrom")
    assert event[1:] == ("#twisted", alice.nickname, "out you go"), event
    print("ok kick")

    bob.join("#twisted")
    yield bob.wait(lambda e: e == ("joined", "#twisted"))
    alice.quit("see you")
    event = yield bob.wait(lambda e: e[0] == "userQuit")
    assert event[1:] == (alice.nickname, "Quit: see you"), event
    print("ok quit")
    bob.quit("done")


def run():
    failures = []

    def done(result):
        if isinstance(result, Exception) or hasattr(result, "getTraceback"):
            failures.append(result)
            print("FAIL", result.getTraceback() if hasattr(result, "getTraceback") else result)
        reactor.callLater(0.2, reactor.stop)

    d = main()
    d.addBoth(done)
    reactor.callLater(60, lambda: (failures.append("timeout"), reactor.stop()))
    reactor.run()
    sys.stdout.flush()
    sys.exit(1 if failures else 0)


run()
