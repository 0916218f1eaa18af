// Package fileutil reads files the way every part of Ferry must read what
// it did not write itself: bounded (a file larger than its limit is an
// error naming the file and the limit, never a huge allocation), and hashes
// files for the digests that bundles, caches and join files record.
// Atomic replacement of a file is internal/atomicfile's.
package fileutil
