package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/stowage/stowage/hwmgr/label"
	"github.com/stowage/stowage/hwmgr/lifecycle"
	"github.com/stowage/stowage/osd/volume"
	"github.com/stowage/stowage/qemu/loopdev"
)

// TestOpenClaimsOnlyFreeDrives: 12 blank loop devices, one with a GPT,
// one with ext4, one owned by someone else, one failed: the node forms
// one 4+2 volume from six free drives, keeps the rest of the free ones as
// spares, and leaves the other four byte-for-byte untouched, across a
// restart too.
func TestOpenClaimsOnlyFreeDrives(t *testing.T) {
	ctx := context.Background()
	paths := loops(t, 12)
	gpt, ext4, owned, failed := paths[0], paths[5], paths[7], paths[11]
	run(t, "sgdisk", "-n", "1:2048:+8M", "-n", "2:0:0", gpt)
	run(t, "mkfs.ext4", "-q", "-F", ext4)
	for _, p := range []string{owned, failed} {
		ds := open(t, []string{p})
		a, err := label.Open(ctx, ds[0].Dev, label.Options{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = a.Update(ctx, func(r *label.Record) error {
			if p == owned {
				r.Owner, r.State = "ceph", lifecycle.Ready
			} else {
				r.State = lifecycle.Failed
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		ds[0].Dev.Close()
	}
	untouched := []string{gpt, ext4, owned, failed}
	before := map[string]string{}
	for _, p := range untouched {
		before[p] = loopdev.Hash(t, p)
	}
	n, err := Open(ctx, open(t, paths), testOpts())
	if err != nil {
		t.Fatal(err)
	}
	st := n.Status()
	if len(st.Volumes) != 1 {
		t.Fatalf("%d volumes, want 1", len(st.Volumes))
	}
	want := map[string]string{gpt: RoleForeign, ext4: RoleForeign, owned: RoleOwned, failed: RoleUnusable}
	members, spares := 0, 0
	for _, d := range st.Drives {
		if w, ok := want[d.Path]; ok {
			if d.Role != w {
				t.Errorf("%s: role %s (%s), want %s", d.Path, d.Role, d.Detail, w)
			}
			continue
		}
		switch d.Role {
		case RoleMember:
			members++
		case RoleSpare:
			spares++
		default:
			t.Errorf("%s: role %s (%s)", d.Path, d.Role, d.Detail)
		}
	}
	if members != 6 || spares != 2 {
		t.Fatalf("%d members, %d spares; want 6 and 2", members, spares)
	}
	if fs := role(st, gpt).Foreign; !slices.Contains(fs, "gpt") {
		t.Errorf("gpt drive: foreign kinds %v", fs)
	}
	if fs := role(st, ext4).Foreign; !slices.Contains(fs, "ext4") {
		t.Errorf("ext4 drive: foreign kinds %v", fs)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	bs := putBlocks(t, n, rng, 20, 300<<10)
	readAll(t, n, bs)
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	// Restart from the same drives in another order.
	rev := slices.Clone(paths)
	slices.Reverse(rev)
	n, err = Open(ctx, open(t, rev), testOpts())
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if got := len(n.Status().Volumes); got != 1 {
		t.Fatalf("after restart: %d volumes", got)
	}
	readAll(t, n, bs)
	n.Close()
	for _, p := range untouched {
		if h := loopdev.Hash(t, p); h != before[p] {
			t.Errorf("%s changed: %s -> %s", p, before[p], h)
		}
	}
}

// TestConcurrentVolumes: 12 loop devices form two 4+2 volumes; writers
// put, get and delete concurrently (under -race); blocks land on both
// volumes, everything kept reads back, the listing is exact, Stat and
// idempotence hold, bad input is refused.
func TestConcurrentVolumes(t *testing.T) {
	ctx := context.Background()
	n, err := Open(ctx, open(t, loops(t, 12)), testOpts())
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if got := len(n.Status().Volumes); got != 2 {
		t.Fatalf("%d volumes, want 2", got)
	}
	var (
		mu   sync.Mutex
		kept []block
		wg   sync.WaitGroup
	)
	errs := make(chan error, 100)
	for w := range 6 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 9))
			for i := range 25 {
				b := randBlock(rng, 1+rng.IntN(200<<10))
				if _, err := n.Put(ctx, b.key, b.data); err != nil {
					errs <- err
					return
				}
				got, err := n.Get(ctx, b.key)
				if err != nil || !bytes.Equal(got, b.data) {
					errs <- fmt.Errorf("get after put: %v", err)
					return
				}
				if i%3 == 0 {
					if err := n.Delete(ctx, b.key); err != nil {
						errs <- err
						return
					}
					if _, err := n.Get(ctx, b.key); !errors.Is(err, ErrNotFound) {
						errs <- fmt.Errorf("get after delete: %v", err)
						return
					}
					continue
				}
				mu.Lock()
				kept = append(kept, b)
				mu.Unlock()
			}
		})
	}
	// The same block from several writers: stored once.
	shared := randBlock(rand.New(rand.NewPCG(7, 7)), 100<<10)
	var storedN sync.WaitGroup
	var stores, already int
	var smu sync.Mutex
	for range 4 {
		storedN.Go(func() {
			s, err := n.Put(ctx, shared.key, shared.data)
			if err != nil {
				errs <- err
				return
			}
			smu.Lock()
			if s {
				stores++
			} else {
				already++
			}
			smu.Unlock()
		})
	}
	wg.Wait()
	storedN.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if stores != 1 || already != 3 {
		t.Errorf("shared block stored %d times, already %d", stores, already)
	}
	kept = append(kept, shared)
	readAll(t, n, kept)
	var all []Key
	var after Key
	for {
		ks, err := n.List(ctx, after, 7)
		if err != nil {
			t.Fatal(err)
		}
		if len(ks) == 0 {
			break
		}
		all = append(all, ks...)
		after = ks[len(ks)-1]
	}
	var want []Key
	for _, b := range kept {
		want = append(want, b.key)
	}
	slices.SortFunc(want, func(a, b Key) int { return bytes.Compare(a[:], b[:]) })
	if !slices.Equal(all, want) {
		t.Fatalf("listing: %d keys, want %d", len(all), len(want))
	}
	st := n.Status()
	for _, v := range st.Volumes {
		if v.Blocks == 0 {
			t.Errorf("volume %s holds no blocks: placement uses one volume only", v.ID)
		}
		if v.State != "healthy" || !v.Writable {
			t.Errorf("volume %s: %s writable=%v", v.ID, v.State, v.Writable)
		}
	}
	if st.Space.Usable <= 0 || st.Space.Capacity <= st.Space.Usable {
		t.Errorf("space %+v", st.Space)
	}
	bi, err := n.Stat(ctx, shared.key)
	if err != nil || bi.Size != len(shared.data) || bi.Fragments != 6 {
		t.Errorf("stat: %+v %v", bi, err)
	}
	if _, err := n.Put(ctx, shared.key, []byte("not it")); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("put with a wrong key: %v", err)
	}
	if _, err := n.Put(ctx, Key{}, nil); !errors.Is(err, ErrEmpty) {
		t.Errorf("empty put: %v", err)
	}
	big := randBlock(rand.New(rand.NewPCG(3, 3)), 4<<20+1)
	if _, err := n.Put(ctx, big.key, big.data); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversize put: %v", err)
	}
	if err := n.Delete(ctx, big.key); !errors.Is(err, ErrNotFound) {
		t.Errorf("delete of an absent key: %v", err)
	}
	if _, err := n.Stat(ctx, big.key); !errors.Is(err, ErrNotFound) {
		t.Errorf("stat of an absent key: %v", err)
	}
}

