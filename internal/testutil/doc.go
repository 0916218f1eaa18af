// Package testutil holds small helpers that several packages' tests share.
package testutil
