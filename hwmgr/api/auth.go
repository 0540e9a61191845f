package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"os"
	"strings"
)

// Role is what a token may do.
type Role int

// Roles, weakest first. An admin token also reads.
const (
	RolePublic Role = iota // no token needed
	RoleRead               // inventory, drives, events, metrics
	RoleAdmin              // actions
)

func (r Role) String() string {
	switch r {
	case RoleRead:
		return "read"
	case RoleAdmin:
		return "admin"
	}
	return "public"
}

// Tokens holds the bearer tokens of each role as SHA-256 digests, so that
// comparisons take the same time whatever the token's length.
type Tokens struct {
	read  [][32]byte
	admin [][32]byte
}

// NewTokens returns a token set. Empty strings are ignored.
func NewTokens(read, admin []string) Tokens {
	var t Tokens
	for _, s := range read {
		if s != "" {
			t.read = append(t.read, sha256.Sum256([]byte(s)))
		}
	}
	for _, s := range admin {
		if s != "" {
			t.admin = append(t.admin, sha256.Sum256([]byte(s)))
		}
	}
	return t
}

// ReadTokenFile reads tokens from a file, one per line; blank lines and
// lines starting with # are skipped.
func ReadTokenFile(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("token file: %w", err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, line)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("token file %s: no tokens", path)
	}
	return out, nil
}

// match compares a presented token with every configured one of a role,
// in constant time, without stopping at the first match.
func match(set [][32]byte, sum [32]byte) bool {
	ok := 0
	for i := range set {
		ok |= subtle.ConstantTimeCompare(set[i][:], sum[:])
	}
	return ok == 1
}

// roleOf returns the role a request's bearer token grants, whether a token
// was presented at all, and whether it was valid.
func (t Tokens) roleOf(r *http.Request) (role Role, presented, valid bool) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return RolePublic, false, false
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return RolePublic, true, false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	if match(t.admin, sum) {
		return RoleAdmin, true, true
	}
	if match(t.read, sum) {
		return RoleRead, true, true
	}
	return RolePublic, true, false
}

// authorize checks a request against the role a route needs. With no read
// tokens configured, reads are open (a dev run); with no admin tokens
// configured, admin routes are refused outright.
func (t Tokens) authorize(w http.ResponseWriter, r *http.Request, need Role) (Role, bool) {
	if need == RolePublic {
		return RolePublic, true
	}
	role, presented, valid := t.roleOf(r)
	if presented && !valid {
		w.Header().Set("WWW-Authenticate", `Bearer realm="hwmgr", error="invalid_token"`)
		WriteProblem(w, r, http.StatusUnauthorized, ProbUnauthorized, "the bearer token is not valid")
		return role, false
	}
	if need == RoleRead && len(t.read) == 0 && len(t.admin) == 0 {
		return RoleRead, true
	}
	if need == RoleRead && len(t.read) == 0 && !presented {
		return RoleRead, true
	}
	if need == RoleAdmin && len(t.admin) == 0 {
		WriteProblem(w, r, http.StatusForbidden, ProbForbidden, "no admin token is configured; start hwmgr with -admin-token or -admin-token-file to enable actions")
		return role, false
	}
	if !presented {
		w.Header().Set("WWW-Authenticate", `Bearer realm="hwmgr"`)
		WriteProblem(w, r, http.StatusUnauthorized, ProbUnauthorized, fmt.Sprintf("this endpoint needs a %s bearer token (Authorization: Bearer <token>)", need))
		return role, false
	}
	if role < need {
		detail := fmt.Sprintf("this endpoint needs the %s role; the token has the %s role", need, role)
		WriteProblem(w, r, http.StatusForbidden, ProbForbidden, detail)
		return role, false
	}
	return role, true
}
