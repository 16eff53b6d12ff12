package redisstore

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/behest/caddy-behest/limiter"
	"github.com/behest/caddy-behest/limiter/storetest"
)

// Run both for a ratio:
//
//	go test -run XXX -bench 'ReserveSettle' -benchmem ./limiter/redisstore/
func BenchmarkRedisReserveSettle(b *testing.B) {
	srv := startRedis(b)
	s := newStore(b, srv, Options{}, true)
	benchReserveSettle(b, s, countCommands(s.Client()))
}

func BenchmarkEmbeddedReserveSettle(b *testing.B) {
	e, err := limiter.OpenEmbedded("", limiter.EmbeddedOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	benchReserveSettle(b, e, nil)
}

// benchReserveSettle admits and settles one request per op, over 100 users with every limit
// on, serially (latency) and from GOMAXPROCS goroutines (throughput).
func benchReserveSettle(b *testing.B, s limiter.Store, counter *commandCounter) {
	reqs := make([]limiter.Request, 100)
	for i := range reqs {
		reqs[i] = testRequest("p_bench", fmt.Sprintf("org_%d:user_%d", i%7, i))
	}
	ctx := context.Background()
	used := limiter.Usage{InputTokens: 300, OutputTokens: 200, Cost: 500}
	var seq atomic.Int64
	one := func() {
		i := seq.Add(1)
		now := storetest.Base.Add(time.Duration(i) * time.Millisecond)
		res, dec, err := s.Reserve(ctx, now, reqs[i%int64(len(reqs))])
		if err != nil || !dec.Allowed {
			b.Fatalf("Reserve: %+v, %v", dec, err)
		}
		if _, err := s.Settle(ctx, now, res, used); err != nil {
			b.Fatal(err)
		}
	}
	for range 200 { // load the scripts, fill the windows
		one()
	}
	report := func(b *testing.B) {
		if counter != nil {
			trips, _ := counter.reset()
			b.ReportMetric(float64(trips)/float64(b.N), "roundtrips/op")
		}
	}
	b.Run("serial", func(b *testing.B) {
		if counter != nil {
			counter.reset()
		}
		b.ReportAllocs()
		for b.Loop() {
			one()
		}
		report(b)
	})
	b.Run("parallel", func(b *testing.B) {
		if counter != nil {
			counter.reset()
		}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				one()
			}
		})
		report(b)
	})
}
