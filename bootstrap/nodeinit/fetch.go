package nodeinit

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// maxConfigBytes bounds the config document fetched from ConfigURL.
const maxConfigBytes = 64 << 10

// FetchConfig GETs c.ConfigURL (within timeout) and applies its stowage.*
// words over c. Bad keys in the document are reported like the command
// line's and keep c's values; a fetch failure returns c unchanged. The
// document cannot redirect the node to another config URL.
func FetchConfig(ctx context.Context, c Config, timeout time.Duration) (Config, error) {
	if c.ConfigURL == "" {
		return c, nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.ConfigURL, nil)
	if err != nil {
		return c, fmt.Errorf("config %s: %w", c.ConfigURL, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return c, fmt.Errorf("config %s: %w", c.ConfigURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return c, fmt.Errorf("config %s: HTTP %s", c.ConfigURL, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxConfigBytes+1))
	if err != nil {
		return c, fmt.Errorf("config %s: %w", c.ConfigURL, err)
	}
	if len(body) > maxConfigBytes {
		return c, fmt.Errorf("config %s: larger than %d bytes", c.ConfigURL, maxConfigBytes)
	}
	next, err := c.Apply(string(body))
	next.ConfigURL = c.ConfigURL
	if err != nil {
		return next, fmt.Errorf("config %s: %w", c.ConfigURL, err)
	}
	return next, nil
}
