// Command behest-load measures the gateway's cost: the same requests through plain
// reverse_proxy and through behest + reverse_proxy, in one Caddy process, one run, alternating
// rounds, with wrk as the load (wrk -t2 -c32 by default). Both sides run the same reverse_proxy
// block, which adds the provider's key as a deployment does: the difference is behest's work. It prints each round and the median
// ratio behest/plain per scenario, so a noisy machine compares like with like. It is not run in
// CI; see the README's Performance section.
//
//	go build -o /tmp/caddy ./cmd/caddy && go run ./cmd/behest-load -caddy /tmp/caddy
//	go run ./cmd/behest-load -caddy /tmp/caddy -store redis -redis redis://127.0.0.1:6379/0
//	go run ./cmd/behest-load -caddy /tmp/caddy -ttfb        # time to first byte of streams
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/behest/caddy-behest/internal/loadtest"
)

func main() {
	caddyBin := flag.String("caddy", "", "a Caddy built with the plugin (go build -o /tmp/caddy ./cmd/caddy)")
	store := flag.String("store", "embedded", "embedded or redis")
	redisURL := flag.String("redis", "redis://127.0.0.1:6379/0", "the Redis of -store redis")
	duration := flag.Duration("duration", 8*time.Second, "each round's length")
	rounds := flag.Int("rounds", 3, "rounds per side and scenario")
	conns := flag.Int("c", 32, "wrk connections")
	threads := flag.Int("t", 2, "wrk threads")
	only := flag.String("only", "", "comma-separated scenarios (default: all)")
	users := flag.Int("users", 100, "distinct end users (one minted token each)")
	ttfb := flag.Bool("ttfb", false, "measure time to first byte of streams instead of throughput")
	profile := flag.String("profile", "", "write a CPU profile of Caddy under load of the first scenario to this file, and stop")
	cpu := flag.Bool("cpu", false, "also print each process's CPU time per request")
	profileSide := flag.String("profile-side", "behest", "the side -profile loads: behest or plain")
	sameHeaders := flag.Bool("same-headers", false, "the plain side also sends the identity headers up and six x-ratelimit-* headers down: "+
		"what behest's work costs beyond the headers the contract requires")
	flag.Parse()
	if *caddyBin == "" {
		log.Fatal("-caddy is required: go build -o /tmp/caddy ./cmd/caddy")
	}

	// With -ttfb, a stream's first chunk and the rest are 20 ms apart.
	gap := time.Duration(0)
	if *ttfb {
		gap = 20 * time.Millisecond
	}
	up, err := loadtest.Serve(loadtest.Provider{StreamGap: gap})
	check(err)
	dir, err := os.MkdirTemp("", "behest-load-")
	check(err)
	defer os.RemoveAll(dir)
	plainPort, behestPort := freePort(), freePort()
	storeLine := ""
	if *store == "redis" {
		storeLine = "store redis " + *redisURL
	}
	admin := "off"
	if *profile != "" {
		admin = fmt.Sprintf("127.0.0.1:%d", freePort())
	}
	plainHeaders := ""
	if *sameHeaders {
		// The headers behest adds for the load's tokens, with values of the same length.
		plainHeaders = `
		header_up X-Behest-Tenant-Id t_load
		header_up X-Behest-Project-Id p_load
		header_up X-Behest-User-Id org_1:user_11
		header_up X-Behest-Tier 1
		header_up X-Behest-Org-Id org_1
		header_up X-Behest-Session-Id s_0123456789abcdef
		header_down X-Ratelimit-Limit-Requests 1000000000
		header_down X-Ratelimit-Remaining-Requests 999999123
		header_down X-Ratelimit-Reset-Requests 59.917s
		header_down X-Ratelimit-Limit-Tokens 1000000000000
		header_down X-Ratelimit-Remaining-Tokens 999998765432
		header_down X-Ratelimit-Reset-Tokens 59.917s`
	}
	cfg := fmt.Sprintf(`{
	admin %s
	auto_https off
	persist_config off
	storage file_system %s
}
http://127.0.0.1:%d {
	reverse_proxy %s {
		header_up Authorization "Bearer provider-key"
		header_up x-api-key provider-key
		header_up x-goog-api-key provider-key%s
	}
}
http://127.0.0.1:%d {
	behest {
		%s
		project p_load {
			tenant t_load
			api_key load-key
			tier 1 {
				requests_per_minute 1000000000
				tokens_per_minute 1000000000000
				tokens_per_day 1000000000000
				cost_per_day 1000000
				concurrent_requests 1000
				max_output_tokens 1024
			}
			price * 1.00 2.00 0.50 1.25
			cost_per_month 100000000
		}
	}
	reverse_proxy %s {
		header_up Authorization "Bearer provider-key"
		header_up x-api-key provider-key
		header_up x-goog-api-key provider-key
	}
}`, admin, filepath.Join(dir, "storage"), plainPort, up, plainHeaders, behestPort, storeLine, up)
	caddy, err := loadtest.StartCaddy(*caddyBin, dir, cfg)
	check(err)
	defer caddy.Stop()
	plain, behest := fmt.Sprintf("http://127.0.0.1:%d", plainPort), fmt.Sprintf("http://127.0.0.1:%d", behestPort)
	check(loadtest.WaitUp(behest+"/.well-known/jwks.json", 30*time.Second))

	tokens := make([]string, *users)
	for i := range tokens {
		m, err := loadtest.Mint(nil, behest, "load-key", loadtest.MintRequest{UserID: fmt.Sprintf("org_%d:user_%d", i%10, i), TTL: 3600})
		check(err)
		tokens[i] = m.Token
	}
	selected := loadtest.Scenarios
	if *only != "" {
		selected = nil
		for _, s := range loadtest.Scenarios {
			if slices.Contains(strings.Split(*only, ","), s.Name) {
				selected = append(selected, s)
			}
		}
	}
	if *ttfb {
		measureTTFB(plain, behest, tokens, selected)
		return
	}
	if *profile != "" {
		s := selected[0]
		script := wrkScript(dir, s, tokens)
		done := make(chan float64)
		base := behest
		if *profileSide == "plain" {
			base = plain
		}
		go func() { done <- runWrk(*threads, *conns, *duration+4*time.Second, script, base+s.Path) }()
		time.Sleep(2 * time.Second)
		api := loadtest.Admin{Addr: admin}
		check(saveProfile(api, fmt.Sprintf("/debug/pprof/profile?seconds=%d", int(duration.Seconds())), *profile))
		rate := <-done
		// And what was allocated, since Caddy started (mostly this load): -sample_index=alloc_space.
		check(saveProfile(api, "/debug/pprof/allocs", *profile+".allocs"))
		fmt.Printf("%s under %s: %.0f req/s; profiles in %s and %s.allocs\n", s.Name, *profileSide, rate, *profile, *profile)
		return
	}
	fmt.Printf("store %s, wrk -t%d -c%d, %s rounds, %d users\n", *store, *threads, *conns, *duration, *users)
	if *sameHeaders {
		fmt.Println("plain sends the same identity and x-ratelimit-* headers (header_up, header_down)")
	}
	fmt.Printf("%-17s %-28s %-28s %s\n", "scenario", "plain req/s", "behest req/s", "ratio (median)")
	for _, s := range selected {
		script := wrkScript(dir, s, tokens)
		var p, b, ratios []float64
		var pc, bc []cpuUse
		for range *rounds {
			// Alternating, so drift in the machine's load hits both sides alike.
			pr, pu := runWrkCPU(*threads, *conns, *duration, script, plain+s.Path, caddy.Pid())
			br, bu := runWrkCPU(*threads, *conns, *duration, script, behest+s.Path, caddy.Pid())
			p, b, ratios = append(p, pr), append(b, br), append(ratios, br/pr)
			pc, bc = append(pc, pu), append(bc, bu)
		}
		fmt.Printf("%-17s %-28s %-28s %.2f\n", s.Name, fmtRates(p), fmtRates(b), median(ratios))
		if *cpu {
			fmt.Printf("  CPU per request, median (plain -> behest): caddy %s, upstream %s, wrk %s, idle %s\n",
				cpuChange(pc, bc, func(u cpuUse) time.Duration { return u.caddy }),
				cpuChange(pc, bc, func(u cpuUse) time.Duration { return u.upstream }),
				cpuChange(pc, bc, func(u cpuUse) time.Duration { return u.wrk }),
				cpuChange(pc, bc, func(u cpuUse) time.Duration { return u.idle }))
		}
	}
	// The run's directory goes when it ends: the errors are printed here.
	if lines := caddy.ErrorLines(); len(lines) > 0 {
		fmt.Printf("caddy logged %d errors, the first:\n", len(lines))
		for _, l := range lines[:min(len(lines), 5)] {
			fmt.Println("  " + l)
		}
	}
}

