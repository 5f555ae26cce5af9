package driver

// Exported for the tests in package driver_test, which import package
// endpoint for its types and so cannot be in package driver.
var (
	PyInt    = pyInt
	MaxShown = maxShown
	Redacted = redacted
)
