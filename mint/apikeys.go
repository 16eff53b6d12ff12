package mint

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// APIKeys matches presented project API keys. Keys are kept only as their sha256, and a
// presented key is compared with every stored digest in constant time, so timing tells
// neither which key matched nor whether one did.
//
// Add keys while setting up, then only Lookup: Lookup may run concurrently with other Lookups,
// not with Add. The zero value is an empty set, ready to use.
type APIKeys struct {
	digests  [][sha256.Size]byte
	projects []string
}

// Add adds a project's key, given in plaintext. An empty key is never matched.
func (a *APIKeys) Add(project string, key string) {
	a.add(project, sha256.Sum256([]byte(key)))
}

// AddSHA256 adds a project's key given as the hex sha256 of the key (64 hex digits, as
// `printf %s "$KEY" | sha256sum` prints it).
func (a *APIKeys) AddSHA256(project string, hexDigest string) error {
	s := strings.TrimSpace(hexDigest)
	// The message never quotes the value: it may be a plaintext key put in the wrong place.
	if len(s) != hex.EncodedLen(sha256.Size) {
		return fmt.Errorf("a sha256 key digest is 64 hex digits; this one has %d characters", len(s))
	}
	var d [sha256.Size]byte
	if _, err := hex.Decode(d[:], []byte(s)); err != nil {
		return errors.New("a sha256 key digest is 64 hex digits (0-9, a-f); this one has other characters")
	}
	a.add(project, d)
	return nil
}

func (a *APIKeys) add(project string, digest [sha256.Size]byte) {
	a.digests = append(a.digests, digest)
	a.projects = append(a.projects, project)
}

// Lookup returns the project whose key was presented. When the same key was added for two
// projects, the first added wins.
func (a *APIKeys) Lookup(presented string) (project string, ok bool) {
	if presented == "" { // so a key added as "" matches nothing
		return "", false
	}
	d := sha256Of(presented)
	// Every digest is compared and the first match is picked without a branch, so the time
	// taken is the same whichever digest matched, or none.
	match, found := 0, 0
	for i := range a.digests {
		eq := subtle.ConstantTimeCompare(d[:], a.digests[i][:])
		match = subtle.ConstantTimeSelect(eq&^found, i, match)
		found |= eq
	}
	if found == 0 {
		return "", false
	}
	return a.projects[match], true
}

// sha256Of hashes s without copying it to the heap when it is of a usual key length, as
// []byte(s) would for anything over 32 bytes.
func sha256Of(s string) [sha256.Size]byte {
	var buf [256]byte
	if len(s) <= len(buf) {
		n := copy(buf[:], s)
		return sha256.Sum256(buf[:n])
	}
	return sha256.Sum256([]byte(s))
}
