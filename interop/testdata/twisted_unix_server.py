#!/usr/bin/python3
"""A Twisted UNIX echo server guarded by Twisted's lock file.

Usage: twisted_unix_server.py PATH

Listens with serverFromString(reactor, "unix:PATH:lockfile=1"), echoes every
byte it receives, and prints "ready" on stdout once it is listening. If it
cannot listen (another live process holds PATH.lock) it prints
"error: ExceptionType: message" and exits with status 1.

It stops, removing its socket and lock as Twisted does, when its stdin is
closed, so that it does not outlive the test that started it; a test that
wants a stale lock and socket left behind kills it with SIGKILL instead.
Run it with Debian's /usr/bin/python3, which has python3-twisted.
"""

import os
import sys
import threading

from twisted.internet import protocol, reactor
from twisted.internet.endpoints import quoteStringArgument, serverFromString


class Echo(protocol.Protocol):
    def dataReceived(self, data):
        self.transport.write(data)


def main():
    path = sys.argv[1]
    status = {"code": 0}
    endpoint = serverFromString(reactor, "unix:%s:lockfile=1" % quoteStringArgument(path))
    d = endpoint.listen(protocol.Factory.forProtocol(Echo))

    def listening(port):
        print("ready %d" % os.getpid(), flush=True)

    def failed(failure):
        print("error: %s: %s" % (failure.type.__name__, failure.value), flush=True)
        status["code"] = 1
        # listen fails before reactor.run when the lock is taken.
        reactor.callWhenRunning(reactor.stop)

    d.addCallbacks(listening, failed)

    def watch_stdin():
        sys.stdin.read()
        reactor.callFromThread(reactor.stop)

    threading.Thread(target=watch_stdin, daemon=True).start()
    reactor.run()
    sys.exit(status["code"])


if __name__ == "__main__":
    main()
