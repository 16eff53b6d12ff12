package mint_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"github.com/behest/caddy-behest/mint"
	"strings"
	"testing"
)

func sha256Hex(s string) string {
	d := sha256.Sum256([]byte(s))
	return hex.EncodeToString(d[:])
}

func TestAPIKeys(t *testing.T) {
	var keys mint.APIKeys
	keys.Add("p_plain", "bh_live_plain")
	if err := keys.AddSHA256("p_hashed", sha256Hex("bh_live_hashed")); err != nil {
		t.Fatal(err)
	}
	// Upper case and surrounding space, as pasted from a shell, are accepted.
	if err := keys.AddSHA256("p_upper", "  "+strings.ToUpper(sha256Hex("bh_live_upper"))+"\n"); err != nil {
		t.Fatal(err)
	}
	keys.Add("p_two", "bh_live_two_a")
	keys.Add("p_two", "bh_live_two_b")

	for _, tc := range []struct {
		name      string
		presented string
		want      string // "" means no match
	}{
		{"plaintext key", "bh_live_plain", "p_plain"},
		{"sha256 key", "bh_live_hashed", "p_hashed"},
		{"upper-case hex key", "bh_live_upper", "p_upper"},
		{"second project, first key", "bh_live_two_a", "p_two"},
		{"second project, second key", "bh_live_two_b", "p_two"},
		{"wrong key", "bh_live_wrong", ""},
		{"prefix of a key", "bh_live_plai", ""},
		{"key with a trailing space", "bh_live_plain ", ""},
		{"the digest itself is not the key", sha256Hex("bh_live_hashed"), ""},
		{"empty key", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := keys.Lookup(tc.presented)
			if ok != (tc.want != "") || got != tc.want {
				t.Errorf("Lookup(%q) = %q, %v; want %q, %v", tc.presented, got, ok, tc.want, tc.want != "")
			}
		})
	}
}

func TestAPIKeysEmptyKeyNeverMatches(t *testing.T) {
	// Even a configured empty key (a config mistake) must not let an empty header in.
	var keys mint.APIKeys
	keys.Add("p_empty", "")
	if err := keys.AddSHA256("p_empty_hash", sha256Hex("")); err != nil {
		t.Fatal(err)
	}
	if p, ok := keys.Lookup(""); ok {
		t.Errorf("Lookup(\"\") = %q, want no match", p)
	}
	var none mint.APIKeys
	if p, ok := none.Lookup("anything"); ok {
		t.Errorf("zero mint.APIKeys matched %q", p)
	}
}

func TestAPIKeysSameKeyTwoProjects(t *testing.T) {
	// The first project added wins; a duplicate key is a config mistake, but the answer is stable.
	var keys mint.APIKeys
	keys.Add("p_first", "shared")
	keys.Add("p_second", "shared")
	for i := 0; i < 3; i++ {
		if p, ok := keys.Lookup("shared"); !ok || p != "p_first" {
			t.Fatalf("Lookup(shared) = %q, %v; want p_first", p, ok)
		}
	}
}

func TestAPIKeysBadHex(t *testing.T) {
	good := sha256Hex("k")
	for _, tc := range []struct{ name, hex string }{
		{"empty", ""},
		{"not hex", strings.Repeat("zz", 32)},
		{"too short", good[:62]},
		{"too long", good + "00"},
		{"odd length", good[:63]},
		{"sha1 length", strings.Repeat("ab", 20)},
		{"plaintext key", "bh_live_plain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var keys mint.APIKeys
			err := keys.AddSHA256("p", tc.hex)
			if err == nil {
				t.Fatalf("AddSHA256(%q) succeeded", tc.hex)
			}
			if !strings.Contains(err.Error(), "sha256") {
				t.Errorf("error %q does not say what is expected", err)
			}
			if _, ok := keys.Lookup("k"); ok {
				t.Errorf("a refused digest was kept")
			}
		})
	}
}

func BenchmarkAPIKeysLookup(b *testing.B) {
	var keys mint.APIKeys
	for i := 0; i < 10; i++ {
		keys.Add(fmt.Sprintf("p_%d", i), fmt.Sprintf("bh_live_%032d", i))
	}
	presented := fmt.Sprintf("bh_live_%032d", 7)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := keys.Lookup(presented); !ok {
			b.Fatal("no match")
		}
	}
}
