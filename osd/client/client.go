// Package client is a Go client of the OSD's HTTP API (osd/server): put,
// get (whole or a byte range), head, delete and list blocks, and read the
// node's status. Errors from the server are *Error values carrying its
// RFC 9457 problem; errors.Is(err, ErrNotFound) and friends test them.
package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/stowage/stowage/osd/server"
)

// Key is a block's SHA-256.
type Key = server.Key

// Client talks to one OSD. It is safe for concurrent use.
type Client struct {
	base  string
	token string
	hc    *http.Client
}

// Options configure New.
type Options struct {
	Token      string       // bearer token, if the server wants one
	HTTPClient *http.Client // default: a client with a generous connection pool
}

// New returns a client of the OSD at base ("http://127.0.0.1:9742").
func New(base string, o Options) (*Client, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: %q is not an http(s) URL", base)
	}
	hc := o.HTTPClient
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 64
		hc = &http.Client{Transport: tr}
	}
	return &Client{base: strings.TrimRight(base, "/"), token: o.Token, hc: hc}, nil
}

// Error is a non-success answer from the server.
type Error struct {
	Status  int
	Problem server.Problem // zero if the body was not a problem
}

func (e *Error) Error() string {
	if e.Problem.Detail != "" {
		return fmt.Sprintf("osd: %d %s: %s", e.Status, http.StatusText(e.Status), e.Problem.Detail)
	}
	return fmt.Sprintf("osd: %d %s", e.Status, http.StatusText(e.Status))
}

// Sentinels that errors.Is matches against an *Error.
var (
	ErrNotFound    = errors.New("osd: block not found")                 // 404 block-not-found
	ErrKeyMismatch = errors.New("osd: the data does not match the key") // 400 key-mismatch
	ErrTooLarge    = errors.New("osd: block too large")                 // 413
	ErrRange       = errors.New("osd: range not satisfiable")           // 416
	ErrUnavailable = errors.New("osd: unavailable, try again later")    // 503
)

// Is matches the sentinels.
func (e *Error) Is(target error) bool {
	slug := strings.TrimPrefix(e.Problem.Type, server.ProblemBase)
	switch target {
	case ErrNotFound:
		return e.Status == http.StatusNotFound && slug == server.ProbBlockNotFound
	case ErrKeyMismatch:
		return e.Status == http.StatusBadRequest && slug == server.ProbKeyMismatch
	case ErrTooLarge:
		return e.Status == http.StatusRequestEntityTooLarge
	case ErrRange:
		return e.Status == http.StatusRequestedRangeNotSatisfiable
	case ErrUnavailable:
		return e.Status == http.StatusServiceUnavailable
	}
	return false
}

func (c *Client) do(ctx context.Context, method, path string, body []byte, hdr http.Header) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	if body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("osd: %s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 300 && resp.StatusCode != http.StatusNotModified {
		defer resp.Body.Close()
		e := &Error{Status: resp.StatusCode}
		if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "application/problem+json" {
			_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&e.Problem)
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return nil, e
	}
	return resp, nil
}

func blockPath(k Key) string { return "/v1/blocks/" + server.FormatKey(k) }

// Put stores data under its SHA-256 and returns the key and whether the
// block was new (201) rather than already stored (200).
func (c *Client) Put(ctx context.Context, data []byte) (Key, bool, error) {
	k := Key(sha256.Sum256(data))
	created, err := c.PutKey(ctx, k, data)
	return k, created, err
}

// PutKey stores data under key; the server refuses a key that is not the
// data's SHA-256 (ErrKeyMismatch).
func (c *Client) PutKey(ctx context.Context, key Key, data []byte) (bool, error) {
	if data == nil {
		data = []byte{}
	}
	resp, err := c.do(ctx, http.MethodPut, blockPath(key), data, nil)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusCreated, nil
}