// saveProfile writes the admin API's profile at path to file.
func saveProfile(api loadtest.Admin, path, file string) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if err := api.Get(path, f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// cpuChange prints the median of one CPU figure on each side.
func cpuChange(plain, behest []cpuUse, f func(cpuUse) time.Duration) string {
	med := func(us []cpuUse) time.Duration {
		var v []float64
		for _, u := range us {
			v = append(v, float64(f(u)))
		}
		return time.Duration(median(v)).Round(100 * time.Nanosecond)
	}
	return fmt.Sprintf("%s -> %s", med(plain), med(behest))
}

// wrkScript writes a wrk Lua script that POSTs s.Body with a token of tokens, in turn.
func wrkScript(dir string, s loadtest.Scenario, tokens []string) string {
	var b strings.Builder
	b.WriteString("local tokens = {")
	for _, t := range tokens {
		fmt.Fprintf(&b, "%q,", t)
	}
	b.WriteString("}\n")
	value := `t`
	if s.Header == "Authorization" {
		value = `"Bearer " .. t`
	}
	fmt.Fprintf(&b, `local i = 0
wrk.method = "POST"
wrk.body = %q
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i + 1
  local t = tokens[(i %% #tokens) + 1]
  wrk.headers[%q] = %s
  return wrk.format()
end
`, s.Body, s.Header, value)
	path := filepath.Join(dir, s.Name+".lua")
	check(os.WriteFile(path, []byte(b.String()), 0o600))
	return path
}

var (
	rateLine   = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	non2xxLine = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

func runWrk(threads, conns int, d time.Duration, script, url string) float64 {
	r, _ := runWrkCPU(threads, conns, d, script, url, 0)
	return r
}

// cpuUse is the CPU time each process spent in a round, per request.
type cpuUse struct{ caddy, upstream, wrk, idle time.Duration }

// runWrkCPU runs wrk and, when caddyPID is set, accounts the round's CPU per request: Caddy's,
// this process's (the upstream), wrk's, and the machine's idle time.
func runWrkCPU(threads, conns int, d time.Duration, script, url string, caddyPID int) (float64, cpuUse) {
	cmd := exec.Command("wrk", "-t"+strconv.Itoa(threads), "-c"+strconv.Itoa(conns), "-d"+d.String(), "-s", script, url)
	c0, s0, i0 := procCPU(caddyPID), selfCPU(), idleCPU()
	out, err := cmd.CombinedOutput()
	c1, s1, i1 := procCPU(caddyPID), selfCPU(), idleCPU()
	var use cpuUse
	if err == nil && caddyPID != 0 {
		use = cpuUse{caddy: c1 - c0, upstream: s1 - s0, wrk: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), idle: i1 - i0}
	}
	if err != nil {
		log.Fatalf("wrk: %v: %s", err, out)
	}
	if m := non2xxLine.FindSubmatch(out); m != nil {
		log.Fatalf("%s: %s responses were not 2xx:\n%s", url, m[1], out)
	}
	m := rateLine.FindSubmatch(out)
	if m == nil {
		log.Fatalf("wrk printed no rate: %s", out)
	}
	r, _ := strconv.ParseFloat(string(m[1]), 64)
	if n := r * d.Seconds(); n > 0 {
		per := func(t time.Duration) time.Duration { return time.Duration(float64(t) / n) }
		use = cpuUse{per(use.caddy), per(use.upstream), per(use.wrk), per(use.idle)}
	}
	return r, use
}

// procCPU is the user+system CPU time of process pid so far (0 for pid 0).
func procCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	check(err)
	// The fields after the command's closing parenthesis: utime and stime are the 12th and 13th.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

// selfCPU is this process's user+system CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	check(syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// idleCPU is the machine's idle time so far, summed over its CPUs.
func idleCPU() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	check(err)
	f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0]) // cpu user nice system idle ...
	idle, _ := strconv.ParseInt(f[4], 10, 64)
	return time.Duration(idle) * time.Second / 100
}

