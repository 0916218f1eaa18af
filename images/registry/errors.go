package registry

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// Error codes of the distribution spec used here.
const (
	codeBlobUnknown     = "BLOB_UNKNOWN"
	codeDigestInvalid   = "DIGEST_INVALID"
	codeManifestUnknown = "MANIFEST_UNKNOWN"
	codeNameInvalid     = "NAME_INVALID"
	codeNameUnknown     = "NAME_UNKNOWN"
	codeUnsupported     = "UNSUPPORTED"
	// codeUnknown is not a spec code: it is only sent with 5xx statuses,
	// for which the spec prescribes no body.
	codeUnknown = "UNKNOWN"
)

// apiError is one error response: an HTTP status and the spec's JSON body.
type apiError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

func errBadRequest(code, msg string) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: code, Message: msg}
}

func errNotFound(code, msg string) *apiError {
	return &apiError{Status: http.StatusNotFound, Code: code, Message: msg}
}

func errURITooLong() *apiError {
	return &apiError{Status: http.StatusRequestURITooLong, Code: codeUnsupported,
		Message: "request target longer than " + strconv.Itoa(maxURILength) + " bytes"}
}

func errMethod() *apiError {
	return &apiError{Status: http.StatusMethodNotAllowed, Code: codeUnsupported,
		Message: "this registry is read-only: only GET and HEAD are served"}
}

func errInternal() *apiError {
	return &apiError{Status: http.StatusInternalServerError, Code: codeUnknown, Message: "internal error"}
}

// write sends e as {"errors":[…]} (headers only for HEAD).
func (e *apiError) write(w http.ResponseWriter, r *http.Request) {
	body, err := json.Marshal(struct {
		Errors []*apiError `json:"errors"`
	}{[]*apiError{e}})
	if err != nil { // cannot happen: Detail only ever holds plain values
		body = []byte(`{"errors":[{"code":"UNKNOWN","message":"internal error"}]}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("X-Content-Type-Options", "nosniff")
	if e.Status == http.StatusMethodNotAllowed {
		h.Set("Allow", "GET, HEAD")
	}
	w.WriteHeader(e.Status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}
