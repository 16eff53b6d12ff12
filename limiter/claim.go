package limiter

import (
	"context"
	"encoding/binary"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// claimKey is one key Claim recorded, of one project.
type claimKey struct{ project, key string }

// claimSet holds the keys claimed and not yet expired, with what is not on file yet.
type claimSet struct {
	mu      sync.Mutex
	until   map[claimKey]int64 // unix ns
	pending []claimKey         // claimed since the last flush
	swept   int64              // clock of the last sweep for expired claims
}

// claimSweepEvery is how often expired claims are dropped: checking every one each second
// would cost more than the memory they hold.
const claimSweepEvery = time.Minute

// Claim implements Store. A claim is kept (and written behind, like everything else) until
// until has passed on the store's clock; claiming a key held is false.
func (e *Embedded) Claim(_ context.Context, project, key string, until time.Time) (bool, error) {
	if e.closed.Load() {
		return false, ErrClosed
	}
	c := &e.claims
	c.mu.Lock()
	defer c.mu.Unlock()
	k := claimKey{project, key}
	if _, held := c.until[k]; held {
		return false, nil
	}
	k = claimKey{strings.Clone(project), strings.Clone(key)} // outlives the caller's buffers
	if c.until == nil {
		c.until = map[claimKey]int64{}
	}
	c.until[k] = until.UnixNano()
	if e.db != nil {
		c.pending = append(c.pending, k)
	}
	return true, nil
}

// claimsToWrite takes the claims not yet on file (with their times), and the expired ones to
// delete when a sweep is due at clock.
func (c *claimSet) claimsToWrite(clock int64) (put []claimKey, at []int64, expired []claimKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range c.pending {
		if t, ok := c.until[k]; ok {
			put, at = append(put, k), append(at, t)
		}
	}
	clear(c.pending)
	c.pending = c.pending[:0]
	if clock != 0 && clock-c.swept >= int64(claimSweepEvery) {
		c.swept = clock
		for k, t := range c.until {
			if t <= clock {
				delete(c.until, k)
				expired = append(expired, k)
			}
		}
	}
	return put, at, expired
}

// unwritten puts back claims a failed write did not save.
func (c *claimSet) unwritten(put []claimKey) {
	c.mu.Lock()
	c.pending = append(c.pending, put...)
	c.mu.Unlock()
}

func appendClaimKey(b []byte, k claimKey) []byte { return append(appendString(b, k.project), k.key...) }

// writeClaims puts claims into the file and deletes expired ones.
func writeClaims(tx *bolt.Tx, put []claimKey, at []int64, expired []claimKey) error {
	bk := tx.Bucket(bucketClaims)
	for i, k := range put {
		if err := bk.Put(appendClaimKey(nil, k), binary.BigEndian.AppendUint64(nil, uint64(at[i]))); err != nil {
			return err
		}
	}
	for _, k := range expired {
		if err := bk.Delete(appendClaimKey(nil, k)); err != nil {
			return err
		}
	}
	return nil
}

// loadClaims reads back the claims on file that the wall clock has not expired (no call has
// told the store the time yet), and deletes the others.
func (e *Embedded) loadClaims(tx *bolt.Tx) error {
	bk, err := tx.CreateBucketIfNotExists(bucketClaims)
	if err != nil {
		return err
	}
	now := time.Now().UnixNano()
	var expired [][]byte
	e.claims.until = map[claimKey]int64{}
	err = bk.ForEach(func(k, v []byte) error {
		project, rest, err := readString(k)
		if err != nil || len(v) != 8 {
			return errCorrupt
		}
		until := int64(binary.BigEndian.Uint64(v))
		if until <= now {
			expired = append(expired, k)
			return nil
		}
		e.claims.until[claimKey{project, string(rest)}] = until
		return nil
	})
	for _, k := range expired {
		if err == nil {
			err = bk.Delete(k)
		}
	}
	return err
}
