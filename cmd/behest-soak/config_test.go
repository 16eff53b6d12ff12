package main

import (
	"strings"
	"testing"
)

func TestCaddyfileVariantsDiffer(t *testing.T) {
	s := site{admin: "127.0.0.1:2999", storage: "/tmp/s", upstream: "127.0.0.1:3001", port: 3000}
	a, b := s.caddyfile(0), s.caddyfile(1)
	for _, c := range []string{a, b} {
		if strings.Contains(c, "%!") {
			t.Fatalf("a formatting error:\n%s", c)
		}
		for _, want := range []string{"admin 127.0.0.1:2999", "http://127.0.0.1:3000 {", "reverse_proxy 127.0.0.1:3001 {", "api_key " + apiKey} {
			if !strings.Contains(c, want) {
				t.Fatalf("no %q in\n%s", want, c)
			}
		}
	}
	if a == b || s.caddyfile(2) != a {
		t.Fatal("the variants should alternate between two different configs")
	}
}
