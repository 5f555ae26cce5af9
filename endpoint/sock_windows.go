package endpoint

// relisten does nothing on Windows: listen on a socket that is listening
// already succeeds there without changing its backlog, so a listener keeps
// the system's maximum, which the net package asks for, whatever backlog=
// says.
func relisten(fd uintptr, backlog int) error { return nil }
