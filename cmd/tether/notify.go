package main

import (
	"net"
	"os"
)

// sdNotify tells the service manager about tether's state, as systemd's
// sd_notify(3) does: one datagram to the socket that NOTIFY_SOCKET names
// (an abstract one if it begins with '@'), for a Type=notify unit. Without
// NOTIFY_SOCKET it does nothing. Errors are returned for the log, never
// fatal: the manager, not the service, decides what a missed one means.
func sdNotify(state string) error {
	name := os.Getenv("NOTIFY_SOCKET")
	if name == "" {
		return nil
	}
	if name[0] == '@' {
		name = "\x00" + name[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write([]byte(state))
	return err
}
