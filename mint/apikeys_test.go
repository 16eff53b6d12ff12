package mint

import (
	"strings"
	"testing"
)

// TestAddSHA256NeverEchoes: a plaintext key put where a digest belongs must not end up in the
// error, which is printed at config load and may be logged.
func TestAddSHA256NeverEchoes(t *testing.T) {
	for _, value := range []string{
		"bh_live_0123456789abcdef",
		strings.Repeat("g", 64), // right length, not hex
	} {
		var a APIKeys
		err := a.AddSHA256("p", value)
		if err == nil {
			t.Fatalf("AddSHA256(%q) succeeded", value)
		}
		if strings.Contains(err.Error(), value) {
			t.Errorf("error %q quotes the value", err)
		}
	}
}

// TestLookupAllocs: Lookup is on every mint, revoke and usage request.
func TestLookupAllocs(t *testing.T) {
	var a APIKeys
	for _, k := range []string{"k0", "k1", "bh_live_0123456789abcdef0123456789abcdef"} {
		a.Add("p_"+k, k)
	}
	for _, presented := range []string{"k1", "bh_live_0123456789abcdef0123456789abcdef", strings.Repeat("x", 200)} {
		if n := testing.AllocsPerRun(100, func() { a.Lookup(presented) }); n != 0 {
			t.Errorf("Lookup of a %d-byte key allocates %.0f times", len(presented), n)
		}
	}
}

// TestLookupLongKey: keys over sha256Of's stack buffer hash the same way.
func TestLookupLongKey(t *testing.T) {
	long := strings.Repeat("k", 300)
	var a APIKeys
	a.Add("p_long", long)
	if p, ok := a.Lookup(long); !ok || p != "p_long" {
		t.Errorf("Lookup(300-byte key) = %q, %v", p, ok)
	}
	if _, ok := a.Lookup(long[:299]); ok {
		t.Error("a 299-byte prefix matched")
	}
}
