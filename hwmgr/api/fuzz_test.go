package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stowage/stowage/hwmgr/node"
)

// FuzzActionBody sends arbitrary bytes as an action body. Oracle: the
// server answers one of the documented statuses, never 500 and never a
// panic; every error is problem+json; and a body the server accepted
// (it got past decoding) decodes strictly into ActionBody on its own.
func FuzzActionBody(f *testing.F) {
	for _, s := range []string{``, `{}`, `{"serial":"FOREIGN1"}`, `{"serial":"FOREIGN1","reason":"rma"}`,
		`{"serial":1}`, `{"force":true}`, `{"serial":"FOREIGN1"} {}`, `[`, `null`, `"x"`, "{\"reason\":\"\xff\"}"} {
		f.Add([]byte(s))
	}
	fx := newFixture(f)
	// Use the in-memory handler: one fuzz input, one request, no sockets.
	h := fx.srv.Config.Handler
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest("POST", "/v1/drives/FOREIGN1/actions/adopt", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+adminTok)
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		switch w.Code {
		case 200, 400, 409, 413, 422:
		default:
			t.Fatalf("body %q: status %d: %s", body, w.Code, w.Body)
		}
		if w.Code != 200 && w.Header().Get("Content-Type") != "application/problem+json" {
			t.Fatalf("status %d with Content-Type %q", w.Code, w.Header().Get("Content-Type"))
		}
		if w.Code == 200 || w.Code == 409 || w.Code == 422 {
			if len(bytes.TrimSpace(body)) > 0 {
				var ab ActionBody
				dec := json.NewDecoder(bytes.NewReader(body))
				dec.DisallowUnknownFields()
				if err := dec.Decode(&ab); err != nil {
					t.Fatalf("accepted body %q does not decode: %v", body, err)
				}
			}
		}
		if w.Code == 200 {
			// Undo the adoption so every input starts from a foreign drive.
			restoreForeign(t, fx)
		}
	})
}

func restoreForeign(t *testing.T, fx *fixture) {
	t.Helper()
	fx.labels.mu.Lock()
	fx.labels.labels = initialLabels()
	fx.labels.mu.Unlock()
	if d, err := fx.node.RefreshLabel(context.Background(), "FOREIGN1"); err != nil || d.Label.State != node.StateForeign {
		t.Fatalf("refresh: %v %v", d.Label.State, err)
	}
}

var _ http.Handler = (*Server)(nil)
