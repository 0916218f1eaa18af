package registry

import (
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	digest "github.com/opencontainers/go-digest"
)

// Routes, as given to Options.OnRequest: one label per kind of request, so a
// metrics exporter has a small fixed set of values.
const (
	RouteBase     = "base"     // /v2/
	RouteManifest = "manifest" // /v2/<name>/manifests/<reference>
	RouteBlob     = "blob"     // /v2/<name>/blobs/<digest>
	RouteTags     = "tags"     // /v2/<name>/tags/list
	RouteCatalog  = "catalog"  // /v2/_catalog
	RouteOther    = "other"    // anything else (uploads, referrers, unknown, malformed)
)

// Limits on what a request may carry.
const (
	maxURILength   = 4096  // longer request targets get 414
	maxQueryParams = 16    // more query parameters get 400
	maxNameLength  = 255   // the spec's advice on <name>
	maxPageSize    = 10000 // n is clamped to this; a longer list gets a Link to the rest
	maxLastLength  = 512   // `last` is only compared, but bounded all the same
)

var (
	// nameRE is <name> of the distribution spec (v1.1, "Pulling manifests").
	nameRE = regexp.MustCompile(`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$`)
	// tagRE is <reference> as a tag.
	tagRE = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
	// hostLabelRE is one label of a DNS name, as in a reference's domain.
	hostLabelRE = regexp.MustCompile(`^([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$`)
)

// request is a parsed and validated request. Every string in it has been
// checked against the spec's grammar: nothing else reaches the Store.
type request struct {
	route string
	write bool // a method other than GET and HEAD
	// unknownShape is set for a path under /v2/ that names no endpoint this
	// registry serves (uploads, referrers, anything else).
	unknownShape bool
	name         string        // <name> as in the path
	ns           string        // containerd's ns= (upstream host[:port]), or ""
	tag          string        // manifests by tag
	digest       digest.Digest // manifests by digest, blobs
	badTag       bool          // a manifest reference that no tag can match
	n            int           // page size (tags, catalog)
	last         string        // pagination start (exclusive)
}

// parse checks a request's target and classifies it. It returns an
// *apiError for a target that is malformed whatever the method; a write to
// a well-formed target is left to the caller (405).
func parse(r *http.Request) (*request, *apiError) {
	req := &request{route: RouteOther, n: maxPageSize}
	req.write = r.Method != http.MethodGet && r.Method != http.MethodHead
	if len(r.RequestURI) > maxURILength || len(r.URL.Path)+len(r.URL.RawQuery) > maxURILength {
		return req, errURITooLong()
	}
	p := r.URL.EscapedPath()
	if p != "/v2" && !strings.HasPrefix(p, "/v2/") {
		req.unknownShape = true
		return req, errNotFound(codeUnsupported, "not a distribution API path")
	}
	rest, err := cleanPath(p[len("/v2"):], r.URL.Path[min(len(r.URL.Path), len("/v2")):])
	if err != nil {
		return req, err
	}
	q, err := parseQuery(r.URL.RawQuery)
	if err != nil {
		return req, err
	}

	segs := strings.Split(rest, "/")
	k := len(segs)
	switch {
	case rest == "":
		req.route = RouteBase
		return req, nil
	case rest == "_catalog":
		req.route = RouteCatalog
		return req, req.pagination(q)
	case k >= 3 && segs[k-2] == "tags" && segs[k-1] == "list":
		req.route = RouteTags
		if err := req.setName(segs[:k-2], q); err != nil {
			return req, err
		}
		return req, req.pagination(q)
	case k >= 3 && segs[k-2] == "manifests":
		req.route = RouteManifest
		if err := req.setName(segs[:k-2], q); err != nil {
			return req, err
		}
		return req, req.setReference(segs[k-1])
	case k >= 3 && segs[k-2] == "blobs" && segs[k-1] == "uploads":
		req.unknownShape = true // an upload (push): refused
		return req, req.setName(segs[:k-2], q)
	case k >= 4 && segs[k-3] == "blobs" && segs[k-2] == "uploads":
		// /v2/<name>/blobs/uploads/ and /v2/<name>/blobs/uploads/<id>:
		// pushes, refused; the name is checked so a malformed one is 400.
		req.unknownShape = true
		return req, req.setName(segs[:k-3], q)
	case k >= 3 && segs[k-2] == "blobs":
		req.route = RouteBlob
		if err := req.setName(segs[:k-2], q); err != nil {
			return req, err
		}
		d, err := parseDigest(segs[k-1])
		if err != nil {
			return req, err
		}
		req.digest = d
		return req, nil
	}
	req.unknownShape = true
	return req, nil
}

