package redisstore

import (
	"strings"
	"testing"
)

func TestNewRejectsBadOptions(t *testing.T) {
	for _, c := range []struct {
		name string
		opts Options
		want string
	}{
		{"nothing", Options{}, "a url or addrs is required"},
		{"both", Options{URL: "redis://x", Addrs: []string{"x:1"}}, "exclusive"},
		{"scheme", Options{URL: "http://x"}, "invalid URL scheme"},
		{"cluster and sentinel", Options{Addrs: []string{"x:1"}, Cluster: true, MasterName: "m"}, "exclusive"},
		{"cluster db", Options{Addrs: []string{"x:1"}, Cluster: true, DB: 2}, "db 2"},
		{"several addrs", Options{Addrs: []string{"x:1", "y:1"}}, "need cluster or sentinel"},
		{"url and cluster", Options{URL: "redis://x", Cluster: true}, "take addrs"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := New(c.opts)
			if err == nil {
				s.Close()
				t.Fatalf("New(%+v) succeeded, want an error with %q", c.opts, c.want)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("New: %v, want %q", err, c.want)
			}
		})
	}
	for _, opts := range []Options{
		{URL: "redis://:pw@127.0.0.1:1/3?dial_timeout=3s"},
		{URL: "rediss://127.0.0.1:1"},
		{Addrs: []string{"127.0.0.1:1"}},
		{Addrs: []string{"127.0.0.1:1", "127.0.0.1:2"}, MasterName: "m"},
		{Addrs: []string{"127.0.0.1:1", "127.0.0.1:2"}, Cluster: true},
	} {
		s, err := New(opts)
		if err != nil {
			t.Errorf("New(%+v): %v", opts, err)
			continue
		}
		s.Close()
	}
}

func TestKeyLayout(t *testing.T) {
	keys := KeyLayout(Options{KeyPrefix: "gw:"})
	if len(keys) != 9 {
		t.Fatalf("%d keys", len(keys))
	}
	for _, k := range keys {
		if !strings.HasPrefix(k.Pattern, "gw:{<project>}:") || k.Type == "" || k.Holds == "" || k.TTL == "" {
			t.Errorf("%+v", k)
		}
	}
}
