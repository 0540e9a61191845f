//go:build vmtest

package image_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stowage/stowage/bootstrap/nodeinit"
	"github.com/stowage/stowage/image"
	"github.com/stowage/stowage/osd/client"
	"github.com/stowage/stowage/qemu"
)

// TestVMNode is the first end-to-end test of a whole node, what `make
// run` boots: the image with 12 drives of five kinds. From the host,
// through the forwarded ports: hwmgr's inventory lists all 12 with the
// right transports, the ZNS namespaces host-managed with their zone
// geometry, SMART data for the NVMe and SATA drives; the OSD takes PUTs
// and serves GETs. Then QEMU is killed (a power cut) and the node boots
// again on the same drive images: every acknowledged block reads back.
// Last, the ACPI power button through VM.PowerDown (what `make run` does
// on Ctrl-C) powers the node off cleanly.
func TestVMNode(t *testing.T) {
	needVM(t)
	ctx := context.Background()
	if dl, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-20*time.Second))
		defer cancel()
	}
	out := buildImage(t, ctx)

	drivesDir, err := os.MkdirTemp("", "stwnode")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(drivesDir)
	hp, op := freePort(t), freePort(t)
	for op == hp {
		op = freePort(t)
	}
	node := qemu.Node{ImageDir: out, DrivesDir: drivesDir, HwmgrPort: hp, OSDPort: op}
	hwmgr := fmt.Sprintf("http://127.0.0.1:%d", hp)
	osd := fmt.Sprintf("http://127.0.0.1:%d", op)
	hc := &http.Client{Timeout: 30 * time.Second}

	// Boot 1.
	vm := bootNode(t, ctx, node)
	inv := waitInventory(t, ctx, vm, hc, hwmgr+"/v1/inventory", func(inv inventory) error {
		for _, d := range inv.Drives {
			if p := d.Identity.Transport; (p == "nvme" || p == "sata") && (d.SMART == nil || d.SMART.Protocol == "") {
				return fmt.Errorf("no SMART data yet for %s (%s)", d.Identity.Serial, p)
			}
		}
		return nil
	})
	checkInventory(t, vm, inv)

	oc, err := client.New(osd, client.Options{HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	acked := putBlocks(t, ctx, vm, oc, 24)

	// Power cut: nothing the guest did not hand to the drives survives.
	vm.Kill()
	<-vm.Done()
	t.Logf("power cut (QEMU killed) with %d acknowledged blocks", len(acked))

	// Boot 2, same drive images.
	vm = bootNode(t, ctx, node)
	inv = waitInventory(t, ctx, vm, hc, hwmgr+"/v1/inventory", func(inv inventory) error {
		for _, d := range inv.Drives {
			if p := d.Identity.Transport; (p == "nvme" || p == "sata") && (d.SMART == nil || d.SMART.Protocol == "") {
				return fmt.Errorf("no SMART data yet for %s (%s)", d.Identity.Serial, p)
			}
		}
		return nil
	})
	checkInventory(t, vm, inv) // the labels the OSD wrote show as their states
	getBlocks(t, ctx, vm, oc, acked)
	t.Logf("after the power cut every one of %d acknowledged blocks read back", len(acked))
	if st, err := oc.Status(ctx); err == nil {
		j, _ := json.Marshal(st)
		t.Logf("osd status after the reboot: %.600s", j)
	}

	// make run's Ctrl-C: qemu/cmd/node calls VM.PowerDown, the ACPI power
	// button; the init stops the OSD and hwmgr, flushes the drives and
	// powers off, and QEMU exits with status 0.
	pressed := time.Now()
	offCtx, cancelOff := context.WithTimeout(ctx, 2*time.Minute)
	defer cancelOff()
	if err := vm.PowerDown(offCtx); err != nil {
		nodeFail(t, vm, "power button (make run's Ctrl-C): %v", err)
	}
	con := vm.Console()
	for _, want := range []string{"shutting down (power button)", "drives synced; powering off"} {
		if !strings.Contains(con, want) {
			nodeFail(t, vm, "shutdown console lacks %q", want)
		}
	}
	t.Logf("power button (make run's Ctrl-C path) to QEMU exit: %s", time.Since(pressed).Round(100*time.Millisecond))
}

// needVM skips (fails under CI) without QEMU or a host kernel.
func needVM(t *testing.T) {
	t.Helper()
	if _, err := image.NewestKernel("/boot", "/lib/modules"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	if _, err := os.Stat("/usr/bin/qemu-system-x86_64"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
}

// buildImage builds the image into out/vmtest-image of the module, reused
// while its inputs do not change (image.Config.Cache).
func buildImage(t *testing.T, ctx context.Context) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(filepath.Dir(wd), "out", "vmtest-image")
	t0 := time.Now()
	m, err := image.Build(ctx, image.Config{Out: out, Version: "vmtest", Cache: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("image ready in %s (initramfs %d bytes)", time.Since(t0).Round(time.Second), m.Artifacts[1].Size)
	return out
}

// bootNode starts the node and waits for hwmgr's ready marker (and the
// OSD's, when the image has it).
func bootNode(t *testing.T, ctx context.Context, node qemu.Node) *qemu.VM {
	t.Helper()
	if os.Getenv("STOWAGE_VM_CONSOLE") == "1" {
		node.Console = os.Stderr
	}
	m, err := node.Machine()
	if err != nil {
		t.Fatal(err)
	}
	vm, err := qemu.Start(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vm.Close() })
	bootCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if _, err := vm.WaitConsole(bootCtx, func(l string) bool { return strings.Contains(l, nodeinit.ReadyMarker) }); err != nil {
		nodeFail(t, vm, "waiting for %q: %v", nodeinit.ReadyMarker, err)
	}
	t.Logf("QEMU start to hwmgr API ready: %s", time.Since(vm.Started).Round(100*time.Millisecond))
	if _, err := vm.WaitConsole(bootCtx, func(l string) bool { return strings.Contains(l, nodeinit.OSDReadyMarker) }); err != nil {
		nodeFail(t, vm, "waiting for %q: %v", nodeinit.OSDReadyMarker, err)
	}
	t.Logf("QEMU start to osd API ready: %s", time.Since(vm.Started).Round(100*time.Millisecond))
	return vm
}

func nodeFail(t *testing.T, vm *qemu.VM, format string, args ...any) {
	t.Helper()
	t.Fatalf(format+"\n--- console tail ---\n%s", append(args, vm.ConsoleTail(100))...)
}

type inventory struct {
	Drives []invDrive `json:"drives"`
}

// invDrive is what the test reads of one drive of hwmgr's inventory.
type invDrive struct {
	Identity struct {
		Name, Serial, Transport, Zoned string
		ZoneSize                       int64 `json:"zone_size_bytes"`
		ZoneCount                      int64 `json:"zone_count"`
		Size                           int64 `json:"size_bytes"`
	} `json:"identity"`
	Label *struct {
		State string `json:"state"`
	} `json:"label"`
	SMART *struct {
		Protocol string `json:"protocol"`
		Passed   *bool  `json:"passed"`
	} `json:"smart"`
}

// waitInventory GETs hwmgr's inventory through the forwarded port until
// it lists 12 drives and ready accepts it (bounded: 2 minutes).
func waitInventory(t *testing.T, ctx context.Context, vm *qemu.VM, client *http.Client, url string, ready func(inventory) error) inventory {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var inv inventory
		err := getJSON(ctx, client, url, &inv)
		if err == nil && len(inv.Drives) != 12 {
			err = fmt.Errorf("%d drives listed, want 12", len(inv.Drives))
		}
		if err == nil {
			err = ready(inv)
		}
		if err == nil {
			return inv
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			nodeFail(t, vm, "inventory from the host: %v", err)
		}
		time.Sleep(time.Second)
	}
}

func getJSON(ctx context.Context, client *http.Client, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	return json.Unmarshal(body, v)
}

// checkInventory: each drive of qemu.NodeDrives is listed by serial with
// its transport; the ZNS namespaces host-managed with 64 MiB zones (16 in
// 1 GiB), the others not zoned; SMART passed for NVMe and SATA.
func checkInventory(t *testing.T, vm *qemu.VM, inv inventory) {
	t.Helper()
	transport := map[qemu.DriveKind]string{qemu.NVMeZNS: "nvme", qemu.NVMe: "nvme", qemu.SATA: "sata", qemu.VirtioBlk: "virtio", qemu.SCSI: "scsi"}
	var lines []string
	for _, want := range qemu.NodeDrives("", 0) {
		i := slices.IndexFunc(inv.Drives, func(d invDrive) bool { return d.Identity.Serial == want.Serial })
		if i < 0 {
			nodeFail(t, vm, "inventory lacks drive %s (%s)", want.Serial, want.Kind)
		}
		d := inv.Drives[i]
		id := d.Identity
		if id.Transport != transport[want.Kind] || id.Size != want.Size {
			t.Errorf("%s (%s): transport %q size %d, want %q %d", want.Serial, want.Kind, id.Transport, id.Size, transport[want.Kind], want.Size)
		}
		if want.Kind == qemu.NVMeZNS {
			if id.Zoned != "host-managed" || id.ZoneSize != want.ZoneSize || id.ZoneCount != want.Size/want.ZoneSize {
				t.Errorf("%s: zoned %q zone size %d count %d, want host-managed %d x %d", want.Serial, id.Zoned, id.ZoneSize, id.ZoneCount, want.ZoneSize, want.Size/want.ZoneSize)
			}
		} else if id.Zoned != "" && id.Zoned != "none" {
			t.Errorf("%s (%s): zoned %q, want none", want.Serial, want.Kind, id.Zoned)
		}
		smart := "-"
		if want.Kind == qemu.NVMe || want.Kind == qemu.NVMeZNS || want.Kind == qemu.SATA {
			if d.SMART == nil || d.SMART.Passed == nil || !*d.SMART.Passed {
				t.Errorf("%s (%s): SMART %+v, want data that passed", want.Serial, want.Kind, d.SMART)
			} else {
				smart = d.SMART.Protocol + " passed"
			}
		}
		state := "?"
		if d.Label != nil {
			state = d.Label.State
		}
		lines = append(lines, fmt.Sprintf("%-8s %-9s %-6s %-12s zones=%d smart=%s state=%s", id.Name, id.Serial, id.Transport, id.Zoned, id.ZoneCount, smart, state))
	}
	t.Logf("inventory from the host:\n  %s", strings.Join(lines, "\n  "))
}

// putBlocks PUTs n blocks of 4 KiB-1 MiB through the OSD's API (osd/client)
// and returns those acknowledged, by key; it reads each back at once.
func putBlocks(t *testing.T, ctx context.Context, vm *qemu.VM, c *client.Client, n int) map[client.Key][]byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(8, 8))
	acked := map[client.Key][]byte{}
	t0 := time.Now()
	for i := range n {
		data := make([]byte, 4096<<rng.IntN(9))
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		key, _, err := c.Put(ctx, data)
		if err != nil {
			nodeFail(t, vm, "PUT block %d (%d bytes): %v", i, len(data), err)
		}
		if key != sha256.Sum256(data) {
			nodeFail(t, vm, "PUT block %d: key %x is not its SHA-256", i, key)
		}
		acked[key] = data
	}
	t.Logf("%d blocks PUT and acknowledged in %s", len(acked), time.Since(t0).Round(100*time.Millisecond))
	getBlocks(t, ctx, vm, c, acked)
	return acked
}

// getBlocks GETs every block and compares its bytes.
func getBlocks(t *testing.T, ctx context.Context, vm *qemu.VM, c *client.Client, blocks map[client.Key][]byte) {
	t.Helper()
	for key, want := range blocks {
		got, err := c.Get(ctx, key)
		if err != nil || !bytes.Equal(got, want) {
			nodeFail(t, vm, "GET %x: %d bytes (want %d), err %v", key, len(got), len(want), err)
		}
	}
}