// Get returns the block.
func (c *Client) Get(ctx context.Context, key Key) ([]byte, error) {
	resp, err := c.do(ctx, http.MethodGet, blockPath(key), nil, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("osd: get: %w", err)
	}
	if sha256.Sum256(b) != key {
		return nil, fmt.Errorf("osd: get %x: the server sent bytes whose SHA-256 does not match", key[:8])
	}
	return b, nil
}

// GetRange returns length bytes of the block from off (fewer at its end);
// length < 0 means to the end.
func (c *Client) GetRange(ctx context.Context, key Key, off, length int64) ([]byte, error) {
	if off < 0 || length == 0 {
		return nil, fmt.Errorf("osd: get range: bad range off=%d length=%d", off, length)
	}
	spec := fmt.Sprintf("bytes=%d-", off)
	if length > 0 {
		spec += strconv.FormatInt(off+length-1, 10)
	}
	resp, err := c.do(ctx, http.MethodGet, blockPath(key), nil, http.Header{"Range": {spec}})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("osd: get range: %w", err)
	}
	if resp.StatusCode == http.StatusOK { // the server ignored the range
		if off >= int64(len(b)) {
			return nil, &Error{Status: http.StatusRequestedRangeNotSatisfiable}
		}
		end := int64(len(b))
		if length > 0 {
			end = min(end, off+length)
		}
		b = b[off:end]
	}
	return b, nil
}

// Head returns the block's size.
func (c *Client) Head(ctx context.Context, key Key) (int64, error) {
	resp, err := c.do(ctx, http.MethodHead, blockPath(key), nil, nil)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.ContentLength, nil
}

// Delete deletes the block (ErrNotFound if there was none).
func (c *Client) Delete(ctx context.Context, key Key) error {
	resp, err := c.do(ctx, http.MethodDelete, blockPath(key), nil, nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// List returns up to limit keys after after (the zero key: from the
// start), sorted, and the cursor of the next page (nil on the last page).
// limit 0 is the server's default.
func (c *Client) List(ctx context.Context, after Key, limit int) ([]Key, *Key, error) {
	q := url.Values{}
	if after != (Key{}) {
		q.Set("after", server.FormatKey(after))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	path := "/v1/blocks"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var res server.ListResult
	if err := c.getJSON(ctx, path, &res); err != nil {
		return nil, nil, err
	}
	keys := make([]Key, 0, len(res.Keys))
	for _, s := range res.Keys {
		k, err := server.ParseKey(s)
		if err != nil {
			return nil, nil, fmt.Errorf("osd: list: %w", err)
		}
		keys = append(keys, k)
	}
	if res.Next == "" {
		return keys, nil, nil
	}
	next, err := server.ParseKey(res.Next)
	if err != nil {
		return nil, nil, fmt.Errorf("osd: list: next: %w", err)
	}
	return keys, &next, nil
}

// Status returns the node's status.
func (c *Client) Status(ctx context.Context) (server.Status, error) {
	var st server.Status
	err := c.getJSON(ctx, "/v1/status", &st)
	return st, err
}

func (c *Client) getJSON(ctx context.Context, path string, v any) error {
	resp, err := c.do(ctx, http.MethodGet, path, nil, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("osd: GET %s: %w", path, err)
	}
	return nil
}

// Admin posts an admin action: "add", "remove" or "drain" of the drive at
// path, or "scrub" (path ignored).
func (c *Client) Admin(ctx context.Context, action, path string) (server.ActionResult, error) {
	var res server.ActionResult
	p, body := "/v1/scrub", []byte("{}")
	if action != "scrub" {
		p = "/v1/drives/" + action
		b, err := json.Marshal(server.DriveRequest{Path: path})
		if err != nil {
			return res, err
		}
		body = b
	}
	resp, err := c.do(ctx, http.MethodPost, p, body, http.Header{"Content-Type": {"application/json"}})
	if err != nil {
		return res, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&res)
	return res, err
}
