package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
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

// ProblemBase prefixes the type URI of every problem the OSD defines. The
// slugs are listed in osd/cmd/osd/README.md.
const ProblemBase = "urn:stowage:osd:problem:"

// Problem slugs.
const (
	ProbNotFound         = "not-found"       // no route
	ProbBlockNotFound    = "block-not-found" // no such block
	ProbMethodNotAllowed = "method-not-allowed"
	ProbBadKey           = "bad-key"      // not 64 hex digits
	ProbKeyMismatch      = "key-mismatch" // SHA-256 of the body differs from the key
	ProbEmpty            = "empty-block"
	ProbTooLarge         = "body-too-large"
	ProbTruncated        = "truncated-body"
	ProbTimeout          = "request-timeout"
	ProbBadRange         = "range-not-satisfiable"
	ProbBadQuery         = "bad-query"
	ProbBadRequest       = "bad-request"
	ProbUnauthorized     = "unauthorized"
	ProbForbidden        = "forbidden"
	ProbUnavailable      = "unavailable" // no writable volume, closed, not ready
	ProbUnrecoverable    = "unrecoverable"
	ProbConflict         = "conflict"
	ProbNotReady         = "not-ready"
	ProbInternal         = "internal"
)

// WriteProblem writes a problem response.
func WriteProblem(w http.ResponseWriter, r *http.Request, status int, slug, detail string) {
	p := Problem{Type: ProblemBase + slug, Title: http.StatusText(status), Status: status, Detail: detail}
	if r != nil {
		p.Instance = r.URL.Path
	}
	h := w.Header()
	h.Del("Content-Length")
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	if r != nil && r.Method == http.MethodHead {
		return
	}
	_ = json.NewEncoder(w).Encode(p)
}

// Role is what a request may do.
type Role int

// Roles, weakest first.
const (
	RolePublic Role = iota // health, readiness, the OpenAPI document
	RoleRead               // GET/HEAD blocks, listing, status, metrics
	RoleWrite              // PUT and DELETE blocks
	RoleAdmin              // drive and scrub actions
)

func (r Role) String() string {
	return [...]string{"public", "read", "write", "admin"}[r]
}

// Tokens are the bearer tokens of the read and admin roles, kept as
// SHA-256 digests so that comparisons take the same time whatever a
// token's length. An admin token may do everything.
//
// Reads are open while no read token is configured; otherwise they need
// a read or admin token. Writes are open only with no token configured at
// all (a dev run); otherwise they need an admin token. Admin actions
// always need an admin token (403 while none is configured). A token that
// is presented must be valid (401 otherwise).
type Tokens struct {
	read, admin [][32]byte
}

// NewTokens returns a token set. Empty strings are ignored.
func NewTokens(read, admin []string) Tokens {
	var t Tokens
	for _, s := range read {
		if s = strings.TrimSpace(s); s != "" {
			t.read = append(t.read, sha256.Sum256([]byte(s)))
		}
	}
	for _, s := range admin {
		if s = strings.TrimSpace(s); s != "" {
			t.admin = append(t.admin, sha256.Sum256([]byte(s)))
		}
	}
	return t
}

func match(set [][32]byte, sum [32]byte) bool {
	ok := 0
	for i := range set {
		ok |= subtle.ConstantTimeCompare(set[i][:], sum[:])
	}
	return ok == 1
}

// authorize checks r against the role a route needs, writing the problem
// when it is refused.
func (t Tokens) authorize(w http.ResponseWriter, r *http.Request, need Role) bool {
	if need == RolePublic {
		return true
	}
	role, presented := RolePublic, false
	if h := r.Header.Get("Authorization"); h != "" {
		presented = true
		scheme, tok, _ := strings.Cut(h, " ")
		tok = strings.TrimSpace(tok)
		if !strings.EqualFold(scheme, "Bearer") || tok == "" {
			return refuse(w, r, http.StatusUnauthorized, `Bearer realm="osd", error="invalid_request"`, "the Authorization header is not a bearer token")
		}
		sum := sha256.Sum256([]byte(tok))
		switch {
		case match(t.admin, sum):
			role = RoleAdmin
		case match(t.read, sum):
			role = RoleRead
		default:
			return refuse(w, r, http.StatusUnauthorized, `Bearer realm="osd", error="invalid_token"`, "the bearer token is not valid")
		}
	}
	switch {
	case role >= need:
		return true
	case need == RoleAdmin && len(t.admin) == 0:
		return refuse(w, r, http.StatusForbidden, "", "no admin token is configured; start osd with -admin-token-file to enable admin actions")
	case need == RoleRead && len(t.read) == 0 && !presented:
		return true // reads are open without read tokens
	case need == RoleWrite && len(t.read) == 0 && len(t.admin) == 0:
		return true // a dev run: no tokens at all
	case !presented:
		return refuse(w, r, http.StatusUnauthorized, `Bearer realm="osd"`, fmt.Sprintf("this endpoint needs a bearer token of the %s role", max(need, RoleRead)))
	}
	return refuse(w, r, http.StatusForbidden, "", fmt.Sprintf("this endpoint needs the admin role; the token has the %s role", role))
}

func refuse(w http.ResponseWriter, r *http.Request, status int, challenge, detail string) bool {
	slug := ProbForbidden
	if status == http.StatusUnauthorized {
		slug = ProbUnauthorized
		w.Header().Set("WWW-Authenticate", challenge)
	}
	WriteProblem(w, r, status, slug, detail)
	return false
}
