"""Connect with Twisted's SRVConnector, asking one nameserver, and print
each target it tries: "failed HOST PORT" or "connected HOST PORT".

Usage: twisted_srv.py NAMESERVER_PORT SERVICE DOMAIN ATTEMPTS [DEFAULT_PORT]

After a failed attempt it asks the connector for its next target: it forgets
the TCP connector of the target that failed and calls connect() again, so that
pickServer draws the next one of its round (connect() alone, as a
ReconnectingClientFactory calls it, would retry the same target). It stops
after ATTEMPTS failures or at the first connection.
"""
import sys

from twisted.internet import protocol, reactor
from twisted.names import client, srvconnect

port = int(sys.argv[1])
service, domain, attempts = sys.argv[2], sys.argv[3], int(sys.argv[4])
default = int(sys.argv[5]) if len(sys.argv) > 5 else None

# The SRV lookup and the targets' addresses both go to the test's server.
resolver = client.createResolver(servers=[("127.0.0.1", port)])
client.theResolver = resolver
reactor.installResolver(resolver)


class Factory(protocol.ClientFactory):
    failures = 0

    def buildProtocol(self, addr):
        print("connected", connector.host, connector.port, flush=True)
        reactor.callLater(0, reactor.stop)
        return protocol.Protocol()

    def clientConnectionFailed(self, c, reason):
        print("failed", getattr(connector, "host", None), getattr(connector, "port", None),
              reason.getErrorMessage().replace("\n", " "), flush=True)
        self.failures += 1
        if self.failures >= attempts or connector.servers is None:
            reactor.callLater(0, reactor.stop)
        else:
            connector.connector = None
            reactor.callLater(0, connector.connect)


connector = srvconnect.SRVConnector(reactor, service, domain, Factory(), defaultPort=default)
connector.connect()
reactor.callLater(30, reactor.stop)
reactor.run()