// cleanPath checks the escaped path after "/v2" and returns it without its
// leading slash. Only the characters of the spec's grammars may appear
// (names, tags, digests: letters, digits, "._-", ":" and "/"); the only
// escape accepted is %3A for ":" (some clients escape it in digests).
// Anything else — "%2F", "%2e%2e", NUL, "//", "." or ".." segments — is
// refused, so what the path means is what it says.
func cleanPath(raw, decoded string) (string, *apiError) {
	if strings.Contains(raw, "%") {
		raw = strings.NewReplacer("%3A", ":", "%3a", ":").Replace(raw)
	}
	if raw != decoded {
		return "", errBadRequest(codeNameInvalid, "percent-encoded characters are not allowed in the path")
	}
	if raw == "" || raw == "/" {
		return "", nil
	}
	raw = raw[1:] // after the "/" that follows "v2"
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' || c == ':' || c == '/') {
			return "", errBadRequest(codeNameInvalid, "invalid character in path")
		}
	}
	segs := strings.Split(raw, "/")
	for i, s := range segs {
		switch {
		case s == "." || s == "..":
			return "", errBadRequest(codeNameInvalid, "dot segments are not allowed in the path")
		case s == "" && i != len(segs)-1:
			return "", errBadRequest(codeNameInvalid, "empty segments are not allowed in the path")
		}
	}
	return raw, nil
}

// parseQuery parses the query, refusing too many or repeated parameters.
func parseQuery(raw string) (url.Values, *apiError) {
	if raw == "" {
		return nil, nil
	}
	if strings.Count(raw, "&")+strings.Count(raw, ";") >= maxQueryParams {
		return nil, errBadRequest(codeUnsupported, "too many query parameters")
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return nil, errBadRequest(codeUnsupported, "malformed query")
	}
	for k, v := range q {
		if len(v) > 1 {
			return nil, errBadRequest(codeUnsupported, "query parameter "+strconv.Quote(k)+" repeated")
		}
	}
	return q, nil
}

// setName validates <name> (and containerd's ns, if any).
func (req *request) setName(segs []string, q url.Values) *apiError {
	name := strings.Join(segs, "/")
	if len(name) > maxNameLength || !nameRE.MatchString(name) {
		return errBadRequest(codeNameInvalid, "invalid repository name")
	}
	req.name = name
	if ns := q.Get("ns"); ns != "" {
		if !validHost(ns) {
			return errBadRequest(codeNameInvalid, "invalid ns (want the upstream registry host[:port])")
		}
		req.ns = ns
	}
	return nil
}

// setReference validates a manifest <reference>: a tag, or a sha256 digest.
func (req *request) setReference(ref string) *apiError {
	if strings.Contains(ref, ":") {
		d, err := parseDigest(ref)
		if err != nil {
			return err
		}
		req.digest = d
		return nil
	}
	if !tagRE.MatchString(ref) {
		// No tag can be spelt so: unknown, as the conformance suite expects
		// for ".INVALID_MANIFEST_NAME", and never asked of the Store.
		req.badTag = true
		return nil
	}
	req.tag = ref
	return nil
}

// parseDigest accepts a well-formed sha256 digest only.
func parseDigest(s string) (digest.Digest, *apiError) {
	d, err := digest.Parse(s)
	if err != nil {
		return "", errBadRequest(codeDigestInvalid, "invalid digest")
	}
	if d.Algorithm() != digest.SHA256 {
		return "", errBadRequest(codeDigestInvalid, "unsupported digest algorithm (only sha256)")
	}
	return d, nil
}

// pagination reads n and last. n must be a non-negative decimal integer; it
// is clamped to maxPageSize (the response then has a Link to the rest, as
// the spec allows). Without n, a page is maxPageSize long.
func (req *request) pagination(q url.Values) *apiError {
	if s, ok := q["n"]; ok {
		n, err := strconv.Atoi(s[0])
		if err != nil || n < 0 || len(s[0]) > 12 {
			return errBadRequest(codeUnsupported, "n must be a non-negative integer")
		}
		req.n = min(n, maxPageSize)
	}
	req.last = q.Get("last")
	if len(req.last) > maxLastLength {
		return errBadRequest(codeUnsupported, "last is too long")
	}
	return nil
}

// validHost reports whether s is host[:port] as an image reference's domain
// spells it: a DNS name, an IPv4 address, or a bracketed IPv6 address.
func validHost(s string) bool {
	if len(s) > 255 {
		return false
	}
	host, port := s, ""
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return false
		}
		a, err := netip.ParseAddr(s[1:end])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return false
		}
		host, port = "", s[end+1:]
		if port != "" && port[0] != ':' {
			return false
		}
	} else if i := strings.LastIndexByte(s, ':'); i >= 0 {
		host, port = s[:i], s[i:]
	}
	if port != "" {
		n, err := strconv.Atoi(port[1:])
		if err != nil || n < 1 || n > 65535 || port[1] == '+' || port[1] == '-' {
			return false
		}
	}
	if host == "" {
		return strings.HasPrefix(s, "[")
	}
	for _, l := range strings.Split(host, ".") {
		if !hostLabelRE.MatchString(l) {
			return false
		}
	}
	return true
}
