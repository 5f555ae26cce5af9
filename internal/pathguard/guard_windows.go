package pathguard

import "os"

// Check does nothing on Windows, whose files are guarded by access control
// lists rather than owners and modes: it returns no file and no reason.
func Check(path string, listing bool) (os.FileInfo, string) { return nil, "" }

// ReadableByOthers is not checked on Windows (see Check).
func ReadableByOthers(path string) string { return "" }
