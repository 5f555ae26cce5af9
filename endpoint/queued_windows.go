package endpoint

import "net"

// listenQueued: Windows has no poll(2) on a listening socket that Go
// exposes; Service.Queued is not called there.
func listenQueued(net.Listener) bool { return false }
