package node

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stowage/stowage/hwmgr/label"
	"github.com/stowage/stowage/hwmgr/lifecycle"
	"github.com/stowage/stowage/osd/zone"
)

// TestDrain on 8 loop devices (one 4+2 volume, 2 spares) behind fault
// injectors. Drain one member while Puts and Deletes run: every kept
// block reads, the spare holds the slot, the old drive's label says
// drained. Drain a second member while 2 other members fail with EIO
// all through it (reads checked repeatedly during the drain): every
// block stays readable, as the old drive serves until the switch. Then
// with the two drained drives dead too and 2 other members failing,
// everything still reads.
func TestDrain(t *testing.T) {
	ctx := context.Background()
	ds, fs := faulty(t, open(t, loops(t, 8)))
	n, err := Open(ctx, ds, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	rng := rand.New(rand.NewPCG(21, 22))
	bs := putBlocks(t, n, rng, 40, 300<<10)
	var members []int
	for i, d := range ds {
		if role(n.Status(), d.Path).Role == RoleMember {
			members = append(members, i)
		}
	}
	if len(members) != 6 {
		t.Fatalf("%d members", len(members))
	}
	if err := n.Drain(ctx, ds[members[0]].Path); err != nil { // drain 1: quiet
		t.Fatal(err)
	}
	readAll(t, n, bs)

	// Drain 2 with writes and deletes running.
	var wg sync.WaitGroup
	var mu sync.Mutex
	var extra []block
	errc := make(chan error, 1)
	stop := make(chan struct{})
	wg.Go(func() {
		wr := rand.New(rand.NewPCG(5, 6))
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			b := randBlock(wr, 1+wr.IntN(100<<10))
			if _, err := n.Put(ctx, b.key, b.data); err != nil {
				errc <- err
				return
			}
			if i%4 == 3 {
				if err := n.Delete(ctx, b.key); err != nil {
					errc <- err
					return
				}
				continue
			}
			mu.Lock()
			extra = append(extra, b)
			mu.Unlock()
		}
	})
	err = n.Drain(ctx, ds[members[1]].Path)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		t.Fatalf("writer during the drain: %v", err)
	default:
	}
	all := append(append([]block(nil), bs...), extra...)
	readAll(t, n, all)
	st := n.Status()
	for _, i := range members[:2] {
		if r := role(st, ds[i].Path); r.Role != RoleDrained {
			t.Errorf("%s: %s (%s), want drained", ds[i].Path, r.Role, r.Detail)
		}
		a, err := label.Open(ctx, ds[i].Dev, label.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if r, _ := a.Current(); r.State != lifecycle.Drained || r.Owner != "" || len(r.Payload) != 0 {
			t.Errorf("%s label: state %s owner %q, want drained and free", ds[i].Path, r.State, r.Owner)
		}
	}
	var jobs int
	for _, j := range st.Jobs {
		if j.Kind == "drain" {
			jobs++
			if j.Running || j.Err != "" || j.Progress.Done != j.Progress.Total || j.Progress.Total < len(bs) {
				t.Errorf("drain job %+v", j)
			}
		}
	}
	if jobs != 1 || st.Counter.Moved < int64(2*len(bs)) {
		t.Errorf("%d drain jobs, %d fragments moved", jobs, st.Counter.Moved)
	}
	if v := st.Volumes[0]; v.State != "healthy" || !v.Writable {
		t.Errorf("volume after drains: %s writable=%v", v.State, v.Writable)
	}
	for _, s := range st.Volumes[0].Slots {
		if s.Fragments != len(all) {
			t.Errorf("slot %d holds %d fragments, want %d", s.Slot, s.Fragments, len(all))
		}
	}
	// No spare left: a third drain is refused, nothing changes.
	if err := n.Drain(ctx, ds[members[2]].Path); !errors.Is(err, ErrBusy) {
		t.Errorf("drain without a spare: %v, want ErrBusy", err)
	}
	// The drained drives dead, and 2 of the remaining original members.
	for _, i := range []int{members[0], members[1], members[2], members[3]} {
		if err := fs[i].Inject(zone.Rule{}); err != nil {
			t.Fatal(err)
		}
	}
	readAll(t, n, all)
}

