//go:build !linux

package endpoint

import (
	"errors"
	"fmt"
	"runtime"
)

// setSockOpts refuses, on systems other than Linux, the options tether
// sets only there: it says so rather than ignore them.
func setSockOpts(fd uintptr, o sockOpts, listening bool) error {
	switch {
	case o.userTimeout > 0:
		return fmt.Errorf("userTimeout= is not supported on %s: %w", runtime.GOOS, errors.ErrUnsupported)
	case listening && o.reusePort:
		return fmt.Errorf("reusePort= is not supported on %s: %w", runtime.GOOS, errors.ErrUnsupported)
	case listening && o.ipv6Only != 0:
		return fmt.Errorf("ipv6Only= is not supported on %s: %w", runtime.GOOS, errors.ErrUnsupported)
	}
	return nil
}
