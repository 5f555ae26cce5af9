package main

// reloadingState: Windows has no restarts (tableflip does not support it)
// and no sd_notify; this is never sent.
func reloadingState() string { return "RELOADING=1" }
