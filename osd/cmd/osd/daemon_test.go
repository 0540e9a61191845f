package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/reedsolomon"

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

// TestDaemonCorruptionRepaired overwrites a fragment in place on a dev
// drive file under the running daemon: GET still returns the right bytes,
// the damage shows in /v1/status and /metrics, and a scrub started over
// the API repairs it.
func TestDaemonCorruptionRepaired(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(t.TempDir(), "admin")
	if err := os.WriteFile(tok, []byte("admin-token-0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"-data-dir", dir, "-dev-size", "256MiB", "-scrub-rate", "1GiB", "-admin-token-file", tok}
	d := startDaemon(t, args...)
	c, _ := client.New(d.url, client.Options{Token: "admin-token-0123"})
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 7))
	var keys []client.Key
	var blocks [][]byte
	for range 8 {
		b := randBytes(rng, 256<<10)
		k, _, err := c.Put(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		keys, blocks = append(keys, k), append(blocks, b)
	}
	// Fragment 0 of block 3 is its first 64 KiB, stored on drive0.
	drive := filepath.Join(dir, "drive0")
	corrupt(t, drive, blocks[3][:64<<10])
	for i, k := range keys {
		got, err := c.Get(ctx, k)
		if err != nil || !bytes.Equal(got, blocks[i]) {
			t.Fatalf("block %d after corruption: %v", i, err)
		}
	}
	st, err := c.Status(ctx)
	if err != nil || st.Damage.Found["corrupt"] < 1 {
		t.Fatalf("status after a corrupt read: %+v %v", st.Damage, err)
	}
	// The repair queue rewrites it.
	waitStatus(t, c, "the read's damage repaired", func(st server.Status) bool { return st.Damage.Repaired["corrupt"] >= 1 })
	// A parity fragment (slot 4) of block 5: reads never look at it, the
	// scrub started over the admin API finds and repairs it.
	enc, err := reedsolomon.New(4, 2)
	if err != nil {
		t.Fatal(err)
	}
	shards, _ := enc.Split(slices.Clone(blocks[5]))
	if err := enc.Encode(shards); err != nil {
		t.Fatal(err)
	}
	corrupt(t, filepath.Join(dir, "drive4"), shards[4])
	passes := st.Scrub.Passes
	if _, err := d.client(t).Admin(ctx, "scrub", ""); err == nil {
		t.Fatal("scrub without the admin token was accepted")
	}
	if res, err := c.Admin(ctx, "scrub", ""); err != nil || res.State != "started" {
		t.Fatalf("scrub: %+v %v", res, err)
	}
	st = waitStatus(t, c, "a scrub pass repairing the parity fragment", func(st server.Status) bool {
		return st.Scrub.Passes > passes && st.Scrub.Findings["corrupt"] >= 1 && st.Damage.Repaired["corrupt"] >= 2
	})
	if st.Scrub.BytesRead == 0 {
		t.Errorf("scrub status after a pass: %+v", st.Scrub)
	}
	resp, err := http.Get(d.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`stowage_osd_damage_found_total\{kind="corrupt"\} [2-9]`, `stowage_osd_damage_repaired_total\{kind="corrupt"\} [2-9]`,
		`stowage_osd_scrub_findings_total\{kind="corrupt"\} 1`, `stowage_osd_scrub_passes_total [1-9]`} {
		if !regexp.MustCompile("(?m)^" + want + "$").Match(m) {
			t.Errorf("metrics lack %s; status %+v %+v", want, st.Damage, st.Scrub)
		}
	}
	d.stop(t)
	// After a restart the fragment reads clean: the bytes were rewritten.
	d = startDaemon(t, args...)
	c = d.client(t) // reads need no token: no read token is configured
	if got, err := c.Get(ctx, keys[3]); err != nil || !bytes.Equal(got, blocks[3]) {
		t.Fatalf("block 3 after repair and restart: %v", err)
	}
	st, _ = c.Status(ctx)
	if st.Damage.Found["corrupt"] != 0 {
		t.Fatalf("damage found again after the repair: %+v", st.Damage)
	}
	resp, err = http.Get(d.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(m), "stowage_osd_blocks 8\n") {
		t.Fatalf("metrics after restart lack stowage_osd_blocks 8:\n%s", m)
	}
	d.stop(t)
}

// corrupt overwrites 4 KiB in the middle of the copy of frag on the drive
// file (under the running daemon).
func corrupt(t *testing.T, drive string, frag []byte) {
	t.Helper()
	raw, err := os.ReadFile(drive)
	if err != nil {
		t.Fatal(err)
	}
	off := bytes.Index(raw, frag)
	if off < 0 {
		t.Fatalf("fragment not found on %s", drive)
	}
	f, err := os.OpenFile(drive, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xee}, 4096), int64(off)+8192); err != nil {
		t.Fatal(err)
	}
}

// waitStatus polls /v1/status until ok (bounded: 60 s).
func waitStatus(t *testing.T, c *client.Client, what string, ok func(server.Status) bool) server.Status {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err := c.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 60 s: %+v", what, st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
