// Package testpki makes a throwaway certificate authority and the server and
// client certificates issued by it, for tests and benchmarks that speak TLS
// on loopback. Keys are ECDSA P-256 and everything is valid for one day: it
// is not meant to protect anything.
package testpki
