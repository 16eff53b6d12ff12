package loadtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
)

// Admin is Caddy's admin API, as its admin.go serves it: /load, /debug/vars (expvar) and
// /debug/pprof/.
type Admin struct {
	Addr   string       // host:port
	Client *http.Client // nil: http.DefaultClient
}

func (a Admin) client() *http.Client {
	if a.Client == nil {
		return http.DefaultClient
	}
	return a.Client
}

// Load replaces the running config with caddyfile, as `caddy reload` does.
func (a Admin) Load(caddyfile []byte) error {
	req, err := http.NewRequest(http.MethodPost, "http://"+a.Addr+"/load", bytes.NewReader(caddyfile))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "text/caddyfile")
	resp, err := a.client().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("load: %w", statusError(resp))
	}
	return nil
}

// Get copies the body of the admin API's path (with its query) to w.
func (a Admin) Get(path string, w io.Writer) error {
	resp, err := a.client().Get("http://" + a.Addr + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %w", path, statusError(resp))
	}
	_, err = io.Copy(w, resp.Body)
	return err
}

// MemStats are the runtime.MemStats figures a soak watches.
type MemStats struct {
	HeapAlloc, HeapInuse, HeapSys, Sys uint64
	NumGC                              uint32
}

// HeapAfterGC has the process collect its garbage (the heap profile with gc=1 does) and then
// reads its memstats: HeapAlloc is then the live heap, plus what was allocated in between. The
// heap profile goes to profile when it is not nil.
func (a Admin) HeapAfterGC(profile io.Writer) (MemStats, error) {
	if profile == nil {
		profile = io.Discard
	}
	if err := a.Get("/debug/pprof/heap?gc=1", profile); err != nil {
		return MemStats{}, err
	}
	var vars bytes.Buffer
	if err := a.Get("/debug/vars", &vars); err != nil {
		return MemStats{}, err
	}
	var v struct{ Memstats *MemStats }
	if err := json.Unmarshal(vars.Bytes(), &v); err != nil {
		return MemStats{}, fmt.Errorf("/debug/vars: %w", err)
	}
	if v.Memstats == nil {
		return MemStats{}, fmt.Errorf("/debug/vars has no memstats")
	}
	return *v.Memstats, nil
}

// Goroutines counts the process's goroutines, from the first line of the goroutine profile
// ("goroutine profile: total N"). The whole profile, one entry per distinct stack, goes to
// profile when it is not nil.
func (a Admin) Goroutines(profile io.Writer) (int, error) {
	var buf bytes.Buffer
	if err := a.Get("/debug/pprof/goroutine?debug=1", &buf); err != nil {
		return 0, err
	}
	first, _, _ := strings.Cut(buf.String(), "\n")
	n, err := strconv.Atoi(strings.TrimPrefix(first, "goroutine profile: total "))
	if err != nil {
		return 0, fmt.Errorf("goroutine profile starts %q", first)
	}
	if profile != nil {
		_, err = profile.Write(buf.Bytes())
	}
	return n, err
}

// RSS is the resident set size of process pid in bytes (VmRSS in /proc/<pid>/status).
func RSS(pid int) (uint64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS of %d: %q", pid, v)
			}
			return kb * 1024, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("/proc/%d/status has no VmRSS", pid)
}
