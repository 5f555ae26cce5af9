package endpoint

import (
	"errors"

	"github.com/tether-endpoints/tether/endpoint/driver"
)

// The systemd: and fd: servers adopt a listening socket by its descriptor
// number. Windows has neither systemd's socket activation nor inheritable
// descriptor numbers (a socket is passed there as a handle, duplicated with
// WSADuplicateSocket), and Go cannot make a listener of a socket handle,
// so both types stay known, with their arguments, but fail when parsed,
// saying why. The error matches errors.ErrUnsupported.

func newSystemdServer(*driver.Args) (driver.Server, error) {
	return nil, driver.WrapError(errors.ErrUnsupported, nil,
		"not available on windows (socket activation is a Linux/systemd feature)")
}

func newFDServer(*driver.Args) (driver.Server, error) {
	return nil, driver.WrapError(errors.ErrUnsupported, nil,
		"not available on windows (it adopts an inherited socket by descriptor number, which Windows does not pass)")
}
