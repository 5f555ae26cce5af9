package pathguard

// OthersCanChange is not checked on Windows, whose files are guarded by
// access control lists rather than owners and modes.
func OthersCanChange(path string, listing bool) string { return "" }

// ReadableByOthers is not checked on Windows (see OthersCanChange).
func ReadableByOthers(path string) string { return "" }
