package volume

import (
	"fmt"
	"io"
	"sync"
)

// Block is a block read by ReadBlock: its bytes as the data fragments,
// in pooled buffers, so that a read neither joins nor copies them. Write
// it out with WriteTo or WriteRange (or copy it with Bytes), then Release
// it; it must not be used after Release.
type Block struct {
	parts   [][]byte // the block's bytes in order (data shards, padding cut)
	size    int
	release func()
	once    sync.Once
}

// BlockOf wraps data, which the Block then holds, as a Block (its
// Release does nothing).
func BlockOf(data []byte) *Block { return &Block{parts: [][]byte{data}, size: len(data)} }

// newBlock returns the first size bytes of shards as a Block; release
// gives back what backs them.
func newBlock(shards [][]byte, size int, release func()) *Block {
	b := &Block{size: size, release: release}
	left := size
	for _, s := range shards {
		if left == 0 {
			break
		}
		n := min(len(s), left)
		b.parts = append(b.parts, s[:n])
		left -= n
	}
	return b
}

// Len is the block's size in bytes.
func (b *Block) Len() int { return b.size }

// WriteTo writes the whole block to w.
func (b *Block) WriteTo(w io.Writer) (int64, error) { return b.WriteRange(w, 0, int64(b.size)) }

// WriteRange writes n bytes of the block from offset off to w.
func (b *Block) WriteRange(w io.Writer, off, n int64) (int64, error) {
	if off < 0 || n < 0 || off+n > int64(b.size) {
		return 0, fmt.Errorf("volume: range %d+%d outside a block of %d bytes", off, n, b.size)
	}
	var done int64
	for _, p := range b.parts {
		if n == 0 {
			break
		}
		if off >= int64(len(p)) {
			off -= int64(len(p))
			continue
		}
		p = p[off:min(int64(len(p)), off+n)]
		off = 0
		m, err := w.Write(p)
		done += int64(m)
		n -= int64(m)
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// Bytes returns a copy of the block's bytes.
func (b *Block) Bytes() []byte {
	out := make([]byte, 0, b.size)
	for _, p := range b.parts {
		out = append(out, p...)
	}
	return out
}

// Release gives the block's buffers back; the Block and every slice of
// it are unusable afterwards. Release is idempotent.
func (b *Block) Release() {
	b.once.Do(func() {
		b.parts = nil
		if b.release != nil {
			b.release()
		}
	})
}
