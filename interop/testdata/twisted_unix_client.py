#!/usr/bin/python3
"""A Twisted UNIX client that checks the server's lock file.

Usage: twisted_unix_client.py PATH MESSAGE

Connects with clientFromString(reactor, "unix:PATH:lockfile=1:timeout=10"),
which refuses a socket whose PATH.lock has no live owner, sends MESSAGE,
reads until the server closes the connection, and prints

  received: JSON-STRING

(what it read, as a JSON string), exiting 0. If it cannot connect, it
prints "error: ExceptionType: message" and exits with status 1. It gives up
after 15 seconds.
Run it with Debian's /usr/bin/python3, which has python3-twisted.
"""

import json
import sys

from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import (
    clientFromString,
    connectProtocol,
    quoteStringArgument,
)


class Talk(protocol.Protocol):
    def __init__(self, message):
        self.message = message
        self.received = b""
        self.done = defer.Deferred()

    def connectionMade(self):
        self.transport.write(self.message)

    def dataReceived(self, data):
        self.received += data

    def connectionLost(self, reason):
        self.done.callback(self.received)


def main():
    path, message = sys.argv[1], sys.argv[2].encode()
    status = {"code": 1}
    endpoint = clientFromString(
        reactor, "unix:%s:lockfile=1:timeout=10" % quoteStringArgument(path)
    )
    d = connectProtocol(endpoint, Talk(message))
    d.addCallback(lambda proto: proto.done)

    def received(data):
        print("received: " + json.dumps(data.decode("utf-8", "replace")), flush=True)
        status["code"] = 0

    def failed(failure):
        print("error: %s: %s" % (failure.type.__name__, failure.value), flush=True)

    d.addCallbacks(received, failed)
    d.addBoth(lambda _: reactor.stop())

    def give_up():
        print("error: timed out", flush=True)
        reactor.stop()

    timer = reactor.callLater(15, give_up)
    d.addBoth(lambda _: timer.active() and timer.cancel())
    reactor.run()
    sys.exit(status["code"])


if __name__ == "__main__":
    main()
