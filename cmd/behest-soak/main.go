// Command behest-soak runs one Caddy with behest (embedded store) for a while under mixed
// traffic and config reloads, and says whether its memory and goroutines stayed flat. The
// traffic: many users (new ones keep arriving, some come back) calling the OpenAI, Anthropic
// and Gemini APIs of an in-process mock provider, JSON and streamed, some beyond their limits
// (429), some leaving streams early, some with bad tokens, plus /v1/me and the usage API. The
// config is reloaded through the admin API every 15-30 s, alternating between two variants.
//
// Each minute it prints the requests and their outcomes, Caddy's RSS, its heap after a forced
// GC and its goroutines (and how many of those serve connections). At the end it compares the
// last minute with the first one after the warm-up, and, after the traffic has stopped and the
// connections have closed, the goroutines at rest with those before the traffic. It exits 1
// when the heap or the goroutines grew beyond the limits, or when answers were wrong (a 5xx, a
// bad token let in, a stream cut short, no answer away from a reload), naming which. The heap and goroutine profiles of each
// minute are kept with Caddy's log when it fails (or with -keep). It is not run in CI; see the
// README's Performance section.
//
//	go build -o /tmp/caddy ./cmd/caddy && go run ./cmd/behest-soak -caddy /tmp/caddy
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/behest/caddy-behest/internal/loadtest"
)

func main() {
	caddyBin := flag.String("caddy", "", "a Caddy built with the plugin (go build -o /tmp/caddy ./cmd/caddy)")
	duration := flag.Duration("duration", 10*time.Minute, "how long the traffic runs")
	warmup := flag.Duration("warmup", time.Minute, "the start not compared: caches and pools fill")
	rate := flag.Int("rate", 400, "requests per second at most")
	conns := flag.Int("c", 32, "concurrent requests at most")
	arrivals := flag.Float64("arrivals", 5, "users arriving per second")
	active := flag.Int("active", 1500, "users in a session at once")
	heavy := flag.Int("heavy", 8, "heavy users (far over their limits) at once; one is replaced each minute")
	reload := flag.Duration("reload", 15*time.Second, "shortest time between reloads; each wait is random up to twice this")
	maxHeapPct := flag.Float64("max-heap-growth", 25, "fail when the heap after GC grew by more than this percentage ...")
	maxHeapMiB := flag.Float64("max-heap-mib", 20, "... or by more than this many MiB")
	maxGoPct := flag.Float64("max-goroutine-growth", 50, "fail when the goroutines other than connections' grew by more than this percentage (and by more than 10)")
	rest := flag.Duration("rest", 2*time.Minute+15*time.Second, "after the traffic, wait this long (longer than reverse_proxy's 2m keep-alive) and measure again; 0: do not")
	keep := flag.Bool("keep", false, "keep the run's directory (config, Caddy's log, the profiles) even when it passes")
	flag.Parse()
	if *caddyBin == "" {
		log.Fatal("-caddy is required: go build -o /tmp/caddy ./cmd/caddy")
	}
	if *duration <= *warmup+time.Minute {
		log.Fatalf("-duration %s leaves no minute after -warmup %s to compare", *duration, *warmup)
	}

	dir, err := os.MkdirTemp("", "behest-soak-")
	check(err)
	up, err := loadtest.Serve(loadtest.Provider{StreamGap: 10 * time.Millisecond})
	check(err)
	adminPort, err := loadtest.FreePort()
	check(err)
	port, err := loadtest.FreePort()
	check(err)
	st := site{admin: fmt.Sprintf("127.0.0.1:%d", adminPort), storage: filepath.Join(dir, "storage"), upstream: up, port: port}
	// A heap profile sample every 32 KiB allocated rather than 512: the profiles kept can then
	// tell what grew by a few hundred KiB.
	caddy, err := loadtest.StartCaddy(*caddyBin, dir, st.caddyfile(0), "GODEBUG=memprofilerate=32768")
	check(err)
	running = caddy
	go func() {
		// Interrupted: stop Caddy too, and say where its files are.
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		fatalf("%v; files kept in %s", <-sig, dir)
	}()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	check(loadtest.WaitUp(base+"/.well-known/jwks.json", 30*time.Second))
	admin := loadtest.Admin{Addr: st.admin}

	transport := &http.Transport{MaxIdleConnsPerHost: *conns + 8, IdleConnTimeout: 90 * time.Second}
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}
	tl := newTally()
	users := newPopulation(client, base, tl)
	for range *active {
		check(users.arrive(*active))
	}
	for range *heavy {
		check(users.addHeavy(*heavy))
	}
	tr := &traffic{client: client, base: base, users: users, tally: tl}

	fmt.Printf("behest soak: %s of up to %d req/s (%d at once), %.0f users arriving per second, reloads every %s-%s; Caddy pid %d, files in %s\n",
		*duration, *rate, *conns, *arrivals, *reload, 2**reload, caddy.Pid(), dir)
	fmt.Printf("%-7s %8s %6s  %-50s %9s %9s %10s %7s %7s\n", "elapsed", "requests", "req/s", "outcomes this minute", "rss", "heap", "goroutines", "users", "reloads")
	fmt.Println("(heap: after a forced GC; goroutines: all (those on connections); users: new users so far)")
	r := &run{admin: admin, caddy: caddy, dir: dir, tally: tl, users: users}
	r.sample(0, tl.takeMinute()) // before the traffic: the users' first mints

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	pace := time.NewTicker(time.Second / time.Duration(*rate))
	for range *conns {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-pace.C:
					tr.one(ctx)
				}
			}
		})
	}
	wg.Go(func() { r.arrivals(ctx, *arrivals, *active, *heavy) })
	wg.Go(func() { r.reloads(ctx, st, *reload) })

	// A line each minute while the traffic runs on, and one at the end.
	started := time.Now()
	end := started.Add(*duration)
	for next := started.Add(time.Minute); ; next = next.Add(time.Minute) {
		if next.After(end) {
			next = end
		}
		select {
		case <-time.After(time.Until(next)):
		case <-caddy.Done():
			fatalf("caddy ended during the soak (%v); see %s", caddy.Err(), caddy.Log)
		}
		r.sample(time.Since(started), tl.takeMinute())
		if !next.Before(end) {
			break
		}
	}
	cancel()
	pace.Stop()
	wg.Wait()
	if *rest > 0 {
		// Connections closed (ours now, Caddy's upstream ones when idle for 2m), nothing in
		// flight: what Caddy holds now is what it keeps.
		transport.CloseIdleConnections()
		fmt.Printf("(traffic stopped; at rest for %s)\n", *rest)
		time.Sleep(*rest)
		r.sampleAtRest(time.Since(started))
	}

	totals, unexpected, examples := tl.totals()
	fmt.Printf("\n%d requests in %s: %s; %d reloads (%d failed); caddy logged %d errors\n",
		sum(totals), *duration, formatCounts(totals), r.reloaded, r.reloadFailed, caddy.LoggedErrors())
	lim := limits{heapPct: *maxHeapPct, heapBytes: uint64(*maxHeapMiB * (1 << 20)), goroutinePct: *maxGoPct, goroutineMin: 10}
	lines, failed := verdict(r.samples, r.rest, *warmup, lim, unexpected)
	for _, l := range lines {
		fmt.Println(l)
	}
	for _, e := range examples {
		fmt.Println("  unexpected:", e)
	}
	caddy.Stop()
	if len(failed) > 0 || *keep {
		fmt.Printf("files kept in %s: Caddyfile, caddy.log, heap-NN.pb.gz and goroutines-NN.txt of each line (NN: 00 before the traffic)\n", dir)
		if b := baseline(r.samples, *warmup); b >= 0 {
			fmt.Printf("  what the heap gained: go tool pprof -sample_index=inuse_space -top -base %s %s\n",
				filepath.Join(dir, profileName("heap", b, "pb.gz")), filepath.Join(dir, profileName("heap", len(r.samples)-1, "pb.gz")))
		}
	} else {
		os.RemoveAll(dir)
	}
	if len(failed) > 0 {
		fmt.Printf("NOT FLAT: %v\n", failed)
		os.Exit(1)
	}
	fmt.Println("FLAT")
}

