//go:build !linux

package main

// reloadingState: only systemd (Linux) reads sd_notify's RELOADING=1 and
// wants the monotonic time with it; elsewhere it is never sent.
func reloadingState() string { return "RELOADING=1" }
