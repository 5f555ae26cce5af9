package main

import (
	"strconv"

	"golang.org/x/sys/unix"
)

// reloadingState is the sd_notify message that starts a restart:
// RELOADING=1 with the CLOCK_MONOTONIC time in microseconds, which
// systemd 253 and later want with it for a Type=notify-reload unit (and
// older ones ignore); READY=1 ends it.
func reloadingState() string {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return "RELOADING=1"
	}
	return "RELOADING=1\nMONOTONIC_USEC=" + strconv.FormatInt(ts.Nano()/1000, 10)
}
