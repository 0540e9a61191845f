//go:build vmtest

package image_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stowage/stowage/bootstrap/nodeinit"
	"github.com/stowage/stowage/image"
	"github.com/stowage/stowage/qemu"
)

// TestVMBoot builds the image, boots it under QEMU (TCG) with an NVMe and
// a virtio-blk drive and a user-mode NIC forwarding hwmgr's port to the
// host (and an unknown stowage.* key on the kernel command line, and a
// config URL served from the host that sets the hostname), waits for the
// init's ready banner, checks the bad key is reported and the fetched
// hostname applied, reads
// hwmgr's inventory from the host and finds both drives. Then it presses
// Enter on the serial console, runs a command in the rescue shell, and
// sends the init SIGTERM from there (kill 1): a clean power-off.
func TestVMBoot(t *testing.T) {
	needVM(t)
	ctx := context.Background()
	if dl, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-20*time.Second))
		defer cancel()
	}
	out := buildImage(t, ctx)

	// The node's config document, served from the host: QEMU's user
	// network maps 10.0.2.2 to the host's loopback.
	confSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/node.conf" {
			http.NotFound(w, r)
			return
		}
		_, _ = io.WriteString(w, "# from the host\nstowage.hostname=vmboot\n")
	}))
	defer confSrv.Close()
	confURL := "http://10.0.2.2:" + confSrv.URL[strings.LastIndex(confSrv.URL, ":")+1:] + "/node.conf"

	port := freePort(t)
	vmDir, err := os.MkdirTemp("", "stwboot")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(vmDir)
	console := &tee{}
	if os.Getenv("STOWAGE_VM_CONSOLE") == "1" {
		console.w = os.Stderr
	}
	// What the test types on the serial console (the rescue shell).
	keys, typist := io.Pipe()
	defer typist.Close()
	vm, err := qemu.Start(ctx, qemu.Machine{
		Kernel:  filepath.Join(out, image.KernelFile),
		Initrd:  filepath.Join(out, image.InitramfsFile),
		Cmdline: "console=ttyS0 quiet panic=-1 no_timer_check stowage.hostname=fromcmdline stowage.dhcp.timeout=30s stowage.colour=blue stowage.config_url=" + confURL,
		Dir:     vmDir,
		Drives: []qemu.Drive{
			{Kind: qemu.NVMe, ID: "n0", Serial: "BOOTNVME0", Size: 256 << 20},
			{Kind: qemu.VirtioBlk, ID: "v0", Serial: "BOOTVIRT0", Size: 256 << 20},
		},
		Console: console,
		Input:   keys,
		ExtraArgs: []string{
			"-netdev", fmt.Sprintf("user,id=n0,hostfwd=tcp:127.0.0.1:%d-:9741", port),
			"-device", "virtio-net-pci,netdev=n0",
			"-object", "rng-random,id=rng0,filename=/dev/urandom", "-device", "virtio-rng-pci,rng=rng0",
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf(format+"\n--- console tail ---\n%s", append(args, vm.ConsoleTail(80))...)
	}
	bootCtx, cancel := context.WithTimeout(ctx, 4*time.Minute)
	defer cancel()
	if _, err := vm.WaitConsole(bootCtx, func(l string) bool { return strings.Contains(l, nodeinit.ReadyMarker) }); err != nil {
		fail("waiting for %q: %v", nodeinit.ReadyMarker, err)
	}
	t.Logf("QEMU start to hwmgr API ready: %s", time.Since(vm.Started).Round(100*time.Millisecond))
	con := vm.Console()
	for _, want := range []string{"Stowage node vmboot", "BOOTNVME0", "BOOTVIRT0", "network:   eth0 10.0.2.15/24", "hwmgr API: http://10.0.2.15:9741/v1/inventory",
		// A bad key is reported clearly (console and banner); the node boots on.
		`stowage-init: kernel command line: unknown key "stowage.colour"`, `problem:   kernel command line: unknown key "stowage.colour"`} {
		if !strings.Contains(con, want) {
			fail("banner lacks %q", want)
		}
	}

	// From the host, through the forwarded port.
	url := fmt.Sprintf("http://127.0.0.1:%d/v1/inventory", port)
	var body []byte
	client := &http.Client{Timeout: 10 * time.Second}
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := client.Get(url)
		if err == nil {
			body, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode == http.StatusOK {
				break
			}
			err = fmt.Errorf("status %s: %s", resp.Status, body)
		}
		if time.Now().After(deadline) {
			fail("GET %s: %v", url, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	var inv struct {
		Drives []map[string]any `json:"drives"`
	}
	if err := json.Unmarshal(body, &inv); err != nil {
		fail("inventory: %v: %s", err, body)
	}
	var serials []string
	for _, d := range inv.Drives {
		serials = append(serials, findString(d, "serial")...)
	}
	for _, want := range []string{"BOOTNVME0", "BOOTVIRT0"} {
		if !slices.Contains(serials, want) {
			fail("inventory from the host lacks drive %s (serials %v): %s", want, serials, body)
		}
	}
	t.Logf("inventory from the host: %d drives, serials %v", len(inv.Drives), serials)

	// The rescue shell: Enter on the console starts it; a command runs in it.
	typed := time.Now()
	if _, err := io.WriteString(typist, "\n"); err != nil {
		fail("typing on the console: %v", err)
	}
	shCtx, cancelSh := context.WithTimeout(ctx, time.Minute)
	defer cancelSh()
	if _, err := vm.WaitConsole(shCtx, func(l string) bool { return strings.Contains(l, "stowage-init: rescue shell /bin/gosh") }); err != nil {
		fail("Enter on the console: no rescue shell: %v", err)
	}
	// The shell's line editor may come up after the command is typed;
	// the tty keeps what arrives meanwhile, but type again (bounded) if
	// no answer comes. $((6*7)) tells the answer from the echoed command.
	answered := false
	for try := 0; try < 4 && !answered; try++ {
		if _, err := io.WriteString(typist, "echo stowage-rescue-$((6*7))\n"); err != nil {
			fail("typing on the console: %v", err)
		}
		tryCtx, cancelTry := context.WithTimeout(ctx, 30*time.Second)
		_, err := vm.WaitConsole(tryCtx, func(l string) bool { return strings.Contains(l, "stowage-rescue-42") })
		cancelTry()
		answered = err == nil
	}
	if !answered {
		fail("the rescue shell never answered echo stowage-rescue-$((6*7)) with stowage-rescue-42")
	}
	t.Logf("rescue shell: Enter to its answer of a command: %s", time.Since(typed).Round(100*time.Millisecond))

	// SIGTERM to the init (from the rescue shell: kill's default signal):
	// it stops hwmgr, syncs, flushes the drives and powers off. (The ACPI
	// power button, make run's Ctrl-C, is TestVMNode's last step.)
	killed := time.Now()
	if _, err := io.WriteString(typist, "kill 1\n"); err != nil {
		fail("typing on the console: %v", err)
	}
	offCtx, cancelOff := context.WithTimeout(ctx, 90*time.Second)
	defer cancelOff()
	if err := vm.Wait(offCtx); err != nil {
		fail("after SIGTERM to the init, QEMU did not exit cleanly: %v", err)
	}
	con = vm.Console()
	for _, want := range []string{"shutting down (signal terminated)", "hwmgr: ", "drives synced; powering off"} {
		if !strings.Contains(con, want) {
			fail("shutdown console lacks %q", want)
		}
	}
	t.Logf("SIGTERM to the init (kill 1 in the rescue shell) to QEMU exit: %s", time.Since(killed).Round(100*time.Millisecond))
}

// findString collects every string value stored under key, at any depth.
func findString(v any, key string) []string {
	var out []string
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok && k == key {
				out = append(out, s)
			} else {
				out = append(out, findString(e, key)...)
			}
		}
	case []any:
		for _, e := range x {
			out = append(out, findString(e, key)...)
		}
	}
	return out
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// tee passes the console on to w when set (STOWAGE_VM_CONSOLE=1).
type tee struct{ w io.Writer }

func (c *tee) Write(p []byte) (int, error) {
	if c.w != nil {
		_, _ = c.w.Write(p)
	}
	return len(p), nil
}