// measureTTFB times the first byte of 200 streamed responses of each side, alternating, one
// at a time.
func measureTTFB(plain, behest string, tokens []string, selected []loadtest.Scenario) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2}}
	first := func(base string, s loadtest.Scenario, token string) time.Duration {
		req, err := s.NewRequest(context.Background(), base, token)
		check(err)
		start := time.Now()
		resp, err := client.Do(req)
		check(err)
		buf := make([]byte, 1)
		_, err = io.ReadFull(resp.Body, buf)
		d := time.Since(start)
		check(err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			log.Fatalf("%s%s: %d", base, s.Path, resp.StatusCode)
		}
		return d
	}
	fmt.Printf("%-17s %-14s %-14s %s\n", "scenario", "plain p50", "behest p50", "difference")
	for _, s := range selected {
		if !s.Stream() {
			continue
		}
		var p, b []float64
		for i := range 200 {
			p = append(p, float64(first(plain, s, tokens[i%len(tokens)])))
			b = append(b, float64(first(behest, s, tokens[i%len(tokens)])))
		}
		fmt.Printf("%-17s %-14s %-14s %s\n", s.Name, time.Duration(median(p)).Round(time.Microsecond),
			time.Duration(median(b)).Round(time.Microsecond), time.Duration(median(b)-median(p)).Round(time.Microsecond))
	}
}

func fmtRates(rs []float64) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = strconv.Itoa(int(r))
	}
	return strings.Join(parts, " ")
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func freePort() int {
	p, err := loadtest.FreePort()
	check(err)
	return p
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
