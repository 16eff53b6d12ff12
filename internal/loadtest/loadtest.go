// Package loadtest is what the load and soak commands (cmd/behest-load, cmd/behest-soak) share:
// a mock model provider, the requests they send it through the gateway, a Caddy process started
// with a Caddyfile, its admin API, and minting tokens. It is for measuring a real Caddy from the
// outside; the package's tests use httptest instead of Serve and fixed ports.
package loadtest

import (
	"fmt"
	"net"
	"net/http"
	"time"
)

// FreePort returns a loopback TCP port that was free a moment ago, for a Caddyfile's addresses.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Serve serves h on a free loopback port until the process ends and returns its host:port.
func Serve(h http.Handler) (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(l) }()
	return l.Addr().String(), nil
}

// WaitUp waits until url answers at all, for at most within.
func WaitUp(url string, within time.Duration) error {
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			return nil
		}
	}
	return fmt.Errorf("%s did not answer within %s", url, within)
}
