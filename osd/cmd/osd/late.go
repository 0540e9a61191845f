package main

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/stowage/stowage/osd/server"
	"github.com/stowage/stowage/osd/volume"
)

// backend is what the daemon serves: the store, its admin actions and
// its status.
type backend interface {
	server.Store
	server.Admin
	Status() server.Status
}

// late is the API's backend before and after the store is open: until
// set, every call fails with server.ErrUnavailable (503) and ready is
// false.
type late struct{ v atomic.Value } // holds holder

type holder struct{ b backend }

func (l *late) set(b backend) { l.v.Store(holder{b}) }

func (l *late) ready() bool {
	h, _ := l.v.Load().(holder)
	return h.b != nil
}

var errOpening = fmt.Errorf("%w: the drives are still being opened", server.ErrUnavailable)

func (l *late) get() (backend, error) {
	h, _ := l.v.Load().(holder)
	if h.b == nil {
		return nil, errOpening
	}
	return h.b, nil
}

func (l *late) Put(ctx context.Context, key volume.Key, data []byte) (bool, error) {
	b, err := l.get()
	if err != nil {
		return false, err
	}
	return b.Put(ctx, key, data)
}

func (l *late) Get(ctx context.Context, key volume.Key) ([]byte, error) {
	b, err := l.get()
	if err != nil {
		return nil, err
	}
	return b.Get(ctx, key)
}

// GetBlock is Get without copying the block (server.BlockGetter).
func (l *late) GetBlock(ctx context.Context, key volume.Key) (*volume.Block, error) {
	b, err := l.get()
	if err != nil {
		return nil, err
	}
	return server.GetBlock(ctx, b, key)
}

func (l *late) Stat(ctx context.Context, key volume.Key) (volume.BlockInfo, error) {
	b, err := l.get()
	if err != nil {
		return volume.BlockInfo{}, err
	}
	return b.Stat(ctx, key)
}

func (l *late) Delete(ctx context.Context, key volume.Key) error {
	b, err := l.get()
	if err != nil {
		return err
	}
	return b.Delete(ctx, key)
}

func (l *late) List(ctx context.Context, after volume.Key, limit int) ([]volume.Key, error) {
	b, err := l.get()
	if err != nil {
		return nil, err
	}
	return b.List(ctx, after, limit)
}

func (l *late) AddDrive(ctx context.Context, path string) error {
	b, err := l.get()
	if err != nil {
		return err
	}
	return b.AddDrive(ctx, path)
}

func (l *late) RemoveDrive(ctx context.Context, path string) error {
	b, err := l.get()
	if err != nil {
		return err
	}
	return b.RemoveDrive(ctx, path)
}

func (l *late) Drain(ctx context.Context, path string) error {
	b, err := l.get()
	if err != nil {
		return err
	}
	return b.Drain(ctx, path)
}

func (l *late) Scrub(ctx context.Context) error {
	b, err := l.get()
	if err != nil {
		return err
	}
	return b.Scrub(ctx)
}

// Status is empty until the store is open.
func (l *late) Status() server.Status {
	b, err := l.get()
	if err != nil {
		return server.Status{}
	}
	return b.Status()
}
