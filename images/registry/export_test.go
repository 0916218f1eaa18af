package registry

// SpecCodes exposes the distribution spec's error codes to the external
// tests (package registry_test).
var SpecCodes = specCodes