// TestDrainWhileDegraded: two members fail (EIO) all through a drain of a
// third; reads during the drain and after it get every block (the
// drained drive serves until the switch), and the drain completes.
func TestDrainWhileDegraded(t *testing.T) {
	ctx := context.Background()
	ds, fs := faulty(t, open(t, loops(t, 7)))
	n, err := Open(ctx, ds, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	bs := putBlocks(t, n, rand.New(rand.NewPCG(31, 32)), 40, 300<<10)
	var members []int
	for i, d := range ds {
		if role(n.Status(), d.Path).Role == RoleMember {
			members = append(members, i)
		}
	}
	for _, i := range members[1:3] {
		if err := fs[i].Inject(zone.Rule{Ops: zone.OpRead}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	reads := 0
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, b := range bs {
				got, err := n.Get(ctx, b.key)
				if err != nil || !bytes.Equal(got, b.data) {
					t.Errorf("get %x during the drain: %v", b.key[:8], err)
					return
				}
			}
			reads++
		}
	})
	err = n.Drain(ctx, ds[members[0]].Path)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d full read passes during the drain", reads)
	readAll(t, n, bs)
	// Now the drained drive is gone for good: still every block.
	if err := fs[members[0]].Inject(zone.Rule{}); err != nil {
		t.Fatal(err)
	}
	readAll(t, n, bs)
}

// TestDrainRequestedByLabel: hwmgr asks for a drain by setting a
// member's label state to draining through its own open of the device
// (as another process would); Run notices and drains the drive onto the
// spare.
func TestDrainRequestedByLabel(t *testing.T) {
	ctx := context.Background()
	n, bs := labelCheckNode(t, 41)
	victim, a := setLabel(t, n, lifecycle.Draining)
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = n.Run(rctx) })
	defer func() { cancel(); wg.Wait() }()
	waitFor(t, n, "the requested drain", func(s Status) bool { return role(s, victim).Role == RoleDrained })
	readAll(t, n, bs)
	if err := a.Rescan(ctx); err != nil {
		t.Fatal(err)
	}
	if r, _ := a.Current(); r.State != lifecycle.Drained || r.Owner != "" {
		t.Errorf("label after the drain: state %s owner %q", r.State, r.Owner)
	}
}

// labelCheckNode opens a node on 7 loop devices (a 4+2 volume and a
// spare) that checks labels every 50 ms, and puts 20 blocks; the node
// closes when the test ends.
func labelCheckNode(t testing.TB, seed uint64) (*Node, []block) {
	t.Helper()
	o := testOpts()
	o.LabelCheckInterval = 50 * time.Millisecond
	o.ScrubDelay = time.Hour
	n, err := Open(context.Background(), open(t, loops(t, 7)), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n, putBlocks(t, n, rand.New(rand.NewPCG(seed, seed)), 20, 200<<10)
}

// setLabel sets the label state of the first member to state through a
// descriptor of its own, as hwmgr would from its process. It returns the
// drive's path and that label area.
func setLabel(t testing.TB, n *Node, state lifecycle.State) (string, *label.Area) {
	t.Helper()
	ctx := context.Background()
	var victim string
	for _, d := range n.Status().Drives {
		if d.Role == RoleMember {
			victim = d.Path
			break
		}
	}
	hw := open(t, []string{victim})[0] // hwmgr's own descriptor
	a, err := label.Open(ctx, hw.Dev, label.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Update(ctx, func(r *label.Record) error { r.State = state; return nil }); err != nil {
		t.Fatal(err)
	}
	return victim, a
}
