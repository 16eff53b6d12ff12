package mint

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"strings"
)

// APIKeys matches project API keys. Keys are kept only as their sha256, and a presented key is
// compared with every stored digest in constant time, so timing does not tell which or whether
// one matched.
type APIKeys struct {
	digests  [][sha256.Size]byte
	projects []string
}

// Add adds a plaintext key of project.
func (a *APIKeys) Add(project, key string) {
	a.digests = append(a.digests, sha256.Sum256([]byte(key)))
	a.projects = append(a.projects, project)
}

// AddSHA256 adds a key given as the hex of its sha256.
func (a *APIKeys) AddSHA256(project, hexDigest string) error {
	b, err := hex.DecodeString(strings.TrimSpace(hexDigest))
	if err != nil || len(b) != sha256.Size {
		return fmt.Errorf("%q is not a sha256 digest (64 hex characters)", hexDigest)
	}
	var d [sha256.Size]byte
	copy(d[:], b)
	a.digests = append(a.digests, d)
	a.projects = append(a.projects, project)
	return nil
}

// Lookup returns the project whose key was presented.
func (a *APIKeys) Lookup(presented string) (project string, ok bool) {
	if presented == "" {
		return "", false
	}
	d := sha256.Sum256([]byte(presented))
	match := -1
	for i := range a.digests {
		if subtle.ConstantTimeCompare(d[:], a.digests[i][:]) == 1 && match < 0 {
			match = i
		}
	}
	if match < 0 {
		return "", false
	}
	return a.projects[match], true
}
