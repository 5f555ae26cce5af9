package endpoint

import "syscall"

// Linux's accept(2) also passes on a new connection's ENONET (no
// network), which other systems do not define.
func init() { temporaryErrnos = append(temporaryErrnos, syscall.ENONET) }
