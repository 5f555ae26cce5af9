"""Serve Twisted's haproxy: wrapper for TestHAProxyTwisted.

Listens on haproxy:tcp:0:interface=127.0.0.1, prints the port, and answers
the first data of each connection (which Twisted delivers once the PROXY
header has been read) with one JSON line: what getPeer() and getHost()
say. A connection whose header Twisted rejects is closed without a word.
"""
import json

from twisted.internet import address, endpoints, protocol, reactor


def describe(a):
    if isinstance(a, (address.IPv4Address, address.IPv6Address)):
        return {"kind": a.type, "host": a.host, "port": a.port}
    if isinstance(a, address.UNIXAddress):
        name = a.name
        if isinstance(name, bytes):
            name = name.decode("latin-1")
        return {"kind": "UNIX", "name": name}
    return {"kind": type(a).__name__}


class Report(protocol.Protocol):
    def dataReceived(self, data):
        t = self.transport
        line = json.dumps({"peer": describe(t.getPeer()), "host": describe(t.getHost())})
        t.write(line.encode() + b"\n")
        t.loseConnection()


def listening(port):
    print(port.getHost().port, flush=True)


def failed(f):
    print("error", f.getErrorMessage(), flush=True)
    reactor.stop()


ep = endpoints.serverFromString(reactor, "haproxy:tcp:0:interface=127.0.0.1")
ep.listen(protocol.Factory.forProtocol(Report)).addCallbacks(listening, failed)
reactor.run()
