package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stowage/stowage/osd/client"
	"github.com/stowage/stowage/osd/server"
	"github.com/stowage/stowage/qemu/loopdev"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	binDir    string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// osdBinary builds this command once per test binary.
func osdBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "osd-bin-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "osd")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

type daemon struct {
	cmd  *exec.Cmd
	url  string
	done chan struct{}
	mu   sync.Mutex
	log  bytes.Buffer
}

var readyLine = regexp.MustCompile(`osd API ready on (http://[0-9.:]+)`)

// startDaemon runs the osd binary with args (plus -listen on a free port)
// and waits for its ready line.
func startDaemon(t testing.TB, args ...string) *daemon {
	t.Helper()
	d := &daemon{done: make(chan struct{})}
	d.cmd = exec.Command(osdBinary(t), append([]string{"-listen", "127.0.0.1:0", "-log-level", "debug"}, args...)...)
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	urlc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			d.mu.Lock()
			d.log.WriteString(sc.Text() + "\n")
			d.mu.Unlock()
			if m := readyLine.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case urlc <- m[1]:
				default:
				}
			}
		}
		_ = d.cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() { d.kill() })
	select {
	case d.url = <-urlc:
	case <-d.done:
		t.Fatalf("osd exited before it was ready:\n%s", d.logs())
	case <-time.After(120 * time.Second):
		t.Fatalf("osd not ready after 120 s:\n%s", d.logs())
	}
	return d
}

func (d *daemon) logs() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.String()
}

func (d *daemon) kill() {
	select {
	case <-d.done:
		return
	default:
	}
	_ = d.cmd.Process.Kill()
	<-d.done
}

func (d *daemon) stop(t testing.TB) {
	t.Helper()
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("osd did not stop on SIGTERM:\n%s", d.logs())
	}
	if st := d.cmd.ProcessState; st == nil || !st.Success() {
		t.Fatalf("osd exit %v:\n%s", st, d.logs())
	}
}

func (d *daemon) client(t testing.TB) *client.Client {
	c, err := client.New(d.url, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func randBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// TestDaemonDevMode runs `osd` with no drives (dev mode files), drives it
// with the CLI subcommands, restarts it and reads the block again.
func TestDaemonDevMode(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	d := startDaemon(t, "-data-dir", data, "-dev-size", "256MiB")
	file := filepath.Join(dir, "f")
	content := randBytes(rand.New(rand.NewPCG(1, 2)), 3<<20+5)
	if err := os.WriteFile(file, content, 0o644); err != nil {
		t.Fatal(err)
	}
	key := server.FormatKey(sha256.Sum256(content))
	cli := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if rc := run(append([]string{args[0], "-server", d.url}, args[1:]...), nil, &out, &errb); rc != 0 {
			t.Fatalf("osd %v: rc %d: %s", args, rc, errb.String())
		}
		return out.String()
	}
	if out := cli("put", file); !strings.HasPrefix(out, key+"\t") || !strings.Contains(out, "\tstored\t") {
		t.Fatalf("put: %q", out)
	}
	if out := cli("put", file); !strings.Contains(out, "already stored") {
		t.Fatalf("second put: %q", out)
	}
	if out := cli("get", key); out != string(content) {
		t.Fatalf("get: %d bytes", len(out))
	}
	if out := cli("ls"); out != key+"\n" {
		t.Fatalf("ls: %q", out)
	}
	if out := cli("status"); !strings.Contains(out, `"blocks": 1`) || !strings.Contains(out, `"state": "healthy"`) {
		t.Fatalf("status: %s", out)
	}
	for i := range 6 {
		if st, err := os.Stat(filepath.Join(data, fmt.Sprintf("drive%d", i))); err != nil || st.Size() != 256<<20 {
			t.Fatalf("dev file %d: %v %v", i, st, err)
		}
	}
	d.stop(t)
	d = startDaemon(t, "-data-dir", data, "-dev-size", "256MiB")
	if out := cli("get", key); out != string(content) {
		t.Fatalf("get after restart: %d bytes", len(out))
	}
	if out := cli("status"); !strings.Contains(out, `"blocks": 1`) || !strings.Contains(out, fmt.Sprintf(`"bytes": %d`, len(content))) {
		t.Fatalf("status after restart: %s", out)
	}
	var errb bytes.Buffer
	if rc := run([]string{"get", "-server", d.url, strings.Repeat("0", 64)}, nil, io.Discard, &errb); rc != 1 || !strings.Contains(errb.String(), "404") {
		t.Fatalf("get of a missing key: rc %d %q", rc, errb.String())
	}
	d.stop(t)
}

// TestDaemonKill9 kills the daemon with SIGKILL under 16 concurrent PUT
// clients on 6 loop devices, restarts it, and reads back every block
// whose PUT was acknowledged.
func TestDaemonKill9(t *testing.T) {
	loopdev.NeedRoot(t)
	var devs []string
	for range 6 {
		devs = append(devs, loopdev.Zero(t, 256<<20))
	}
	args := []string{"-devices", strings.Join(devs, ","), "-scrub-rate", "0"}
	for round := range 2 {
		d := startDaemon(t, args...)
		c := d.client(t)
		ctx, cancel := context.WithCancel(context.Background())
		type acked struct {
			key  client.Key
			data []byte
		}
		var mu sync.Mutex
		var got []acked
		var wg sync.WaitGroup
		for w := range 16 {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(round), uint64(w)))
				for ctx.Err() == nil {
					data := randBytes(rng, 4<<10+rng.IntN(1<<20))
					k, _, err := c.Put(ctx, data)
					if err != nil {
						return // the daemon is gone
					}
					mu.Lock()
					got = append(got, acked{k, data})
					mu.Unlock()
				}
			})
		}
		// Kill once enough PUTs were acknowledged (bounded wait).
		deadline := time.Now().Add(60 * time.Second)
		for {
			mu.Lock()
			n := len(got)
			mu.Unlock()
			if n >= 150 || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-d.done
		cancel()
		wg.Wait()
		if len(got) < 20 {
			t.Fatalf("round %d: only %d PUTs acknowledged before the kill:\n%s", round, len(got), d.logs())
		}
		d = startDaemon(t, args...)
		c = d.client(t)
		for _, a := range got {
			b, err := c.Get(context.Background(), a.key)
			if err != nil || !bytes.Equal(b, a.data) {
				t.Fatalf("round %d: acknowledged block %x: %v (%d bytes, want %d)", round, a.key[:8], err, len(b), len(a.data))
			}
		}
		st, err := c.Status(context.Background())
		if err != nil || st.Blocks < int64(len(got)) || st.Volumes[0].State != server.VolumeHealthy {
			t.Fatalf("round %d: status %+v (%v), acknowledged %d", round, st, err, len(got))
		}
		t.Logf("round %d: %d acknowledged PUTs read back after kill -9 (%d blocks stored)", round, len(got), st.Blocks)
		d.stop(t)
	}
}
