package api

import (
	"encoding/json"
	"net/http"
)

// Problem is an RFC 9457 problem details object, the body of every error
// response (Content-Type application/problem+json).
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
}

// ProblemBase prefixes the type URI of every problem hwmgr defines;
// generic HTTP errors use "about:blank". The slugs are listed in
// hwmgr/README.md.
const ProblemBase = "urn:stowage:hwmgr:problem:"

// Problem slugs.
const (
	ProbUnauthorized      = "unauthorized"
	ProbForbidden         = "forbidden"
	ProbNotFound          = "not-found"
	ProbDriveNotFound     = "drive-not-found"
	ProbUnknownAction     = "unknown-action"
	ProbMethodNotAllowed  = "method-not-allowed"
	ProbBadRequest        = "bad-request"
	ProbTooLarge          = "body-too-large"
	ProbUnsupportedMedia  = "unsupported-media-type"
	ProbSerialRequired    = "serial-required"
	ProbSerialMismatch    = "serial-mismatch"
	ProbInService         = "in-service"
	ProbInvalidTransition = "invalid-transition"
	ProbNoEnclosure       = "no-enclosure"
	ProbNotReady          = "not-ready"
	ProbJobRunning        = "job-running"
	ProbNoJob             = "no-job"
	ProbNoReport          = "no-report"
	ProbSkipped           = "skip-list"
	ProbReadOnly          = "read-only"
	ProbVirtual           = "virtual-device"
	ProbInternal          = "internal"
)

// WriteProblem writes a problem response. slug "" means about:blank.
func WriteProblem(w http.ResponseWriter, r *http.Request, status int, slug, detail string) {
	p := Problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail}
	if slug != "" {
		p.Type = ProblemBase + slug
	}
	if r != nil {
		p.Instance = r.URL.Path
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(p)
}
