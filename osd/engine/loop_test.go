package engine

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stowage/stowage/osd/zone"
	"github.com/stowage/stowage/qemu/loopdev"
)

const loopZoneSize = 1 << 20

func openLoop(t testing.TB, path string) *zone.Emulated {
	t.Helper()
	d, err := zone.OpenEmulated(path, zone.EmulatedOptions{ZoneSize: loopZoneSize})
	if err != nil {
		t.Fatal(err)
	}
	if d.Info().Kind != zone.KindEmulated {
		t.Fatalf("%s: kind %v, want emulated", path, d.Info().Kind)
	}
	return d
}

func TestLoopDevice(t *testing.T) {
	path := loopdev.Zero(t, 64<<20)
	dev := openLoop(t, path)
	defer dev.Close()
	runSmallWorkload(t, dev)
}

// blockFor returns the deterministic block number i of the kill test.
func blockFor(i int) []byte {
	rng := rand.New(rand.NewPCG(uint64(i), 77))
	return randomBlock(rng, 200<<10)
}

const childEnv = "STOWAGE_ENGINE_KILL_CHILD"

// TestKill9 runs a child process (this test binary) that puts and deletes
// blocks on a loop device with 8 concurrent writers and prints each
// operation after it returns; the parent kills it with SIGKILL mid-stream,
// recovers the device and checks every acknowledged put and delete.
func TestKill9(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		t.Skip("in the child")
	}
	path := loopdev.Zero(t, 160<<20)
	for round := 0; round < 3; round++ {
		acked, deleted := runChild(t, path, round)
		dev := openLoop(t, path)
		e := mustOpen(t, dev, Options{FirstZone: 1, Logger: quietLogger()})
		ctx := context.Background()
		for i := range acked {
			if deleted[i] || i%5 == 0 { // a delete may have been in flight
				continue
			}
			got, err := e.Get(ctx, BlockID(blockFor(i)))
			if err != nil {
				t.Fatalf("round %d: acknowledged block %d: %v", round, i, err)
			}
			if string(got) != string(blockFor(i)) {
				t.Fatalf("round %d: acknowledged block %d: bytes differ", round, i)
			}
		}
		for i := range deleted {
			if ok, err := e.Has(ctx, BlockID(blockFor(i))); ok || err != nil {
				t.Fatalf("round %d: deleted block %d came back (%v, %v)", round, i, ok, err)
			}
		}
		t.Logf("round %d: %d puts and %d deletes acknowledged before SIGKILL, all recovered", round, len(acked), len(deleted))
		e.Close()
		dev.Close()
	}
}

func runChild(t *testing.T, path string, round int) (acked, deleted map[int]bool) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9Child$", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"="+path, "STOWAGE_ENGINE_KILL_ROUND="+strconv.Itoa(round))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked, deleted = map[int]bool{}, map[int]bool{}
	killAt := 150 + round*100
	sc := bufio.NewScanner(out)
	timeout := time.AfterFunc(2*time.Minute, func() { cmd.Process.Kill() })
	defer timeout.Stop()
	n := 0
	for sc.Scan() {
		var op string
		var i int
		if _, err := fmt.Sscanf(sc.Text(), "%s %d", &op, &i); err != nil {
			continue
		}
		switch op {
		case "PUT":
			acked[i] = true
		case "DEL":
			deleted[i] = true
		default:
			continue
		}
		if n++; n == killAt {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		}
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child: %v, want killed by SIGKILL (after %d operations)", err, n)
	}
	return acked, deleted
}

// TestKill9Child is the child of TestKill9: it runs only with the
// environment variable set and writes until it is killed.
func TestKill9Child(t *testing.T) {
	path := os.Getenv(childEnv)
	if path == "" {
		t.Skip("only as the child of TestKill9")
	}
	round, _ := strconv.Atoi(os.Getenv("STOWAGE_ENGINE_KILL_ROUND"))
	dev := openLoop(t, path)
	e := mustOpen(t, dev, Options{FirstZone: 1, Logger: quietLogger()})
	ctx := context.Background()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := round*100000 + w; ; i += 8 {
				b := blockFor(i)
				if err := e.Put(ctx, BlockID(b), b); err != nil {
					fmt.Fprintf(os.Stderr, "put %d: %v\n", i, err)
					os.Exit(2)
				}
				mu.Lock()
				fmt.Printf("PUT %d\n", i)
				mu.Unlock()
				if i%5 == 0 {
					if err := e.Delete(ctx, BlockID(b)); err != nil {
						fmt.Fprintf(os.Stderr, "delete %d: %v\n", i, err)
						os.Exit(2)
					}
					mu.Lock()
					fmt.Printf("DEL %d\n", i)
					mu.Unlock()
				}
				if i%97 == 0 {
					if _, err := e.Compact(ctx, 0); err != nil {
						fmt.Fprintf(os.Stderr, "compact: %v\n", err)
						os.Exit(2)
					}
				}
			}
		}()
	}
	wg.Wait()
}
