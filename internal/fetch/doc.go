// Package fetch downloads over HTTPS into a content-addressed cache: a
// small client for the builder's upstream metadata and packages.
//
// Every request goes over TLS (the system's CAs plus, per client, an extra
// CA bundle); plain http is refused, and so is a redirect to it; file://
// URLs read local mirrors. At most Options.Parallel requests run at once,
// counted across a Client and every client WithCA derived from it. A network
// error, a stalled response, 429 or 5xx is retried a bounded number of
// times after an exponential back-off with jitter (or the server's short
// Retry-After); the context cancels the wait.
//
// Cache layout (Options.CacheDir; the builder's --cache-dir, by default
// $XDG_CACHE_HOME/ferry or ~/.cache/ferry):
//
//	<cache>/sha256/<hex>          a verified file, named by the sha256 of its content
//	<cache>/sha256/<hex>.partial  a download in progress or interrupted
//
// Fetch downloads into the .partial file (locked with flock, so two builds
// sharing a cache do not write it at once), resumes an interrupted download
// with a Range request (a 206 must answer exactly the range asked for; a 200
// restarts from the first byte), checks size and sha256, and only then
// renames it to its final name: a file under its final name is always
// verified. A file already in the cache is checked again and used without
// any request. Other users of the cache (such as image blobs) may share the
// sha256/ store: a name is its content's digest, whoever wrote it.
//
//	Fetch(item) ─▶ cache hit? ─yes─▶ re-hash ─▶ path
//	                   │no
//	                   ▼
//	          lock <hex>.partial ─▶ GET (Range: bytes=<partial size>-) ─▶ append
//	                   ▲  retry: network error, stall, 429, 5xx  │
//	                   └─────────────────────────────────────────┘
//	                                                             ▼
//	                            size + sha256 ok? ─yes─▶ rename to <hex> ─▶ path
//	                                   │no
//	                                   ▼
//	               resumed? restart once from byte 0, else ErrMismatch
//
// Download is the same without a digest, for content the caller verifies
// otherwise (a signed bundle): into a file it names, through its .partial,
// resumed and retried alike, bounded by a size.
package fetch