// TestInterruptedTargetReleased: a drive left claimed as a drain target
// (owner osd, volume.TargetPayload: a crash mid-drain) is freed at Open
// and becomes a spare; one owned by osd with a payload that is no layout
// is left alone, byte for byte.
func TestInterruptedTargetReleased(t *testing.T) {
	ctx := context.Background()
	paths := loops(t, 8)
	for i, p := range paths[6:] {
		d := open(t, []string{p})[0]
		a, err := label.Open(ctx, d.Dev, label.Options{})
		if err != nil {
			t.Fatal(err)
		}
		payload := []byte(volume.TargetPayload)
		if i == 1 {
			payload = []byte("something else")
		}
		if _, err := a.Update(ctx, func(r *label.Record) error {
			r.Owner, r.State, r.Payload = volume.Owner, lifecycle.InService, payload
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		d.Dev.Close()
	}
	before := loopdev.Hash(t, paths[7])
	n, err := Open(ctx, open(t, paths), testOpts())
	if err != nil {
		t.Fatal(err)
	}
	st := n.Status()
	if r := role(st, paths[6]); r.Role != RoleSpare {
		t.Errorf("interrupted target: %s (%s), want spare", r.Role, r.Detail)
	}
	if r := role(st, paths[7]); r.Role != RoleError {
		t.Errorf("osd-owned drive without a layout: %s (%s), want error", r.Role, r.Detail)
	}
	n.Close()
	if h := loopdev.Hash(t, paths[7]); h != before {
		t.Errorf("the osd-owned drive without a layout changed")
	}
	d := open(t, paths[6:7])[0]
	a, err := label.Open(ctx, d.Dev, label.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := a.Current(); r.Owner != "" || r.State != lifecycle.Ready || len(r.Payload) != 0 {
		t.Errorf("released target's label: owner %q state %s", r.Owner, r.State)
	}
}