// arrivals brings users in at perSecond, and a new heavy user each minute.
func (r *run) arrivals(ctx context.Context, perSecond float64, active, heavy int) {
	tick := time.NewTicker(time.Duration(float64(time.Second) / perSecond))
	defer tick.Stop()
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			_ = r.users.arrive(active) // a failed mint is counted
			if n%int(60*perSecond) == 0 {
				_ = r.users.addHeavy(heavy)
			}
		}
	}
}

// reloads loads the other variant of the config every [every, 2*every).
func (r *run) reloads(ctx context.Context, st site, every time.Duration) {
	for variant := 1; ; variant++ {
		select {
		case <-ctx.Done():
			return
		case <-time.After(every + rand.N(every)):
		}
		i := r.tally.reloads.begin()
		err := r.admin.Load([]byte(st.caddyfile(variant)))
		r.tally.reloads.end(i)
		r.mu.Lock()
		r.reloaded++
		if err != nil {
			r.reloadFailed++
		}
		r.mu.Unlock()
		if err != nil {
			r.tally.fail("reload: " + err.Error())
		}
	}
}

// running is the Caddy started, stopped by fatalf, so that no failure leaves it behind.
var running *loadtest.Caddy

func fatalf(format string, args ...any) {
	if running != nil {
		running.Stop()
	}
	log.Fatalf(format, args...)
}

func check(err error) {
	if err != nil {
		fatalf("%v", err)
	}
}
