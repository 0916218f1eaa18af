// Package registry is a pull-only OCI distribution API server as an
// http.Handler, serving whatever a Store holds. Every write method is refused.
package registry
